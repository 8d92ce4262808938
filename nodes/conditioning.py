"""Text conditioning: prompts through the family's own text encoder(s) and tokenizer(s)."""

from __future__ import annotations

from nodegraph import Input, NodeUserError, Output, Param, PortType as T, node

from . import embeddings
from ._diffusion_types import each_entry
from ._families import FAMILIES
from .lora import activate


@node(
    "cond.text",
    title="Text Condition",
    category="generate/conditioning",
    inputs=[Input("text_encoder", T.TEXT_ENCODER)],
    params=[
        Param("prompt", T.STRING, "", hint="multiline", description="what the picture should show"),
        Param("negative", T.STRING, "", hint="multiline", description="what it should not (used when CFG > 1)"),
    ],
    outputs=[Output("conditioning", T.CONDITIONING)],
    identity=embeddings.identity,
)
def text_condition(ctx, text_encoder, prompt, negative):
    """Encode a positive and a negative prompt for a Sampler; ``embedding:name`` uses a textual-inversion
    embedding from the embeddings folders."""
    import torch

    family = FAMILIES[text_encoder.family]
    if embeddings.names(prompt, negative):
        if text_encoder.family not in ("sd", "sdxl"):
            raise NodeUserError(f"embeddings (embedding:name) work with SD 1.x/2.x and SDXL text encoders, not "
                                f"{family.title}")
        prompt, negative = (embeddings.expand(text_encoder, p, ctx, family.pipeline) for p in (prompt, negative))
    for name, module in text_encoder.components.items():
        if name.startswith("text_encoder"):
            activate(module, text_encoder.loras)
    with torch.inference_mode():
        return {"conditioning": family.encode(text_encoder, prompt, negative, ctx.device)}


@node(
    "cond.clip_skip",
    title="CLIP Skip",
    category="generate/conditioning",
    inputs=[Input("text_encoder", T.TEXT_ENCODER)],
    params=[Param("skip", T.INT, 1, min=0, max=23,
                  description="CLIP layers to leave out from the end: 0 uses the last layer, 1 the one before it "
                              "(ComfyUI's CLIP Set Last Layer -2)")],
    outputs=[Output("text_encoder", T.TEXT_ENCODER)],
)
def clip_skip(ctx, text_encoder, skip):
    """Encode prompts from an earlier CLIP layer, as many SD 1.x fine-tunes expect (diffusers' clip_skip)."""
    import dataclasses

    if text_encoder.family not in ("sd", "sdxl", "sd3"):
        raise NodeUserError(f"CLIP Skip works on SD 1.x/2.x, SDXL and SD3 text encoders, not {text_encoder.family}")
    return {"text_encoder": dataclasses.replace(text_encoder,
                                                options={**text_encoder.options, "clip_skip": skip or None})}


@node(
    "cond.zero_out",
    title="Zero Conditioning",
    category="generate/conditioning",
    inputs=[Input("conditioning", T.CONDITIONING)],
    outputs=[Output("conditioning", T.CONDITIONING)],
)
def zero_out(ctx, conditioning):
    """All-zero prompt embeddings: the negative SD3 and Flux workflows use instead of an empty prompt."""
    import dataclasses

    import torch

    def zeroed(entry):
        zeros = {k: torch.zeros_like(v) for k, v in entry.positive.items()}
        return dataclasses.replace(entry, positive=zeros, negative=dict(zeros), prompt="")

    return {"conditioning": each_entry(conditioning, zeroed)}


@node(
    "cond.combine",
    title="Average Conditioning",
    category="generate/conditioning",
    inputs=[Input("a", T.CONDITIONING), Input("b", T.CONDITIONING)],
    params=[Param("weight", T.FLOAT, 0.5, min=0.0, max=1.0, step=0.05, description="0: only a, 1: only b")],
    outputs=[Output("conditioning", T.CONDITIONING)],
)
def combine(ctx, a, b, weight):
    """Mix two prompts' embeddings into one prompt (weighted mean; ComfyUI's ConditioningAverage); ControlNets
    and IP-Adapters of both are kept, a's first. Combine Conditioning keeps the prompts apart instead."""
    import dataclasses

    if a.family != b.family:
        raise NodeUserError(f"cannot average {a.family} conditioning with {b.family} conditioning")
    _single("Average Conditioning", a, b)

    def mix(x: dict, y: dict) -> dict:
        out = {}
        for name, tensor in x.items():
            other = y[name].to(tensor.device, tensor.dtype)
            if other.shape != tensor.shape:
                raise NodeUserError(f"the two conditionings differ in shape for {name!r}: "
                                    f"{tuple(tensor.shape)} and {tuple(other.shape)} (prompts of different lengths)")
            out[name] = tensor * (1 - weight) + other * weight
        return out

    return {"conditioning": dataclasses.replace(
        a, positive=mix(a.positive, b.positive), negative=mix(a.negative, b.negative),
        prompt=f"{a.prompt} | {b.prompt}", controls=a.controls + b.controls, ip_adapters=a.ip_adapters + b.ip_adapters,
        guidance=a.guidance if a.guidance is not None else b.guidance)}


@node(
    "cond.concat",
    title="Concatenate Conditioning",
    category="generate/conditioning",
    inputs=[Input("a", T.CONDITIONING), Input("b", T.CONDITIONING)],
    outputs=[Output("conditioning", T.CONDITIONING)],
)
def concat(ctx, a, b):
    """Append b's prompt tokens to a's (ComfyUI's Conditioning (Concat)): a longer prompt than the text
    encoder's 77 tokens, or two prompts the model attends to together; a's pooled embeddings are kept."""
    import dataclasses

    import torch

    if a.family != b.family:
        raise NodeUserError(f"cannot concatenate {a.family} conditioning with {b.family} conditioning")
    _single("Concatenate Conditioning", a, b)
    if a.family not in CONCATENABLE:
        raise NodeUserError(f"Concatenate Conditioning works on SD 1.x/2.x, SDXL and SD3 conditioning, not "
                            f"{FAMILIES[a.family].title}")

    def joined(x: dict, y: dict) -> dict:
        other = y["prompt_embeds"].to(x["prompt_embeds"].device, x["prompt_embeds"].dtype)
        if other.shape[0] != x["prompt_embeds"].shape[0] or other.shape[2:] != x["prompt_embeds"].shape[2:]:
            raise NodeUserError(f"the two conditionings cannot be joined: {tuple(x['prompt_embeds'].shape)} and "
                                f"{tuple(other.shape)}")
        return {**x, "prompt_embeds": torch.cat([x["prompt_embeds"], other], dim=1)}

    return {"conditioning": dataclasses.replace(
        a, positive=joined(a.positive, b.positive), negative=joined(a.negative, b.negative),
        prompt=f"{a.prompt} {b.prompt}", controls=a.controls + b.controls, ip_adapters=a.ip_adapters + b.ip_adapters)}


CONCATENABLE = ("sd", "sdxl", "sd3")  # families whose denoiser takes a prompt of any length in prompt_embeds


def _single(title: str, *conds) -> None:
    if any(c.entries for c in conds):
        raise NodeUserError(f"{title} takes single prompts, not the list a Combine Conditioning makes: use it on the "
                            f"prompts before combining them")


@node(
    "cond.guidance",
    title="Flux Guidance",
    category="generate/conditioning",
    inputs=[Input("conditioning", T.CONDITIONING)],
    params=[Param("guidance", T.FLOAT, 3.5, min=0.0, max=100.0, step=0.1,
                  description="the guidance scale a guidance-distilled model (Flux dev) is given; the Sampler's cfg "
                              "is used when this node is absent")],
    outputs=[Output("conditioning", T.CONDITIONING)],
)
def guidance(ctx, conditioning, guidance):
    """Set the embedded guidance scale of a Flux model, leaving the Sampler's cfg for true guidance."""
    import dataclasses

    return {"conditioning": each_entry(conditioning, lambda e: dataclasses.replace(e, guidance=guidance))}
