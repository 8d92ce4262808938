"""Text conditioning: prompts through the family's own text encoder(s) and tokenizer(s)."""

from __future__ import annotations

from nodegraph import Input, Output, Param, PortType as T, node

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
)
def text_condition(ctx, text_encoder, prompt, negative):
    """Encode a positive and a negative prompt for a Sampler."""
    import torch

    for name, module in text_encoder.components.items():
        if name.startswith("text_encoder"):
            activate(module, text_encoder.loras)
    with torch.inference_mode():
        return {"conditioning": FAMILIES[text_encoder.family].encode(text_encoder, prompt, negative, ctx.device)}
