"""Florence-2 through transformers: one vision-language model that captions a picture, reads its text, finds
its objects and grounds a phrase in it, chosen by a task token.

Load Florence-2 reads a transformers Florence-2 folder (``Florence2ForConditionalGeneration`` with its
``Florence2Processor``), offline; its VLM output lives in the engine's cache like every model, so Florence-2
re-runs for a new picture or task without a reload. The answer is parsed by the processor's own
``post_process_generation``, so the text and the boxes are what transformers gives; boxes become a BOXES
value on the picture (and their union a MASK) for a segmenter, a crop or an inpaint mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nodegraph import NodeUserError, Output, Param, PortType as T, node
from nodegraph.imaging import to_pil
from nodegraph.models import MODEL_HINT
from nodegraph.node import Input

from . import _model_files as files
from .boxes import Boxes, one_picture

#: the task parameter's words -> Florence-2's task tokens
TASKS = {
    "caption": "<CAPTION>",
    "detailed caption": "<DETAILED_CAPTION>",
    "more detailed caption": "<MORE_DETAILED_CAPTION>",
    "OCR": "<OCR>",
    "object detection": "<OD>",
    "phrase grounding": "<CAPTION_TO_PHRASE_GROUNDING>",
}
WITH_TEXT = ("phrase grounding",)  # tasks whose prompt carries the text parameter
TITLE = "Florence-2"


@dataclass(eq=False)
class VisionLanguageModel:
    """VLM: a loaded Florence-2 and its processor (the tokenizer, the image processor and the answer parser)."""

    model: Any
    processor: Any
    path: str


@node(
    "model.vlm",
    title="Load Florence-2",
    category="analyze/vision",
    params=[
        Param("model", T.STRING, "", hint=MODEL_HINT,
              description="a transformers Florence-2 folder (florence-community/Florence-2-base or -large, "
                          "with its processor): a path, a name in the model folders, or hf:org/name"),
        Param("dtype", T.ENUM, "auto", choices=("auto", "float32", "float16", "bfloat16"),
              description="auto: float32 on the CPU, float16 on a GPU"),
    ],
    outputs=[Output("vlm", T.VLM, description="the model and its processor, for Florence-2")],
    identity=lambda params, ctx: files.identity(params["model"], ctx),
)
def load_florence(ctx, model, dtype):
    """Load Florence-2 and its processor (transformers' Florence2ForConditionalGeneration, Florence2Processor)."""
    path = files.resolve(model, ctx)
    config = files.transformers_config(path)
    model_type = config["model_type"]
    if model_type != "florence2":
        raise NodeUserError(f"{path} holds a {model_type!r} model, not Florence-2 (config.json model_type "
                            f"'florence2')")
    parts = {(config.get(k) or {}).get("model_type") for k in ("vision_config", "text_config")}
    if parts & {"davit", "florence2_language"}:  # microsoft/Florence-2-*: the model's own code, not transformers'
        raise NodeUserError(f"{path} is Florence-2 in Microsoft's original remote-code layout, which runs code "
                            f"shipped with the model; use a folder converted for transformers' own Florence-2 "
                            f"classes (florence-community/Florence-2-base, -large, ...)")
    module, processor = files.load_transformers(path, "Florence2ForConditionalGeneration", "Florence2Processor",
                                                dtype, ctx.device)
    return {"vlm": VisionLanguageModel(module, processor, str(path))}


def prompt(task: str, text: str) -> str:
    """The processor's input text: the task token, followed by the phrase for grounding."""
    token = TASKS[task]
    if task in WITH_TEXT:
        if not text.strip():
            raise NodeUserError(f"text: {task} needs the phrase to find in the picture")
        return token + text.strip()
    return token


def generate(vlm: VisionLanguageModel, picture, task: str, text: str, max_new_tokens: int, num_beams: int):
    """Florence-2's parsed answer for one Pillow picture: ``post_process_generation``'s value for the task
    (a string, or a dict with ``bboxes`` and ``labels``). Generation is greedy (beam search with ``num_beams``
    beams, no sampling), so the same inputs give the same answer."""
    import torch

    model, processor = vlm.model, vlm.processor
    inputs = processor(text=prompt(task, text), images=picture, return_tensors="pt").to(model.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    with torch.inference_mode():
        ids = model.generate(**inputs, max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False)
    answer = processor.batch_decode(ids, skip_special_tokens=False)[0]
    token = TASKS[task]
    return processor.post_process_generation(answer, task=token, image_size=picture.size)[token]


def ordered(corners) -> list[list[float]]:
    """Each box's corners as x0 <= x1, y0 <= y1 (a trained Florence-2 writes them so; a stray answer may not)."""
    return [[min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)] for x0, y0, x1, y1 in corners]


@node(
    "analyze.florence",
    title=TITLE,
    category="analyze/vision",
    inputs=[Input("vlm", T.VLM, description="Florence-2, from Load Florence-2"),
            Input("image", T.IMAGE, description="one picture (pick one of a batch with Select from Batch)")],
    params=[
        Param("task", T.ENUM, "caption", choices=tuple(TASKS),
              description="what to ask: a caption (three lengths), the text in the picture (OCR), the objects "
                          "with their names (object detection), or where the phrase in 'text' is"),
        Param("text", T.STRING, "", description="the phrase to find, for phrase grounding (other tasks ignore it)"),
        Param("max_new_tokens", T.INT, 1024, min=1, max=4096,
              description="the longest answer, in tokens (a box takes 4)"),
        Param("num_beams", T.INT, 3, min=1, max=16,
              description="beam search width (1: greedy); no sampling, so an answer is repeatable"),
    ],
    outputs=[
        Output("text", T.STRING, description="the caption or the text read; for detection and grounding the "
                                              "label of each box, one a line"),
        Output("boxes", T.BOXES, description="the boxes found (detection, grounding) in the picture's pixels; "
                                             "none for the other tasks"),
        Output("mask", T.MASK, description="the union of the boxes, the picture's size (empty without boxes)"),
    ],
)
def florence(ctx, vlm, image, task, text, max_new_tokens, num_beams):
    """Ask Florence-2 about a picture: the answer as text, and for detection or grounding as boxes and a mask,
    so one model can caption a batch of renders, or find what to segment or inpaint."""
    image = one_picture(image, TITLE)
    picture = to_pil(image)[0]
    answer = generate(vlm, picture, task, text, max_new_tokens, num_beams)
    width, height = picture.size
    if isinstance(answer, str):
        boxes = Boxes([], width=width, height=height)
        words = answer
    else:
        boxes = Boxes(ordered(answer["bboxes"]), width=width, height=height, labels=answer["labels"])
        words = "\n".join(answer["labels"])
    masks = boxes.masks(image.device)
    mask = masks.amax(dim=0, keepdim=True) if len(boxes) else masks.new_zeros((1, 1, height, width))
    return {"text": words, "boxes": boxes, "mask": mask}
