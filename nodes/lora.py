"""LoRA: add a LoRA file to a model (and its text encoder) at a strength, removable without reloading.

A LoRA is loaded once into the shared module as a named PEFT adapter, through the family pipeline's own
``load_lora_weights`` (which reads the common file layouts). The MODEL / TEXT_ENCODER values coming out
only *name* the adapters to use and their strengths; the Sampler and Text Condition switch exactly those
on before they run. So the base model stays the base model for every other node, and deleting the LoRA
node needs no reload.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from nodegraph import Input, NodeUserError, Output, Param, PortType as T, node

from . import _model_files as files
from ._families import FAMILIES, partial_pipeline


def activate(module, loras) -> None:
    """Switch on exactly the adapters in ``loras`` (name, strength) that ``module`` holds; others off."""
    config = getattr(module, "peft_config", None)
    if not config:
        return
    from diffusers.utils.peft_utils import set_adapter_layers, set_weights_and_activate_adapters

    present = [(name, weight) for name, weight in loras if name in config]
    if present:
        set_adapter_layers(module, enabled=True)
        set_weights_and_activate_adapters(module, [n for n, _ in present], [w for _, w in present])
    else:
        set_adapter_layers(module, enabled=False)


def baked(family, modules: dict) -> dict:
    """``modules`` (pipeline component name -> (module, loras)) with the LoRAs fused into copies of their weights
    and no adapter layers left, through diffusers' ``fuse_lora`` and ``unload_lora_weights`` on the copies (the
    shared modules keep their adapters); a module holding no adapters comes back as it is."""
    import copy

    copies, fuse = {}, {}
    for name, (module, loras) in modules.items():
        config = getattr(module, "peft_config", None)
        if not config:
            continue
        copies[name] = copy.deepcopy(module)
        activate(copies[name], loras)
        fuse[name] = [adapter for adapter, _ in loras if adapter in config]
    if copies:
        pipe = partial_pipeline(family.pipeline, copies)
        for name, adapters in fuse.items():
            if adapters:  # each adapter at the strength activate() gave it on this module
                pipe.fuse_lora(components=[name], adapter_names=adapters)
        pipe.unload_lora_weights()
    return {name: copies.get(name, module) for name, (module, _) in modules.items()}


def _weights_file(path: Path) -> Path:
    if path.is_file():
        if path.suffix != ".safetensors":
            raise NodeUserError(f"{path}: LoRA files are read only as .safetensors")
        return path
    found = sorted(path.glob("*.safetensors"))
    if len(found) != 1:
        raise NodeUserError(f"{path}: expected one .safetensors LoRA file in the folder, found {len(found)}")
    return found[0]


@node(
    "model.lora",
    title="Load LoRA",
    category="generate/models",
    inputs=[Input("model", T.MODEL), Input("text_encoder", T.TEXT_ENCODER, optional=True)],
    params=[
        Param("lora", T.STRING, "", hint="model", kind="loras",
              description="a LoRA .safetensors file (or a folder holding one)"),
        Param("strength", T.FLOAT, 1.0, min=-4.0, max=4.0, step=0.05, description="on the denoiser"),
        Param("text_strength", T.FLOAT, 1.0, min=-4.0, max=4.0, step=0.05, description="on the text encoder(s)"),
    ],
    outputs=[Output("model", T.MODEL), Output("text_encoder", T.TEXT_ENCODER)],
    identity=lambda params, ctx: files.identity(params["lora"], ctx, "loras"),
)
def load_lora(ctx, model, text_encoder, lora, strength, text_strength):
    """Apply a LoRA to a model and, where the file has text-encoder weights, to its text encoder."""
    from safetensors.torch import load_file

    family = FAMILIES[model.family]
    weights = _weights_file(files.resolve(lora, ctx, "loras"))
    st = weights.stat()
    name = "lora_" + hashlib.sha1(f"{weights.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    components = {family.denoiser_name: model.denoiser}
    if text_encoder is not None:
        if text_encoder.family != model.family:
            raise NodeUserError("the text encoder and the model come from different families")
        components.update(text_encoder.components)
    if name not in (getattr(model.denoiser, "peft_config", None) or {}):
        pipe = partial_pipeline(family.pipeline, components)
        try:
            pipe.load_lora_weights(load_file(weights), adapter_name=name)
        except (ValueError, KeyError, RuntimeError) as e:
            raise NodeUserError(f"{weights.name} does not fit this {family.title} model: {e}") from None
    out_model = dataclasses.replace(model, loras=model.loras + ((name, strength),))
    out_text = text_encoder
    if text_encoder is not None:
        out_text = dataclasses.replace(text_encoder, loras=text_encoder.loras + ((name, text_strength),))
    return {"model": out_model, "text_encoder": out_text}
