"""Text to mask with CLIPSeg (transformers' CLIPSegForImageSegmentation): name a thing in words, get a soft mask of
where it is, for inpainting or compositing without drawing a mask by hand.

Load CLIPSeg reads a transformers CLIPSeg folder with its processor, offline; its CLIPSEG_MODEL output lives in the
engine's cache, so a new picture or prompt re-runs only Text to Mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nodegraph import NodeUserError, Output, Param, PortType as T, node
from nodegraph.imaging import to_pil
from nodegraph.models import MODEL_HINT
from nodegraph.node import Input

from . import _model_files as files
from .detect import refuse_long_texts, to_device


@dataclass(eq=False)
class ClipSegModel:
    model: Any
    processor: Any
    path: str


@node(
    "model.clipseg",
    title="Load CLIPSeg",
    category="analyze/segment",
    params=[
        Param("model", T.STRING, "", hint=MODEL_HINT,
              description="a transformers CLIPSeg folder (e.g. CIDAS/clipseg-rd64-refined) with its processor and "
                          "tokenizer files: a path, a name in the model folders, or hf:org/name"),
        Param("dtype", T.ENUM, "auto", choices=("auto", "float32", "float16", "bfloat16"),
              description="weight precision; auto: float16 on a GPU, float32 on the CPU"),
    ],
    outputs=[Output("clipseg_model", T.CLIPSEG_MODEL)],
    identity=lambda params, ctx: files.identity(params["model"], ctx),
)
def load_clipseg(ctx, model, dtype):
    """Load CLIPSeg and its processor, so Text to Mask can find things named in words."""
    path = files.resolve(model, ctx)
    kind = files.model_type(path)
    if kind != "clipseg":
        raise NodeUserError(f"{path} holds a {kind!r} model, not CLIPSeg")
    module, processor = files.load_transformers(path, "CLIPSegForImageSegmentation", "CLIPSegProcessor", dtype, ctx.device)
    return {"clipseg_model": ClipSegModel(module, processor, str(path))}


def prompt_texts(prompt: str) -> list[str]:
    """``"a cat, the sky"`` -> ``["a cat", "the sky"]``, one mask each."""
    texts = [t.strip() for t in prompt.split(",") if t.strip()]
    if not texts:
        raise NodeUserError("prompt: name what to mask, e.g. 'a cat, the sky'")
    return texts


@node(
    "analyze.clipseg",
    title="Text to Mask (CLIPSeg)",
    category="analyze/segment",
    inputs=[Input("clipseg_model", T.CLIPSEG_MODEL, description="a model from Load CLIPSeg"),
            Input("image", T.IMAGE, description="the pictures to mask")],
    params=[
        Param("prompt", T.STRING, "", description="what to mask, texts split by commas: 'a cat, the sky'; one mask each"),
        Param("combine", T.ENUM, "union", choices=("union", "separate"),
              description="union: one mask per picture, the most of every text's mask at each pixel; separate: a batch "
                          "of one mask per text (per picture, in prompt order)"),
        Param("threshold", T.FLOAT, 0.0, min=0.0, max=1.0, step=0.05,
              description="0: soft probabilities in [0, 1]; above 0: 1 where the probability is above it, else 0"),
    ],
    outputs=[Output("mask", T.MASK, description="(pictures or pictures x texts, 1, H, W) at the picture's size")],
)
def text_to_mask(ctx, clipseg_model, image, prompt, combine, threshold):
    """Masks of the things a prompt names. CLIPSeg scores a square grid (352 x 352 for the released models, the
    picture squeezed to it); the probabilities (sigmoid of its logits) are resized bilinearly to the picture's
    size, then thresholded if asked."""
    import torch
    import torch.nn.functional as F

    texts = prompt_texts(prompt)
    model, processor = clipseg_model.model, clipseg_model.processor
    refuse_long_texts(processor.tokenizer, texts, model.config.text_config.max_position_embeddings, "CLIPSeg")
    masks = []
    for picture in to_pil(image):
        batch = processor(text=texts, images=[picture] * len(texts), padding=True, return_tensors="pt")
        with torch.inference_mode():
            logits = model(**to_device(batch, model)).logits  # (texts, h, w)
        probs = torch.sigmoid(logits.float().reshape(len(texts), 1, *logits.shape[-2:]))
        masks.append(F.interpolate(probs, size=(picture.height, picture.width), mode="bilinear", align_corners=False))
    mask = torch.cat(masks)  # (pictures * texts, 1, H, W), picture-major
    if combine == "union":
        mask = mask.reshape(len(masks), len(texts), *mask.shape[-2:]).amax(dim=1, keepdim=True)
    if threshold > 0:
        mask = (mask > threshold).float()
    return {"mask": mask.clamp(0, 1).to(image.device)}
