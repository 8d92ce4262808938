"""Changes to how a model runs that need no new weights: FreeU.

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
