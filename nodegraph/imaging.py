"""Conversions between the IMAGE / MASK tensors that travel between nodes and Pillow images.

IMAGE is a float tensor (batch, 3, height, width) in [0, 1]; MASK is (batch, 1,
height, width) in [0, 1], 1 meaning selected. Both live on the engine's device;
Pillow work happens on the CPU inside a node, one picture of the batch at a time.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from PIL import Image


def workflow_pnginfo(workflow_text: str):
    """PNG text chunk 'workflow' (compressed): how a picture carries the graph that made it."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("workflow", workflow_text, zip=True)
    return info


def png_bytes(picture: Image.Image, workflow_text: str = "") -> bytes:
    """A PNG file's bytes, with the workflow embedded when one is given."""
    import io

    buffer = io.BytesIO()
    picture.save(buffer, "PNG", **({"pnginfo": workflow_pnginfo(workflow_text)} if workflow_text else {}))
    return buffer.getvalue()


def to_pil(image) -> list[Image.Image]:
    """IMAGE tensor -> one RGB Pillow image per batch item."""
    array = _to_uint8(image)  # (B, C, H, W)
    return [Image.fromarray(np.ascontiguousarray(a.transpose(1, 2, 0)), "RGB") for a in array]


def mask_to_pil(mask) -> list[Image.Image]:
    """MASK tensor -> one 8-bit greyscale Pillow image per batch item."""
    return [Image.fromarray(np.ascontiguousarray(a[0]), "L") for a in _to_uint8(mask)]


def from_pil(images: Sequence[Image.Image], device="cpu"):
    """Pillow images (all the same size) -> IMAGE tensor on ``device``."""
    return _stack([np.asarray(im.convert("RGB")) for im in images], device)


def mask_from_pil(images: Sequence[Image.Image], device="cpu"):
    """Greyscale Pillow images -> MASK tensor on ``device``."""
    return _stack([np.asarray(im.convert("L"))[:, :, None] for im in images], device)


def map_pil(image, fn: Callable[[Image.Image], Image.Image], device=None, mask: bool = False):
    """Apply a Pillow function to each picture of an IMAGE (or MASK) batch, keeping its device."""
    device = image.device if device is None else device
    if mask:
        return mask_from_pil([fn(im) for im in mask_to_pil(image)], device)
    return from_pil([fn(im) for im in to_pil(image)], device)


def _to_uint8(tensor) -> np.ndarray:
    import torch

    with torch.no_grad():
        t = tensor.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return t.cpu().numpy()


def _stack(arrays: list[np.ndarray], device):
    import torch

    sizes = {a.shape[:2] for a in arrays}
    if len(sizes) > 1:
        from .errors import NodeUserError

        raise NodeUserError(f"pictures in one batch must share a size, got {sorted(sizes)}")
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return batch.to(device=device, dtype=torch.float32).div_(255.0)
