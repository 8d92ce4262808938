"""Changes to how a model runs that need no new weights: FreeU, Differential Diffusion.

Like a LoRA, the MODEL value coming out only *says* what to switch on; the Sampler switches it on (and
everything else off) on the shared denoiser right before it samples, so the loaded model stays the base
model for every other node and removing the patch needs no reload.
"""

from __future__ import annotations

import dataclasses

from nodegraph import Input, NodeUserError, Output, Param, PortType as T, node


def apply_freeu(denoiser, factors) -> None:
    """Switch diffusers' FreeU on ``denoiser`` with ``factors`` (s1, s2, b1, b2), or off when None."""
    if factors is not None:
        s1, s2, b1, b2 = factors
        denoiser.enable_freeu(s1=s1, s2=s2, b1=b1, b2=b2)
    elif hasattr(denoiser, "disable_freeu"):
        denoiser.disable_freeu()


@node(
    "model.freeu",
    title="FreeU",
    category="generate/models",
    inputs=[Input("model", T.MODEL)],
    params=[
        Param("b1", T.FLOAT, 1.5, min=0.0, max=3.0, step=0.05, description="backbone factor, first up-block stage"),
        Param("b2", T.FLOAT, 1.6, min=0.0, max=3.0, step=0.05, description="backbone factor, second stage"),
        Param("s1", T.FLOAT, 0.9, min=0.0, max=3.0, step=0.05, description="skip factor, first stage"),
        Param("s2", T.FLOAT, 0.2, min=0.0, max=3.0, step=0.05, description="skip factor, second stage"),
    ],
    outputs=[Output("model", T.MODEL)],
)
def freeu(ctx, model, b1, b2, s1, s2):
    """FreeU: re-weight a UNet's backbone and skip features while it samples, for more detail with no training
    (diffusers' enable_freeu; the defaults are the FreeU authors' values for SD 1.x)."""
    if not hasattr(model.denoiser, "enable_freeu"):
        raise NodeUserError(f"FreeU works on UNet models (SD 1.x/2.x, SDXL); this {model.family} model's "
                            "denoiser is a transformer")
    return {"model": dataclasses.replace(model, freeu=(s1, s2, b1, b2))}


def step_mask(model, mask, timesteps, i: int, stop=None):
    """The mask the Sampler blends with after step ``i`` (1 = this step's result, 0 = the input's path).

    Plain inpainting blends with the mask as it is. With Differential Diffusion it is ComfyUI's
    DifferentialDiffusion rule: ``mask >= threshold``, the threshold falling linearly in the model's
    timestep from 1 at the first step to 0 where the run stops (``stop``, or the clean end), so a grey
    value g is repainted over the last g of the run; below strength 1 it is mixed with the mask itself.
    """
    if model.differential is None:
        return mask
    start, now = float(timesteps[0]), float(timesteps[i])
    end = 0.0 if stop is None else float(stop)
    threshold = (now - end) / (start - end) if start > end else 0.0
    binary = (mask >= threshold).to(mask.dtype)
    strength = model.differential
    return strength * binary + (1 - strength) * mask if strength < 1 else binary


@node(
    "model.differential_diffusion",
    title="Differential Diffusion",
    category="generate/models",
    inputs=[Input("model", T.MODEL)],
    params=[
        Param("strength", T.FLOAT, 1.0, min=0.0, max=1.0, step=0.01,
              description="1: each step's mask is the soft mask thresholded by the step's progress; lower values "
                          "mix that with the soft mask itself (ComfyUI's strength)"),
    ],
    outputs=[Output("model", T.MODEL)],
)
def differential_diffusion(ctx, model, strength):
    """Differential Diffusion (Levin & Fried 2023): a soft inpainting mask says how much each pixel may change.
    Every step the Sampler keeps the input where the mask is below a threshold that falls from 1 to 0 over the
    run, so grey areas are repainted only in the later, finer steps (ComfyUI's DifferentialDiffusion)."""
    return {"model": dataclasses.replace(model, differential=float(strength))}
