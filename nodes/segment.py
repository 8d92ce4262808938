"""Promptable segmentation with transformers' SAM family (SAM, SAM-HQ, SAM 2, SAM 3's tracker): points clicked on a
picture or boxes (placed by hand or found by a detector) become a MASK of the object they point at.

Load Segmenter reads a transformers folder with its processor, offline; its SEGMENT_MODEL output lives in the
engine's cache like every model, so Segment re-runs for a new click or a new picture without a reload. The
processor's own pre- and post-processing (coordinate scaling, ``post_process_masks``) is used as it is, so a
mask equals what transformers gives for the same prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nodegraph import NodeUserError, Output, Param, PortType as T, node
from nodegraph.imaging import to_pil
from nodegraph.models import MODEL_HINT
from nodegraph.node import Input
from nodegraph.points import parse_boxes, parse_points

from . import _model_files as files
from .boxes import Boxes, one_picture

# config.json's model_type -> the transformers model and processor classes that read such a folder
KINDS = {
    "sam": ("SamModel", "SamProcessor"),
    "sam_hq": ("SamHQModel", "SamHQProcessor"),
    "sam2": ("Sam2Model", "Sam2Processor"),
    "sam3_tracker": ("Sam3TrackerModel", "Sam3TrackerProcessor"),
}
KIND_NAMES = "SAM (sam), SAM-HQ (sam_hq), SAM 2 (sam2) or SAM 3's tracker (sam3_tracker)"


@dataclass(eq=False)
class SegmentModel:
    model: Any
    processor: Any
    path: str
    kind: str  # config.json's model_type, a key of KINDS


@node(
    "model.segment",
    title="Load Segmenter",
    category="analyze/segment",
    params=[
        Param("model", T.STRING, "", hint=MODEL_HINT,
              description="a transformers SAM, SAM-HQ, SAM 2 or SAM 3 tracker folder with its processor: a path, a "
                          "name in the model folders, or hf:org/name"),
        Param("dtype", T.ENUM, "auto", choices=("auto", "float32", "float16", "bfloat16"),
              description="weights' precision; auto: float16 on a GPU, float32 on the CPU"),
    ],
    outputs=[Output("segment_model", T.SEGMENT_MODEL, "the segmenter and its processor, for Segment")],
    identity=lambda params, ctx: files.identity(params["model"], ctx),
)
def load_segmenter(ctx, model, dtype):
    """Load a promptable segmenter once, so that every click re-runs only Segment; the class is chosen from the
    folder's config.json, so a folder of another kind is refused before any weights are read."""
    path = files.resolve(model, ctx)
    kind = files.model_type(path)
    if kind not in KINDS:
        raise NodeUserError(f"{path} holds a {kind!r} model, not a promptable segmenter ({KIND_NAMES})")
    module, processor = files.load_transformers(path, *KINDS[kind], dtype, ctx.device)
    return {"segment_model": SegmentModel(module, processor, str(path), kind)}


def _read(parse, text, name, width, height):
    """A points or boxes parameter read, or a NodeUserError naming the parameter and what is wrong."""
    try:
        items = parse(text)
    except ValueError as e:
        raise NodeUserError(f"{name}: {e}") from None
    for item in items:
        corners = (item.x, item.y) if hasattr(item, "x") else item
        if max(corners[0::2]) > width or max(corners[1::2]) > height:
            raise NodeUserError(f"{name}: {','.join(f'{v:g}' for v in corners)} lies outside the {width}x{height} "
                                f"picture")
    return items


def prompts(points, boxes):
    """The processor's nested prompt lists for one picture: each box is one object; the points join every box's
    prompt (one box and a few clicks refine one object), and points with no box are one object of their own."""
    prompt = {}
    if boxes:
        prompt["input_boxes"] = [[list(b) for b in boxes]]
    if points:
        objects = max(len(boxes), 1)
        prompt["input_points"] = [[[[p.x, p.y] for p in points] for _ in range(objects)]]
        prompt["input_labels"] = [[[1 if p.keep else 0 for p in points] for _ in range(objects)]]
    return prompt


@node(
    "analyze.segment",
    title="Segment",
    category="analyze/segment",
    inputs=[
        Input("segment_model", T.SEGMENT_MODEL),
        Input("image", T.IMAGE, description="one picture to segment"),
        Input("boxes", T.BOXES, optional=True,
              description="box prompts, e.g. from a detector: each box is one object (replaces drawn_boxes)"),
    ],
    params=[
        Param("points", T.STRING, "", hint="points",
              description="x,y pixels split by spaces, a leading - for a point to leave out; click on the picture "
                          "in the viewer"),
        Param("drawn_boxes", T.STRING, "", hint="boxes",
              description="x0,y0,x1,y1 pixels split by spaces, one object per box, used when no boxes are linked; "
                          "drag on the picture in the viewer"),
        Param("multimask", T.ENUM, "best", choices=("best", "single"),
              description="best: the best-scoring of the three masks SAM proposes (whole, part, sub-part), for an "
                          "ambiguous single click; single: SAM's one-mask answer, for a box or several points"),
        Param("combine", T.ENUM, "union", choices=("union", "separate"),
              description="union: one mask covering every object; separate: a batch of one mask per object"),
        Param("threshold", T.FLOAT, 0.0, min=-20.0, max=20.0, step=0.5,
              description="mask logits above this count as inside: 0 is SAM's own cut, higher gives a tighter mask"),
    ],
    outputs=[
        Output("mask", T.MASK, "the objects' mask at the picture's size (a batch of one per object if separate)"),
        Output("boxes", T.BOXES, "each object's mask's bounding box, scored by SAM's predicted quality"),
    ],
)
def segment(ctx, segment_model, image, points, drawn_boxes, multimask, combine, threshold, boxes=None):
    """Cut out the object that clicked points or boxes point at, e.g. to inpaint it or to composite it elsewhere;
    SAM finds the object's outline, so the prompt can be rough."""
    import torch

    image = one_picture(image, "Segment")
    height, width = image.shape[-2:]
    clicks = _read(parse_points, points, "points", width, height)
    labels = ()
    if boxes is not None:
        if (boxes.width, boxes.height) != (width, height):
            raise NodeUserError(f"the boxes lie on a {boxes.width}x{boxes.height} picture but the image "
                                f"is {width}x{height}")
        corners, labels = boxes.xyxy.tolist(), boxes.labels
    else:
        corners = _read(parse_boxes, drawn_boxes, "drawn_boxes", width, height)
    if not clicks and not corners:
        if boxes is None:
            raise NodeUserError("Segment has no prompt: click points on the picture (the points parameter), drag "
                                "boxes on it (drawn_boxes), or link boxes from a detector")
        if combine == "separate":
            raise NodeUserError("the linked boxes are empty, so there are no separate masks; use union for an "
                                "empty mask")
        return {"mask": image.new_zeros((1, 1, height, width)), "boxes": Boxes([], width=width, height=height)}

    model, processor = segment_model.model, segment_model.processor
    batch = processor(images=to_pil(image), return_tensors="pt", **prompts(clicks, corners))
    inputs = {k: batch[k].to(model.device) for k in ("pixel_values", "input_points", "input_labels", "input_boxes")
              if k in batch}
    for k in ("pixel_values", "input_points", "input_boxes"):
        if k in inputs:
            inputs[k] = inputs[k].to(model.dtype)
    with torch.inference_mode():
        output = model(**inputs, multimask_output=multimask == "best")
    # (1, objects, masks, h, w) and (1, objects, masks): three masks each with multimask, else one
    logits, scores = output.pred_masks.float(), output.iou_scores.float()
    best = scores.argmax(dim=-1)  # a single mask's index is 0
    logits = logits.gather(2, best[..., None, None, None].expand(-1, -1, 1, *logits.shape[-2:]))
    scores = scores.gather(2, best[..., None])[..., 0]
    sizes = {k: batch[k] for k in ("reshaped_input_sizes",) if k in batch}  # SAM's padding, which SAM 2 lacks
    masks = processor.post_process_masks(logits.cpu(), batch["original_sizes"], mask_threshold=threshold, **sizes)[0]
    masks = masks.float()  # (objects, 1, H, W)
    found = _bounding_boxes(masks, scores[0].cpu(), labels, width, height)
    if combine == "union":
        masks = masks.amax(dim=0, keepdim=True)
    return {"mask": masks.to(image.device), "boxes": found}


def _bounding_boxes(masks, scores, labels, width, height):
    """Each non-empty mask's bounding box in pixels, with its object's label and SAM's score."""
    import torch

    corners, kept_labels, kept_scores = [], [], []
    for i, m in enumerate(masks[:, 0] > 0.5):
        ys, xs = torch.nonzero(m, as_tuple=True)
        if len(xs):
            corners.append([xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1])
            kept_labels.append(labels[i] if labels else "")
            kept_scores.append(scores[i].item())
    return Boxes(corners, width=width, height=height, labels=kept_labels, scores=kept_scores)
