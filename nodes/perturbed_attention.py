"""Perturbed-attention guidance (PAG): guide a model away from its own prediction with some self-attention
layers replaced by the identity, for sharper structure with or without a prompt.

The node only *says* PAG is wanted (scale, layers) on the MODEL value, like FreeU. The Sampler asks
``perturbed`` for its guidance step: without PAG that is the family's prediction with classifier-free
guidance; with PAG it is diffusers' own PAG pipeline code (``PAGMixin``): its attention processors on the
chosen layers for the run, the extra perturbed copy of the conditional batch, and its combination
``uncond + cfg * (cond - uncond) + pag_scale * (cond - perturbed)`` (no adaptive scale).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from contextlib import contextmanager

from nodegraph import Input, NodeUserError, Output, Param, PortType as T, node

from ._families import FAMILIES, partial_pipeline

PAG_PIPELINES = {  # our family -> the diffusers PAG pipeline whose PAGMixin and default layers we use
    "sd": "StableDiffusionPAGPipeline",
    "sdxl": "StableDiffusionXLPAGPipeline",
    "sd3": "StableDiffusion3PAGPipeline",
}


def default_layers(family: str) -> str:
    """The ``pag_applied_layers`` default of the family's diffusers PAG pipeline ("mid", "blocks.1")."""
    import diffusers

    default = inspect.signature(getattr(diffusers, PAG_PIPELINES[family]).__init__).parameters["pag_applied_layers"]
    return default.default if isinstance(default.default, str) else ",".join(default.default)


def _layer_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _pipeline(model, layers: list[str]):
    """The family's diffusers PAG pipeline holding only our denoiser (for its PAGMixin methods)."""
    family = FAMILIES[model.family]
    given = {family.denoiser_name: model.denoiser, "pag_applied_layers": layers}
    if model.family == "sd":
        given["requires_safety_checker"] = False
    return partial_pipeline(PAG_PIPELINES[model.family], given)


def _install(pipe, model, guided: bool, layers_text: str) -> dict:
    """Put diffusers' PAG processors on the chosen layers; returns the processors to restore."""
    denoiser = model.denoiser
    saved = dict(denoiser.attn_processors)
    try:
        pipe._set_pag_attn_processor(pag_applied_layers=pipe.pag_applied_layers, do_classifier_free_guidance=guided)
    except ValueError as e:  # "Cannot find PAG layer to set attention processor for: ..."
        denoiser.set_attn_processor(saved)
        raise NodeUserError(f"layers {layers_text!r}: {e} (name self-attention layers of this model, e.g. "
                            f"{default_layers(model.family)!r})") from None
    return saved


def _plain(guided: bool, cfg: float):
    def guide(predict, runner, x, t, embeds, controls):
        prediction = predict(runner, x, t, embeds, controls)
        if guided:
            uncond, text = prediction.chunk(2)
            prediction = uncond + cfg * (text - uncond)
        return prediction
    return guide


@contextmanager
def perturbed(model, guided: bool, cfg: float):
    """For one sampling run, yields ``guide(predict, runner, x, t, embeds, controls)``: the family's
    ``predict`` on the batch with classifier-free guidance applied, and with PAG when the model asks for it
    (its attention processors are on for the run and restored after)."""
    if model.pag is None:
        yield _plain(guided, cfg)
        return
    scale, layers_text = model.pag
    pipe = _pipeline(model, _layer_list(layers_text))
    pipe._pag_scale, pipe._pag_adaptive_scale = scale, 0.0

    def extended(value, n: int, size: int):
        """A batch input with diffusers' PAG layout: [uncond, cond, cond] (or [cond, cond] without CFG)."""
        if isinstance(value, (list, tuple)):
            return type(value)(extended(v, n, size) for v in value)
        if not hasattr(value, "shape") or value.ndim == 0 or value.shape[0] != size:
            return value
        if guided:
            return pipe._prepare_perturbed_attention_guidance(value[n:], value[:n], True)
        return pipe._prepare_perturbed_attention_guidance(value, None, False)

    def guide(predict, runner, x, t, embeds, controls):
        size = x.shape[0]
        n = size // 2 if guided else size
        x = extended(x, n, size)
        embeds = {name: extended(value, n, size) for name, value in embeds.items()}
        controls = [(module, extended(image, n, size), strength) for module, image, strength in controls]
        prediction = predict(runner, x, t, embeds, controls)
        return pipe._apply_perturbed_attention_guidance(prediction, guided, cfg, t)

    saved = _install(pipe, model, guided, layers_text)
    try:
        yield guide
    finally:
        model.denoiser.set_attn_processor(saved)


@node(
    "model.pag",
    title="Perturbed Attention Guidance",
    category="generate/models",
    inputs=[Input("model", T.MODEL)],
    params=[
        Param("scale", T.FLOAT, 3.0, min=0.0, max=100.0, step=0.1,
              description="PAG scale (diffusers' pag_scale): how far to steer away from the perturbed prediction; "
                          "0 switches PAG off"),
        Param("layers", T.STRING, "default",
              description="self-attention layers to perturb, comma-separated names or patterns as diffusers' "
                          "pag_applied_layers ('mid', 'down.block_1', 'blocks.1'); 'default': the family's "
                          "diffusers PAG pipeline default ('mid' for SD/SDXL, 'blocks.1' for SD3)"),
    ],
    outputs=[Output("model", T.MODEL)],
)
def pag(ctx, model, scale, layers):
    """Perturbed-attention guidance (Ahn et al. 2024): every step also runs the conditional batch with the
    chosen self-attention maps replaced by the identity and steers away from it; the Sampler runs that
    third batch through diffusers' PAG pipeline code (SD 1.x/2.x, SDXL, SD3)."""
    if model.family not in PAG_PIPELINES:
        raise NodeUserError(f"Perturbed Attention Guidance works on SD 1.x/2.x, SDXL and SD3 models (diffusers' PAG "
                            f"pipelines); this is a {FAMILIES[model.family].title} model")
    text = default_layers(model.family) if layers.strip() in ("", "default") else layers
    for part in _layer_list(text):
        try:
            re.compile(part)
        except re.error as e:
            raise NodeUserError(f"layers: {part!r} is not a valid layer pattern ({e})") from None
    if scale <= 0 or not _layer_list(text):
        return {"model": dataclasses.replace(model, pag=None)}  # diffusers' do_perturbed_attention_guidance is off
    pipe = _pipeline(model, _layer_list(text))
    model.denoiser.set_attn_processor(_install(pipe, model, True, text))  # the layers exist: try, undo
    return {"model": dataclasses.replace(model, pag=(float(scale), text))}
