"""Depth maps with transformers' depth estimators (Depth Anything, DPT): a picture's relative depth as an
IMAGE, near bright and far dark, usable as a ControlNet control picture.

Load Depth Model reads a transformers folder with its image processor, offline; its DEPTH_MODEL output lives
in the engine's cache like every model, so Depth Map re-runs for a new picture without a reload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nodegraph import NodeUserError, Output, Param, PortType as T, node
from nodegraph.imaging import to_pil
from nodegraph.models import MODEL_HINT
from nodegraph.node import Input

from . import _model_files as files

MODEL_TYPES = ("depth_anything", "dpt", "zoedepth", "glpn", "depth_pro", "prompt_depth_anything")


@dataclass(eq=False)
class DepthModel:
    model: Any
    processor: Any
    path: str


@node(
    "model.depth",
    title="Load Depth Model",
    category="analyze/depth",
    params=[
        Param("model", T.STRING, "", hint=MODEL_HINT,
              description="a transformers depth-estimation folder (Depth Anything, DPT) with its image processor: "
                          "a path, a name in the model folders, or hf:org/name"),
        Param("dtype", T.ENUM, "auto", choices=("auto", "float32", "float16", "bfloat16")),
    ],
    outputs=[Output("depth_model", T.DEPTH_MODEL)],
    identity=lambda params, ctx: files.identity(params["model"], ctx),
)
def load_depth_model(ctx, model, dtype):
    """Load a depth estimator and its image processor (transformers' AutoModelForDepthEstimation)."""
    path = files.resolve(model, ctx)
    model_type = files.model_type(path)
    if model_type not in MODEL_TYPES:
        raise NodeUserError(f"{path} holds a {model_type!r} model, not a depth estimator "
                            f"({', '.join(MODEL_TYPES)})")
    module, processor = files.load_transformers(path, "AutoModelForDepthEstimation", "AutoImageProcessor", dtype,
                                                ctx.device)
    return {"depth_model": DepthModel(module, processor, str(path))}


def normalized(depth):
    """Each map scaled to [0, 1] on its own (the estimators give relative depth, larger nearer)."""
    low = depth.amin(dim=(-2, -1), keepdim=True)
    high = depth.amax(dim=(-2, -1), keepdim=True)
    return (depth - low) / (high - low).clamp_min(1e-8)


@node(
    "analyze.depth",
    title="Depth Map",
    category="analyze/depth",
    inputs=[Input("depth_model", T.DEPTH_MODEL), Input("image", T.IMAGE)],
    outputs=[Output("depth", T.IMAGE)],
)
def depth_map(ctx, depth_model, image):
    """A grey picture of how near each pixel is (near white, far black), at the picture's own size."""
    import torch

    pictures = to_pil(image)
    model = depth_model.model
    batch = depth_model.processor(images=pictures, return_tensors="pt")
    pixels = batch["pixel_values"].to(device=model.device, dtype=model.dtype)
    with torch.inference_mode():
        output = model(pixel_values=pixels)
    sizes = [(p.height, p.width) for p in pictures]
    maps = depth_model.processor.post_process_depth_estimation(output, target_sizes=sizes)
    depth = torch.stack([m["predicted_depth"].float() for m in maps])  # (batch, H, W)
    return {"depth": normalized(depth).unsqueeze(1).repeat(1, 3, 1, 1).to(image.device)}
