"""Changing a picture's geometry: Crop, Resize, Rotate, Flip, Pad (for outpainting)."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from PIL import Image, ImageColor, ImageOps

from nodegraph import NodeUserError, Output, Param, PortType as T, node
from nodegraph.imaging import map_pil, mask_from_pil
from nodegraph.node import Input

MAX_SIDE = 16384
RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def parse_color(param: str, value: str) -> tuple[int, int, int]:
    """A colour parameter (``#rrggbb``, or any name Pillow knows) -> an RGB tuple, or a NodeUserError."""
    try:
        return ImageColor.getrgb(value.strip())[:3]
    except (ValueError, AttributeError):
        raise NodeUserError(f"{param} {value!r} is not a colour; use #rrggbb, e.g. #000000") from None


def size_of(image) -> str:
    """'WIDTHxHEIGHT' of an IMAGE or MASK tensor, for messages."""
    return f"{image.shape[-1]}x{image.shape[-2]}"


@node(
    "image.crop",
    title="Crop",
    category="image/transform",
    inputs=[Input("image", T.IMAGE)],
    outputs=[Output("image", T.IMAGE)],
    params=[
        Param("x", T.INT, 0, min=0, max=MAX_SIDE, description="left edge of the box, in pixels"),
        Param("y", T.INT, 0, min=0, max=MAX_SIDE, description="top edge of the box, in pixels"),
        Param("width", T.INT, 512, min=1, max=MAX_SIDE),
        Param("height", T.INT, 512, min=1, max=MAX_SIDE),
    ],
)
def crop(ctx, image, x, y, width, height):
    """Cut out a rectangle of the picture; the box must lie inside it."""
    w, h = image.shape[-1], image.shape[-2]
    if width < 1 or height < 1:
        raise NodeUserError(f"crop box {width}x{height} is empty; width and height must be at least 1")
    if x + width > w or y + height > h:
        raise NodeUserError(
            f"crop box {width}x{height} at ({x}, {y}) reaches ({x + width}, {y + height}),"
            f" outside the {w}x{h} image"
        )
    return {"image": map_pil(image, lambda im: im.crop((x, y, x + width, y + height)))}


@node(
    "image.resize",
    title="Resize",
    category="image/transform",
    inputs=[Input("image", T.IMAGE)],
    outputs=[Output("image", T.IMAGE)],
    params=[
        Param("width", T.INT, 512, min=1, max=MAX_SIDE, step=8),
        Param("height", T.INT, 512, min=1, max=MAX_SIDE, step=8),
        Param(
            "mode",
            T.ENUM,
            "exact",
            choices=("exact", "fit", "fill"),
            description="exact: stretch to the size; fit: keep aspect inside it; fill: cover it and crop the centre",
        ),
        Param("resample", T.ENUM, "lanczos", choices=tuple(RESAMPLE)),
    ],
)
def resize(ctx, image, width, height, mode, resample):
    """Scale the picture to a size: stretched, fitted inside it, or filling it with a centre crop."""
    return {"image": map_pil(image, resizer(mode, width, height, RESAMPLE[resample]))}


def resizer(mode: str, width: int, height: int, method) -> Callable[[Image.Image], Image.Image]:
    """The Pillow function bringing a picture to ``width`` x ``height``: ``exact`` stretches it, ``fit`` keeps
    its aspect inside the box, ``fill`` covers the box and crops the centre. Resize and Image Batch share it."""
    if mode == "exact":
        return lambda im: im.resize((width, height), method)
    if mode == "fit":
        return lambda im: ImageOps.contain(im, (width, height), method)
    return lambda im: ImageOps.fit(im, (width, height), method, centering=(0.5, 0.5))


@node(
    "image.scale",
    title="Scale",
    category="image/transform",
    inputs=[Input("image", T.IMAGE)],
    outputs=[Output("image", T.IMAGE)],
    params=[
        Param("factor", T.FLOAT, 2.0, min=0.01, max=8.0, step=0.05, description="both sides times this"),
        Param("resample", T.ENUM, "lanczos", choices=tuple(RESAMPLE)),
    ],
)
def scale(ctx, image, factor, resample):
    """Scale the picture by a factor, keeping its aspect (sides rounded to whole pixels)."""
    width, height = max(1, round(image.shape[-1] * factor)), max(1, round(image.shape[-2] * factor))
    if max(width, height) > MAX_SIDE:
        raise NodeUserError(f"{size_of(image)} times {factor} is {width}x{height}, over the {MAX_SIDE} pixel limit")
    return {"image": map_pil(image, lambda im: im.resize((width, height), RESAMPLE[resample]))}


@node(
    "image.rotate",
    title="Rotate",
    category="image/transform",
    inputs=[Input("image", T.IMAGE)],
    outputs=[Output("image", T.IMAGE)],
    params=[
        Param("angle", T.FLOAT, 90.0, min=-360, max=360, step=1, description="degrees counter-clockwise"),
        Param("expand", T.BOOL, True, description="grow the canvas so no corner is cut off"),
        Param("fill", T.STRING, "#000000", hint="color", description="colour of the uncovered corners"),
    ],
)
def rotate(ctx, image, angle, expand, fill):
    """Turn the picture counter-clockwise by an angle, filling the uncovered area with a colour."""
    rgb = parse_color("fill", fill)
    return {
        "image": map_pil(
            image, lambda im: im.rotate(angle, resample=Image.Resampling.BICUBIC, expand=expand, fillcolor=rgb)
        )
    }


@node(
    "image.flip",
    title="Flip",
    category="image/transform",
    inputs=[Input("image", T.IMAGE)],
    outputs=[Output("image", T.IMAGE)],
    params=[
        Param(
            "direction",
            T.ENUM,
            "horizontal",
            choices=("horizontal", "vertical"),
            description="horizontal mirrors left and right; vertical turns it upside down",
        )
    ],
)
def flip(ctx, image, direction):
    """Mirror the picture left-to-right or top-to-bottom."""
    return {"image": map_pil(image, ImageOps.mirror if direction == "horizontal" else ImageOps.flip)}


@node(
    "image.pad",
    title="Pad",
    category="image/transform",
    inputs=[Input("image", T.IMAGE)],
    outputs=[
        Output("image", T.IMAGE),
        Output("mask", T.MASK, "1 on the added border, 0 on the original picture: what outpainting fills"),
    ],
    params=[
        Param("left", T.INT, 0, min=0, max=MAX_SIDE, step=8),
        Param("top", T.INT, 0, min=0, max=MAX_SIDE, step=8),
        Param("right", T.INT, 0, min=0, max=MAX_SIDE, step=8),
        Param("bottom", T.INT, 0, min=0, max=MAX_SIDE, step=8),
        Param("color", T.STRING, "#000000", hint="color", description="colour of the added border"),
        Param(
            "feather",
            T.INT,
            0,
            min=0,
            max=MAX_SIDE,
            description="pixels over which the mask fades from the border into the original picture",
        ),
    ],
)
def pad(ctx, image, left, top, right, bottom, color, feather):
    """Add a coloured border around the picture, with a mask of the border for outpainting."""
    rgb = parse_color("color", color)
    w, h = image.shape[-1], image.shape[-2]
    if max(w + left + right, h + top + bottom) > MAX_SIDE:
        raise NodeUserError(
            f"padding the {w}x{h} image makes it {w + left + right}x{h + top + bottom},"
            f" over the {MAX_SIDE} pixel side limit"
        )
    padded = map_pil(image, lambda im: ImageOps.expand(im, border=(left, top, right, bottom), fill=rgb))
    mask = np.ones((h + top + bottom, w + left + right), dtype=np.float32)
    mask[top : top + h, left : left + w] = _inner_ramp(w, h, left, top, right, bottom, feather)
    picture = Image.fromarray(np.round(mask * 255).astype(np.uint8), "L")
    return {"image": padded, "mask": mask_from_pil([picture] * image.shape[0], image.device)}


def _inner_ramp(w, h, left, top, right, bottom, feather) -> np.ndarray:
    """The mask over the original picture: 0, rising linearly towards each padded side over ``feather`` pixels."""
    if feather <= 0:
        return np.zeros((h, w), dtype=np.float32)
    big = np.full(max(w, h), feather, dtype=np.float32)  # "no padded side near": never below feather
    xs, ys = np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)
    dx = np.minimum(xs if left else big[:w], (w - 1 - xs) if right else big[:w])
    dy = np.minimum(ys if top else big[:h], (h - 1 - ys) if bottom else big[:h])
    distance = np.minimum(dx[None, :], dy[:, None])  # 0 = the row/column touching the border
    return np.clip((feather - distance) / (feather + 1), 0, 1).astype(np.float32)


@node(
    "image.grid",
    title="Image Grid",
    category="image/transform",
    inputs=[Input("image", T.IMAGE, description="a batch of pictures")],
    outputs=[Output("image", T.IMAGE, "one picture holding the whole batch")],
    params=[
        Param("columns", T.INT, 0, min=0, max=256, description="pictures per row; 0: as square as the batch allows"),
        Param("spacing", T.INT, 2, min=0, max=256, description="pixels between pictures"),
        Param("color", T.STRING, "#202020", hint="color", description="colour between the pictures"),
    ],
)
def grid(ctx, image, columns, spacing, color):
    """Lay a batch out as one picture (torchvision's make_grid), e.g. to save a sweep or a batch at once."""
    import torch
    from torchvision.utils import make_grid

    count = image.shape[0]
    per_row = min(columns or math.ceil(math.sqrt(count)), count)
    tiled = make_grid(image, nrow=per_row, padding=spacing, pad_value=0.0)
    if spacing:  # make_grid fills the gaps with one grey level: paint them in the chosen colour instead
        inside = make_grid(torch.ones_like(image), nrow=per_row, padding=spacing, pad_value=0.0)
        background = tiled.new_tensor(parse_color("color", color)).div(255).view(3, 1, 1)
        tiled = tiled * inside + background * (1 - inside)
    return {"image": tiled.unsqueeze(0)}
