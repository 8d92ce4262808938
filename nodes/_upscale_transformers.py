"""transformers' Swin2SR as an upscale model: a ``Swin2SRForImageSuperResolution`` folder with its
``Swin2SRImageProcessor``, wrapped so that Upscale Image runs it as it runs spandrel's models, tiles included.

spandrel knows Swin2SR too, but only as the authors' released ``.pth`` files; the checkpoints on the Hugging
Face hub (caidas/swin2SR-classical-sr-x2-64, ...) are transformers folders, with other weight names and a
config. Upscale Image asks a model for what spandrel's ``ImageModelDescriptor`` tells (scale, channels, tiling,
size requirements, device, dtype) and calls it on (1, C, h, w) pixels in [0, 1]; :class:`Swin2SRUpscaler`
answers the same, and each call goes through the image processor (its symmetric padding, the rescale left
out as our pixels are [0, 1] already) and the model, cropped back to the scale times the input, as
transformers' own example crops it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nodegraph import NodeUserError

from ._upscale_weights import _a

MODEL_TYPES = ("swin2sr",)


def model_type(path: Path) -> str | None:
    """The ``model_type`` in a folder's config.json, or None where there is none to read."""
    try:
        return json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


class Swin2SRUpscaler:
    """A loaded transformers Swin2SR, answering what Upscale Image asks of spandrel's descriptor."""

    purpose = "SR"
    supports_half = False  # as spandrel says of Swin2SR: float16 misbehaves; bfloat16 is fine
    supports_bfloat16 = True

    def __init__(self, model: Any, processor: Any):
        import spandrel

        self.model = model
        self.processor = processor
        self.scale = int(model.config.upscale)
        self.input_channels = self.output_channels = int(model.config.num_channels)
        self.tiling = spandrel.ModelTiling.SUPPORTED
        self.size_requirements = spandrel.SizeRequirements()  # any size: the processor and the model pad

    @property
    def device(self):
        return next(self.model.parameters()).device

    @property
    def dtype(self):
        return next(self.model.parameters()).dtype

    def to(self, device, dtype):
        self.model.to(device=device, dtype=dtype)
        return self

    def __call__(self, pixels):
        """(1, C, h, w) in [0, 1] -> (1, C, h * scale, w * scale), as transformers computes it."""
        _, _, h, w = pixels.shape
        batch = self.processor(images=pixels.float(), do_rescale=False, input_data_format="channels_first",
                               return_tensors="pt")
        padded = batch["pixel_values"].to(device=self.device, dtype=self.dtype)
        out = self.model(pixel_values=padded).reconstruction
        return out[:, :, :h * self.scale, :w * self.scale]


def load(path: Path, device, dtype_name: str) -> Swin2SRUpscaler:
    """A transformers Swin2SR folder -> its upscaler on ``device``, or a NodeUserError naming the folder."""
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()
    kind = model_type(path)
    if kind not in MODEL_TYPES:
        raise NodeUserError(
            f"{path} is a folder holding {'a ' + repr(kind) + ' model' if kind else 'no transformers model'}; "
            f"Load Upscale Model takes a .safetensors or .pth upscale model file, or a transformers Swin2SR "
            f"folder (config.json model_type 'swin2sr')")
    try:
        model = transformers.Swin2SRForImageSuperResolution.from_pretrained(path, local_files_only=True)
        processor = transformers.Swin2SRImageProcessor.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise NodeUserError(f"cannot load {path} as Swin2SR: {' '.join(str(e).split())[:300]}") from None
    if dtype_name == "auto":
        dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    else:
        dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype_name]
    return Swin2SRUpscaler(model.eval(), processor).to(device, dtype)


def describe(upscaler: Swin2SRUpscaler) -> str:
    """'a 2x Swin2SR super-resolution model (transformers)', as spandrel's models are described."""
    what = f"{upscaler.scale}x Swin2SR super-resolution" if upscaler.scale > 1 else "Swin2SR restoration"
    return _a(f"{what} model (transformers)")
