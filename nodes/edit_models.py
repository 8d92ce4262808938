"""Instruction-based editing: the reference picture an edit model (FLUX.1 Kontext) changes as the prompt says.

The reference travels on the conditioning as VAE latents (ComfyUI's ReferenceLatent); the model's family
appends them to the denoiser's input, as the family's diffusers edit pipeline does.
"""

from __future__ import annotations

import dataclasses

from PIL import Image

from nodegraph import Input, Output, Param, PortType as T, node
from nodegraph.imaging import map_pil

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
    return {"conditioning": dataclasses.replace(conditioning,
                                                references=conditioning.references + (latent.samples,))}


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
