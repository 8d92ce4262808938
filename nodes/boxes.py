"""BOXES: rectangles on one picture, from a detector or placed by hand, and the masks and drawings made of them.

A Boxes value holds pixel corners ``(x0, y0, x1, y1)`` on a picture of a known size, each with a label and a
score, so a detector's result can feed a segmenter (SAM's box prompts), become an inpaint mask, or be drawn
over the picture to check it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import ImageDraw

from nodegraph import NodeUserError, Output, Param, PortType as T, node
from nodegraph.imaging import from_pil, to_pil
from nodegraph.node import Input
from nodegraph.points import parse_boxes

from .image_transform import parse_color


@dataclass(eq=False)
class Boxes:
    xyxy: Any  # float tensor (N, 4): pixel corners x0, y0, x1, y1, on the CPU
    width: int  # the picture the boxes lie on
    height: int
    labels: tuple[str, ...] = ()  # one per box ("" when unnamed)
    scores: Any = None  # float tensor (N,), 1.0 for a box placed by hand

    def __post_init__(self):
        import torch

        self.xyxy = torch.as_tensor(self.xyxy, dtype=torch.float32).reshape(-1, 4).cpu()
        n = len(self.xyxy)
        self.labels = tuple(self.labels) or ("",) * n
        self.scores = torch.ones(n) if self.scores is None else torch.as_tensor(self.scores, dtype=torch.float32).cpu()
        if len(self.labels) != n or len(self.scores) != n:
            raise ValueError(f"{n} boxes but {len(self.labels)} labels and {len(self.scores)} scores")

    def __len__(self) -> int:
        return len(self.xyxy)

    def masks(self, device="cpu"):
        """One MASK per box, (N, 1, height, width): 1 inside the box (pixel centres inside it), 0 outside."""
        import torch

        ys = torch.arange(self.height, dtype=torch.float32) + 0.5
        xs = torch.arange(self.width, dtype=torch.float32) + 0.5
        x0, y0, x1, y1 = (self.xyxy[:, i, None] for i in range(4))
        inside_x = (xs >= x0) & (xs < x1)  # (N, W)
        inside_y = (ys >= y0) & (ys < y1)  # (N, H)
        return (inside_y[:, :, None] & inside_x[:, None, :]).float().unsqueeze(1).to(device)


def one_picture(image, node_title: str):
    """The single picture of an IMAGE batch a box-based node works on, or a NodeUserError saying what to do."""
    if image.shape[0] != 1:
        raise NodeUserError(f"{node_title} works on one picture, but the image holds a batch of {image.shape[0]}; "
                            f"pick one with Select from Batch")
    return image


@node(
    "boxes.value",
    title="Boxes",
    category="mask/boxes",
    inputs=[Input("image", T.IMAGE, description="the picture the boxes are placed on (its size)")],
    params=[Param("boxes", T.STRING, "", hint="boxes",
                  description="x0,y0,x1,y1 in pixels, boxes split by spaces; drag on the picture in the viewer")],
    outputs=[Output("boxes", T.BOXES)],
)
def boxes_value(ctx, image, boxes):
    """Boxes placed by hand on a picture, for a segmenter's box prompt or a rectangular mask."""
    try:
        corners = parse_boxes(boxes)
    except ValueError as e:
        raise NodeUserError(f"boxes: {e}") from None
    return {"boxes": Boxes(corners, width=image.shape[-1], height=image.shape[-2])}


@node(
    "boxes.to_mask",
    title="Boxes to Mask",
    category="mask/boxes",
    inputs=[Input("boxes", T.BOXES)],
    params=[Param("combine", T.ENUM, "union", choices=("union", "separate"),
                  description="union: one mask covering every box; separate: a batch of one mask per box")],
    outputs=[Output("mask", T.MASK)],
)
def boxes_to_mask(ctx, boxes, combine):
    """Rectangular masks from boxes, e.g. to inpaint what a detector found."""
    masks = boxes.masks(ctx.device)
    if combine == "separate":
        if not len(boxes):
            raise NodeUserError("there are no boxes, so no separate masks; use union for an empty mask")
        return {"mask": masks}
    if not len(boxes):
        return {"mask": masks.new_zeros((1, 1, boxes.height, boxes.width))}
    return {"mask": masks.amax(dim=0, keepdim=True)}


@node(
    "mask.to_boxes",
    title="Mask to Boxes",
    category="mask/boxes",
    inputs=[Input("mask", T.MASK)],
    params=[Param("threshold", T.FLOAT, 0.5, min=0.0, max=1.0, step=0.05,
                  description="mask values above this count as inside")],
    outputs=[Output("boxes", T.BOXES)],
)
def mask_to_boxes(ctx, mask, threshold):
    """The bounding box of each mask of a batch (none for an empty mask), e.g. to crop round a segment."""
    import torch

    corners = []
    for m in mask[:, 0] > threshold:
        ys, xs = torch.nonzero(m, as_tuple=True)
        if len(xs):
            corners.append([xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1])
    return {"boxes": Boxes(corners, width=mask.shape[-1], height=mask.shape[-2])}


@node(
    "boxes.draw",
    title="Draw Boxes",
    category="mask/boxes",
    inputs=[Input("image", T.IMAGE), Input("boxes", T.BOXES)],
    params=[Param("color", T.STRING, "#ffeb3b", description="outline colour, #rrggbb or a name"),
            Param("width", T.INT, 3, min=1, max=64, description="outline width in pixels"),
            Param("labels", T.BOOL, True, description="write each box's label and score above it")],
    outputs=[Output("image", T.IMAGE)],
)
def draw_boxes(ctx, image, boxes, color, width, labels):
    """The picture with the boxes outlined (Pillow's ImageDraw), to check what a detector found."""
    rgb = parse_color("color", color)
    if (image.shape[-1], image.shape[-2]) != (boxes.width, boxes.height):
        raise NodeUserError(f"the boxes lie on a {boxes.width}x{boxes.height} picture but the image is "
                            f"{image.shape[-1]}x{image.shape[-2]}")
    pictures = to_pil(image)
    for picture in pictures:
        draw = ImageDraw.Draw(picture)
        for corners, label, score in zip(boxes.xyxy.tolist(), boxes.labels, boxes.scores.tolist()):
            draw.rectangle(corners, outline=rgb, width=width)
            if labels and (label or score < 1):
                text = f"{label} {score:.2f}".strip()
                draw.text((corners[0] + width, max(0, corners[1] - 12)), text, fill=rgb)
    return {"image": from_pil(pictures, image.device)}
