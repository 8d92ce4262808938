"""Upscaling with a model: Load Upscale Model (ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT, ... through spandrel;
transformers' Swin2SR folders through ``_upscale_transformers``) and Upscale Image (the model over a picture,
tile by tile).

The loaded model is the loader's output, so it lives in the engine's cache under its byte budget and stays
on the device between runs; its fingerprint holds the file's size and modification time, so replacing the
file loads it again. Files are read with safetensors or ``torch.load(weights_only=True)`` only
(``_upscale_weights``); tiles overlap and are cross-faded (``_tiling``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nodegraph import Input, NodeUserError, Output, Param, PortType as T, node
from nodegraph.models import MODEL_HINT

from . import _model_files as files
from . import _tiling
from . import _upscale_transformers as transformers_upscaler
from . import _upscale_weights as weights

KIND = "upscale_models"
DTYPES = ("auto", "float32", "float16", "bfloat16")
MAX_TILE = 16384
#: ComfyUI's Upscale Image (using Model) runs 512-pixel tiles overlapping by 32: the same here by default
DEFAULT_TILE, DEFAULT_OVERLAP = 512, 32
LUMA = (0.299, 0.587, 0.114)  # RGB -> the gray a one-channel model sees (ITU-R BT.601, as Pillow's "L")


@dataclass(eq=False)
class UpscaleModel:
    """UPSCALE_MODEL: spandrel's descriptor of a loaded model, and its torch module (the same one the
    descriptor runs), where the engine's cache can measure it and move it when it spills to host memory."""

    module: Any
    descriptor: Any  # spandrel's ImageModelDescriptor, or a Swin2SRUpscaler that answers the same
    path: str
    description: str  # "a 4x ESRGAN super-resolution model"

    @property
    def scale(self) -> int:
        return int(self.descriptor.scale)


def _dtype(name: str, descriptor, device):
    """``auto``: float32 on the CPU; on a GPU float16 where the architecture supports it, else bfloat16."""
    import torch

    if name != "auto":
        return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]
    if device.type == "cpu":
        return torch.float32
    if descriptor.supports_half:
        return torch.float16
    return torch.bfloat16 if descriptor.supports_bfloat16 else torch.float32


@node(
    "model.upscale",
    title="Load Upscale Model",
    category="generate/models",
    params=[
        Param("model", T.STRING, "", hint=MODEL_HINT, kind=KIND,
              description="a .safetensors or .pth super-resolution / restoration model (ESRGAN, Real-ESRGAN, "
                          "SwinIR, HAT, DAT, ...), or a transformers Swin2SR folder: a path, a name in the model "
                          "folders or ComfyUI's upscale_models"),
        Param("dtype", T.ENUM, "auto", choices=DTYPES,
              description="auto: float32 on the CPU; on a GPU float16 where the architecture allows it"),
    ],
    outputs=[Output("upscale_model", T.UPSCALE_MODEL)],
    identity=lambda params, ctx: files.identity(params["model"], ctx, KIND),
)
def load_upscale_model(ctx, model, dtype):
    """Load a super-resolution or restoration model; spandrel tells its architecture and scale from its weights
    (a transformers Swin2SR folder says them in its config)."""
    import spandrel

    path = files.find(model, ctx, KIND)
    if path.is_dir() and (path / "config.json").is_file():
        upscaler = transformers_upscaler.load(path, ctx.device, dtype)
        description = transformers_upscaler.describe(upscaler)
        return {"upscale_model": UpscaleModel(upscaler.model, upscaler, str(path), description)}
    descriptor = weights.load(path, weights.read_state_dict(path))
    description = weights.describe(descriptor)
    try:
        descriptor.to(ctx.device, _dtype(dtype, descriptor, ctx.device))
    except spandrel.UnsupportedDtypeError:
        raise NodeUserError(f"{path} is {description}, which cannot run in {dtype}: choose another dtype") from None
    return {"upscale_model": UpscaleModel(descriptor.model, descriptor, str(path), description)}


@node(
    "image.upscale_model",
    title="Upscale Image",
    category="image/transform",
    inputs=[Input("upscale_model", T.UPSCALE_MODEL), Input("image", T.IMAGE)],
    params=[
        Param("tile", T.INT, DEFAULT_TILE, min=0, max=MAX_TILE, step=8,
              description="tile side in input pixels (0: the whole picture at once); smaller tiles use less memory"),
        Param("overlap", T.INT, DEFAULT_OVERLAP, min=0, max=1024, step=4,
              description="input pixels by which tiles overlap; their outputs are cross-faded there so no seam shows"),
    ],
    outputs=[Output("image", T.IMAGE)],
)
def upscale_image(ctx, upscale_model, image, tile, overlap):
    """Enlarge (or restore) a picture with an upscale model: the output is the model's scale times the input,
    computed tile by tile on the engine's device, with progress per tile."""
    import spandrel
    import torch

    descriptor = upscale_model.descriptor
    if tile and overlap >= tile:
        raise NodeUserError(f"overlap ({overlap}) must be smaller than tile ({tile})")
    if descriptor.tiling == spandrel.ModelTiling.INTERNAL:
        tile = 0  # the model tiles by itself (and needs the whole picture to do it well)
    if tile:
        tile = _fitting_tile(tile, descriptor.size_requirements)
    model_device = descriptor.device
    pixels = image.to(model_device, descriptor.dtype)
    if descriptor.input_channels == 1:
        pixels = sum(pixels[:, i:i + 1] * k for i, k in enumerate(LUMA))
    b, _, h, w = image.shape
    steps = b * _tiling.count(h, w, tile, overlap)
    done = [0]

    def step():
        done[0] += 1
        ctx.progress(done[0] / steps)

    ctx.check_cancelled()
    with torch.no_grad():
        out = _tiling.run(descriptor, pixels, upscale_model.scale, tile, overlap, step)
    if out.shape[1] == 1:
        out = out.expand(-1, 3, -1, -1)
    return {"image": out.clamp(0, 1).to(ctx.device).contiguous()}


def _fitting_tile(tile: int, requirements) -> int:
    """The tile side nearest above ``tile`` that the model takes without padding (at least its minimum, a
    multiple of what it must be a multiple of)."""
    side = max(tile, requirements.minimum)
    step = requirements.multiple_of
    return -(-side // step) * step
