"""Instruction-based editing: the reference picture an edit model (FLUX.1 Kontext) changes as the prompt says.

The reference travels on the conditioning as VAE latents (ComfyUI's ReferenceLatent); the model's family
appends them to the denoiser's input, as the family's diffusers edit pipeline does.
"""

from __future__ import annotations

import dataclasses

from PIL import Image

from nodegraph import Input, Output, Param, PortType as T, node
from nodegraph.imaging import map_pil

from ._diffusion_types import each_entry
from .image_transform import resizer


@node(
    "cond.reference_latent",
    title="Reference Latent",
    category="generate/conditioning",
    inputs=[
        Input("conditioning", T.CONDITIONING),
        Input("latent", T.LATENT, optional=True,
              description="the picture to edit, through VAE Encode with the model's VAE; unlinked: no change"),
    ],
    params=[Param("enable", T.BOOL, True, description="off: pass the conditioning through unchanged")],
    outputs=[Output("conditioning", T.CONDITIONING, description="the prompt with this reference added")],
)
def reference_latent(ctx, conditioning, enable, latent=None):
    """Give an edit model (FLUX.1 Kontext) the picture its prompt talks about; chain several for several
    references."""
    if latent is None or not enable:
        return {"conditioning": conditioning}
    add = lambda c: dataclasses.replace(c, references=c.references + (latent.samples,))  # noqa: E731
    return {"conditioning": each_entry(conditioning, add)}  # every prompt of a Combine Conditioning


@node(
    "image.kontext_scale",
    title="Flux Kontext Image Scale",
    category="image/transform",
    inputs=[Input("image", T.IMAGE)],
    outputs=[Output("image", T.IMAGE)],
)
def kontext_scale(ctx, image):
    """Bring a reference picture to the FLUX.1 Kontext training size nearest its aspect (about a megapixel),
    cropping the centre, as diffusers' Kontext pipeline and ComfyUI's FluxKontextImageScale do."""
    from diffusers.pipelines.flux.pipeline_flux_kontext import PREFERRED_KONTEXT_RESOLUTIONS

    aspect = image.shape[-1] / image.shape[-2]
    _, width, height = min((abs(aspect - w / h), w, h) for w, h in PREFERRED_KONTEXT_RESOLUTIONS)
    return {"image": map_pil(image, resizer("fill", width, height, Image.Resampling.LANCZOS))}


@node(
    "cond.edit_text",
    title="Edit Condition",
    category="generate/conditioning",
    inputs=[
        Input("text_encoder", T.TEXT_ENCODER, description="a vision-language text encoder (Qwen-Image-Edit's)"),
        Input("image", T.IMAGE, description="the picture to edit: the text encoder sees it with the prompt"),
        Input("vae", T.VAE, optional=True,
              description="when linked, the picture also goes on as reference latents (Qwen-Image-Edit needs both)"),
    ],
    params=[
        Param("prompt", T.STRING, "", hint="multiline", description="the edit to make, e.g. 'make the sky red'"),
        Param("negative", T.STRING, "", hint="multiline", description="what the result should not be (cfg > 1)"),
    ],
    outputs=[Output("conditioning", T.CONDITIONING)],
)
def edit_condition(ctx, text_encoder, image, prompt, negative, vae=None):
    """Encode an edit instruction together with the picture it is about (ComfyUI's TextEncodeQwenImageEdit):
    the picture is brought to about a megapixel as the family's edit pipeline does, shown to the
    vision-language text encoder, and, with a VAE, put on the conditioning as its reference latent."""
    import torch

    from nodegraph import NodeUserError
    from nodegraph.imaging import from_pil, to_pil

    from ._families import FAMILIES
    from .latent import encode

    family = FAMILIES[text_encoder.family]
    if not hasattr(family, "edit_picture"):
        raise NodeUserError(f"Edit Condition needs a text encoder that sees pictures (Qwen-Image-Edit's), not "
                            f"{family.title}'s; use Text Condition and Reference Latent")
    if image.shape[0] != 1:
        raise NodeUserError(f"Edit Condition takes one picture, got a batch of {image.shape[0]}")
    picture = family.edit_picture(to_pil(image)[0])
    with torch.inference_mode():
        conditioning = family.encode(text_encoder, prompt, negative, ctx.device, image=picture)
    if vae is not None:
        reference = encode(vae, from_pil([picture], ctx.device))
        conditioning = dataclasses.replace(conditioning, references=(reference,))
    return {"conditioning": conditioning}
