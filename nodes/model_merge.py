"""Merging two models' weights, and saving a model as a diffusers folder anyone can load.

Merge makes a new denoiser (a copy of the first, so both loaded models stay as they were) whose every
weight is ``(1 - ratio) * a + ratio * b``: the weighted-sum merge of ComfyUI's ModelMergeSimple and of the
A1111 checkpoint merger. Save Checkpoint writes the family's diffusers pipeline folder (``save_pretrained``,
safetensors only) into the output folder under a new name, whole or not at all. LoRAs on the models are
fused into copies of the weights first (diffusers' ``fuse_lora``), never into the shared loaded modules.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from pathlib import Path

from nodegraph import Input, NodeUserError, Output, Param, PortType as T, node
from nodegraph import NodegraphError
from nodegraph.files import inside, move_to_new_folder

from ._families import FAMILIES, partial_pipeline
from .lora import baked


@node(
    "model.merge",
    title="Merge Models",
    category="generate/models",
    inputs=[Input("a", T.MODEL), Input("b", T.MODEL)],
    params=[Param("ratio", T.FLOAT, 0.5, min=0.0, max=1.0, step=0.05, description="0: only a, 1: only b")],
    outputs=[Output("model", T.MODEL)],
)
def merge(ctx, a, b, ratio):
    """A weighted sum of two models of one architecture (two fine-tunes of the same base, say); a LoRA on
    either model is fused into its weights first, so the merge is of the models as they sample."""
    import torch

    if a.family != b.family:
        raise NodeUserError(f"cannot merge a {FAMILIES[a.family].title} model with a {FAMILIES[b.family].title} one")
    family = FAMILIES[a.family]
    first = baked(family, {family.denoiser_name: (a.denoiser, a.loras)})[family.denoiser_name]
    second = baked(family, {family.denoiser_name: (b.denoiser, b.loras)})[family.denoiser_name]
    theirs = second.state_dict()  # each model with its LoRAs fused in, as it samples
    ours = first.state_dict()
    wrong = [k for k, v in ours.items() if k not in theirs or theirs[k].shape != v.shape]
    if wrong:
        raise NodeUserError(f"the two models differ in architecture ({len(wrong)} weights do not match, e.g. "
                            f"{wrong[0]!r}): merge fine-tunes of the same base")
    merged = first if first is not a.denoiser else copy.deepcopy(a.denoiser)
    with torch.no_grad():
        for name, tensor in merged.state_dict().items():
            if tensor.is_floating_point():
                other = theirs[name].to(tensor.device, tensor.dtype)
                tensor.copy_(torch.lerp(ours[name].to(tensor.dtype), other, ratio) if 0 < ratio < 1
                             else (other if ratio == 1 else ours[name]))
    return {"model": dataclasses.replace(a, denoiser=merged, loras=(),
                                         source=f"merge of {a.source} and {b.source} at {ratio}")}


@node(
    "model.save",
    title="Save Checkpoint",
    category="generate/models",
    inputs=[Input("model", T.MODEL), Input("text_encoder", T.TEXT_ENCODER), Input("vae", T.VAE)],
    params=[Param("filename_prefix", T.STRING, "checkpoints/merged",
                  description="the folder's name in the output folder; _00001 and up are added")],
    outputs=[],
    output=True,
)
def save_checkpoint(ctx, model, text_encoder, vae, filename_prefix):
    """Write the model, its text encoder(s) and VAE as a diffusers pipeline folder (safetensors), which
    Load Checkpoint, diffusers' from_pretrained and ComfyUI's diffusers loader all read. LoRAs applied by
    Load LoRA are fused into the saved weights at their strengths, so the folder draws what the model drew."""
    family = FAMILIES[model.family]
    if text_encoder.family != model.family:
        raise NodeUserError(f"the text encoder is for {FAMILIES[text_encoder.family].title}, the model for "
                            f"{family.title}")
    import diffusers

    config = dict(model.scheduler_config)
    scheduler = getattr(diffusers, config.get("_class_name", "")).from_config(config)
    modules = {name: (module, text_encoder.loras) for name, module in text_encoder.components.items()
               if name.startswith("text_encoder")}
    modules[family.denoiser_name] = (model.denoiser, model.loras)
    pipe = partial_pipeline(family.pipeline, {**text_encoder.components, **baked(family, modules),  # LoRAs fused in
                                              "vae": vae.module, "scheduler": scheduler})
    try:
        first = inside(ctx.output_dir, f"{filename_prefix}_00001")
    except NodegraphError as e:
        raise NodeUserError(f"filename_prefix {filename_prefix!r}: {e}") from None
    first.parent.mkdir(parents=True, exist_ok=True)
    stem = first.name[: -len("_00001")]
    with tempfile.TemporaryDirectory(dir=first.parent, prefix=".partial-") as tmp:
        pipe.save_pretrained(Path(tmp) / "pipeline", safe_serialization=True)
        folder = move_to_new_folder(Path(tmp) / "pipeline", first.parent, lambda n: f"{stem}_{n:05d}")
    ctx.report_file(folder)
    return {}
