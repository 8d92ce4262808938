"""ControlNet: load one, and apply it (with a control picture, a strength and a step range) to conditioning."""

from __future__ import annotations

import dataclasses

from nodegraph import Input, NodeUserError, Output, Param, PortType as T, node

from . import _model_files as files
from ._diffusion_types import Control, ControlNet, each_entry

# Which model families each diffusers ControlNet class steers.
CONTROLNET_CLASSES = {
    "ControlNetModel": ("sd", "sdxl"),
    "SD3ControlNetModel": ("sd3",),
    "FluxControlNetModel": ("flux",),
}
LATENT_CONTROL = {"SD3ControlNetModel", "FluxControlNetModel"}  # they see the control picture through the VAE


@node(
    "model.controlnet",
    title="Load ControlNet",
    category="generate/models",
    params=[
        Param("model", T.STRING, "", hint="model", kind="controlnet",
              description="a diffusers ControlNet folder, a name, or hf:org/name"),
        Param("dtype", T.ENUM, "auto", choices=("auto", "float32", "float16", "bfloat16")),
    ],
    outputs=[Output("controlnet", T.CONTROLNET)],
    identity=lambda params, ctx: files.identity(params["model"], ctx, "controlnet"),
)
def load_controlnet(ctx, model, dtype):
    """Load a ControlNet saved in the diffusers layout (config.json and weights)."""
    import diffusers

    path = files.resolve(model, ctx, "controlnet")
    class_name = files.config_class(path, "a ControlNet folder")
    if class_name not in CONTROLNET_CLASSES:
        raise NodeUserError(f"{path} holds a {class_name}; supported ControlNets: {', '.join(CONTROLNET_CLASSES)}")
    try:
        module = getattr(diffusers, class_name).from_pretrained(
            path, torch_dtype=files.torch_dtype(dtype, ctx.device), local_files_only=True)
    except (OSError, ValueError) as e:
        raise NodeUserError(f"cannot load {path}: {e}") from None
    return {"controlnet": ControlNet(CONTROLNET_CLASSES[class_name], module.to(ctx.device).eval(), str(path))}


@node(
    "control.apply",
    title="Apply ControlNet",
    category="generate/conditioning",
    inputs=[
        Input("conditioning", T.CONDITIONING),
        Input("controlnet", T.CONTROLNET),
        Input("image", T.IMAGE, description="the control picture (edges, depth, pose, ...)"),
        Input("vae", T.VAE, optional=True, description="SD3 and Flux ControlNets: the model's VAE"),
    ],
    params=[
        Param("strength", T.FLOAT, 1.0, min=0.0, max=10.0, step=0.05),
        Param("start", T.FLOAT, 0.0, min=0.0, max=1.0, step=0.01, description="fraction of the steps where it begins"),
        Param("end", T.FLOAT, 1.0, min=0.0, max=1.0, step=0.01, description="fraction of the steps where it stops"),
    ],
    outputs=[Output("conditioning", T.CONDITIONING)],
)
def apply_controlnet(ctx, conditioning, controlnet, image, strength, start, end, vae):
    """Steer sampling with a control picture; chain several Apply nodes to combine ControlNets."""
    if start >= end:
        raise NodeUserError(f"start ({start}) must be before end ({end})")
    if type(controlnet.module).__name__ in LATENT_CONTROL and vae is None:
        raise NodeUserError("this ControlNet reads the control picture as latents: connect the model's VAE to 'vae'")
    control = Control(controlnet, image, strength, start, end, vae)
    return {"conditioning": each_entry(conditioning,
                                       lambda e: dataclasses.replace(e, controls=e.controls + (control,)))}
