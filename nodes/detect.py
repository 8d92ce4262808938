"""Text-prompted object detection with transformers' open-vocabulary detectors (Grounding DINO, OWL-ViT, OWLv2):
name what to find in words, get BOXES on the picture.

Load Detector reads a transformers folder with its processor, offline, and picks the model and processor classes
from config.json's model_type (a table below); its DETECT_MODEL output lives in the engine's cache like every
model, so Detect Objects re-runs for a new picture or prompt without a reload. Detect Objects leaves the scoring
and the box scaling to the processor's own post-processing, so its boxes are transformers' boxes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nodegraph import NodeUserError, Output, Param, PortType as T, node
from nodegraph.imaging import to_pil
from nodegraph.models import MODEL_HINT
from nodegraph.node import Input

from . import _model_files as files
from .boxes import Boxes, one_picture

# config.json's model_type -> the transformers model class and processor class that read such a folder
DETECTORS = {
    "grounding-dino": ("GroundingDinoForObjectDetection", "GroundingDinoProcessor"),
    "owlvit": ("OwlViTForObjectDetection", "OwlViTProcessor"),
    "owlv2": ("Owlv2ForObjectDetection", "Owlv2Processor"),
}


@dataclass(eq=False)
class DetectModel:
    model: Any
    processor: Any
    path: str
    kind: str  # config.json's model_type: a key of DETECTORS


@node(
    "model.detect",
    title="Load Detector",
    category="analyze/detect",
    params=[
        Param("model", T.STRING, "", hint=MODEL_HINT,
              description="a transformers open-vocabulary detector folder (Grounding DINO, OWL-ViT or OWLv2) with its "
                          "processor and tokenizer files: a path, a name in the model folders, or hf:org/name"),
        Param("dtype", T.ENUM, "auto", choices=("auto", "float32", "float16", "bfloat16"),
              description="weight precision; auto: float16 on a GPU, float32 on the CPU"),
    ],
    outputs=[Output("detect_model", T.DETECT_MODEL)],
    identity=lambda params, ctx: files.identity(params["model"], ctx),
)
def load_detector(ctx, model, dtype):
    """Load a text-prompted detector and its processor, so Detect Objects can find things named in words."""
    path = files.resolve(model, ctx)
    kind = files.model_type(path)
    if kind not in DETECTORS:
        raise NodeUserError(f"{path} holds a {kind!r} model, not a text-prompted detector "
                            f"(Grounding DINO, OWL-ViT or OWLv2: {', '.join(DETECTORS)})")
    module, processor = files.load_transformers(path, *DETECTORS[kind], dtype, ctx.device)
    return {"detect_model": DetectModel(module, processor, str(path), kind)}


def prompt_labels(prompt: str) -> list[str]:
    """``"a cat, a dog"`` or ``"a cat. a dog."`` -> ``["a cat", "a dog"]``: what to find, one label each."""
    labels = [label.strip() for label in re.split(r"[,.;\n]", prompt)]
    labels = [label for label in labels if label]
    if not labels:
        raise NodeUserError("prompt: name what to find, e.g. 'a cat, a dog'")
    return labels


def refuse_long_texts(tokenizer, texts, limit: int, model_name: str) -> None:
    """A NodeUserError naming a text the model cannot read whole (its text encoder has ``limit`` positions)."""
    for text in texts:
        count = len(tokenizer(text, verbose=False)["input_ids"])
        if count > limit:
            raise NodeUserError(f"prompt: {text[:60]!r} is {count} tokens, more than the {limit} that {model_name} "
                                f"reads; shorten it")


def to_device(batch, model) -> dict:
    """A processor's tensors on the model's device; pictures in the model's dtype, token ids as they are."""
    return {k: v.to(device=model.device, dtype=model.dtype) if v.is_floating_point() else v.to(model.device)
            for k, v in batch.items()}


@node(
    "analyze.detect",
    title="Detect Objects",
    category="analyze/detect",
    inputs=[Input("detect_model", T.DETECT_MODEL, description="a detector from Load Detector"),
            Input("image", T.IMAGE, description="one picture to search")],
    params=[
        Param("prompt", T.STRING, "",
              description="what to find, labels split by commas (or periods): 'a cat, a dog'. OWL-ViT/OWLv2 score "
                          "each label on its own and name a box by its label; Grounding DINO reads them as one text in "
                          "its own convention ('a cat. a dog.', lower case) and names a box by the words it matched"),
        Param("threshold", T.FLOAT, 0.25, min=0.0, max=1.0, step=0.05,
              description="keep boxes scoring above this (0 to 1)"),
        Param("text_threshold", T.FLOAT, 0.25, min=0.0, max=1.0, step=0.05,
              description="Grounding DINO only: a word of the prompt names a box when it scores above this"),
        Param("max_boxes", T.INT, 10, min=0, max=1000,
              description="keep at most this many boxes, the best scoring first; 0 keeps every box above the threshold"),
    ],
    outputs=[Output("boxes", T.BOXES, description="pixel boxes on the picture, with labels and scores")],
)
def detect_objects(ctx, detect_model, image, prompt, threshold, text_threshold, max_boxes):
    """Boxes round the things a prompt names, e.g. to feed a segmenter's box prompt or make an inpaint mask.

    The processor's own post-processing scales the boxes to the picture's size, so they equal transformers'
    boxes, best first, with corners clamped to the picture (OWLv2 pads a picture to a square, and boxes near an
    edge may reach past it)."""
    import torch

    labels = prompt_labels(prompt)
    [picture] = to_pil(one_picture(image, "Detect Objects"))
    model, processor = detect_model.model, detect_model.processor
    size = [(picture.height, picture.width)]
    if detect_model.kind == "grounding-dino":
        batch = processor(images=[picture], text=labels, return_tensors="pt")  # it joins them: "a cat. a dog."
        if batch["input_ids"].shape[-1] > model.config.max_text_len:
            raise NodeUserError(f"prompt: the labels make {batch['input_ids'].shape[-1]} tokens, more than the "
                                f"{model.config.max_text_len} that Grounding DINO reads; shorten it")
        with torch.inference_mode():
            output = model(**to_device(batch, model))
        [found] = processor.post_process_grounded_object_detection(
            output, batch["input_ids"].to(model.device), threshold=threshold, text_threshold=text_threshold,
            target_sizes=size)
    else:
        refuse_long_texts(processor.tokenizer, labels, model.config.text_config.max_position_embeddings,
                          "OWL-ViT" if detect_model.kind == "owlvit" else "OWLv2")
        batch = processor(images=[picture], text=[labels], return_tensors="pt")
        with torch.inference_mode():
            output = model(**to_device(batch, model))
        [found] = processor.post_process_grounded_object_detection(
            output, threshold=threshold, target_sizes=size, text_labels=[labels])
    order = torch.argsort(found["scores"].float().cpu(), descending=True, stable=True)
    if max_boxes:
        order = order[:max_boxes]
    xyxy = found["boxes"].float().cpu()[order]
    xyxy[:, 0::2] = xyxy[:, 0::2].clamp(0, picture.width)
    xyxy[:, 1::2] = xyxy[:, 1::2].clamp(0, picture.height)
    names = [found["text_labels"][i] for i in order.tolist()]
    return {"boxes": Boxes(xyxy, width=picture.width, height=picture.height, labels=names,
                           scores=found["scores"].float().cpu()[order])}
