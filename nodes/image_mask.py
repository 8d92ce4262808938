"""Combining pictures and working with masks: Blend, Composite, masks from colours and channels, Canny edges."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageChops, ImageFilter, ImageOps

from nodegraph import NodeUserError, Output, Param, PortType as T, node
from nodegraph.imaging import from_pil, map_pil, mask_from_pil, mask_to_pil, to_pil
from nodegraph.node import Input

from .image_transform import parse_color, size_of


def _batches(**tensors) -> list[list[Image.Image]]:
    """Pillow pictures of several same-sized tensors (IMAGE or MASK), a batch of 1 repeated to match a batch of N."""
    names = list(tensors)
    first = names[0]
    for name in names[1:]:
        if tensors[name].shape[-2:] != tensors[first].shape[-2:]:
            raise NodeUserError(
                f"{first} is {size_of(tensors[first])} but {name} is {size_of(tensors[name])}; resize one first"
            )
    counts = {name: t.shape[0] for name, t in tensors.items()}
    n = max(counts.values())
    wrong = [name for name, c in counts.items() if c not in (1, n)]
    if wrong:
        listed = ", ".join(f"{name} has {c}" for name, c in counts.items())
        raise NodeUserError(f"batch sizes do not match ({listed}); each must be 1 or the same number")
    out = []
    for t in tensors.values():
        pictures = mask_to_pil(t) if t.shape[1] == 1 else to_pil(t)
        out.append(pictures * n if len(pictures) == 1 else pictures)
    return out


@node(
    "image.blend",
    title="Blend",
    category="image/composite",
    inputs=[Input("image_a", T.IMAGE), Input("image_b", T.IMAGE)],
    outputs=[Output("image", T.IMAGE)],
    params=[Param("factor", T.FLOAT, 0.5, min=0, max=1, step=0.05, description="0 gives image_a, 1 gives image_b")],
)
def blend(ctx, image_a, image_b, factor):
    """Mix two pictures of the same size: image_a at factor 0, image_b at factor 1."""
    a, b = _batches(image_a=image_a, image_b=image_b)
    return {"image": from_pil([Image.blend(x, y, factor) for x, y in zip(a, b)], image_a.device)}


@node(
    "image.composite",
    title="Composite",
    category="image/composite",
    inputs=[Input("background", T.IMAGE), Input("foreground", T.IMAGE), Input("mask", T.MASK)],
    outputs=[Output("image", T.IMAGE)],
)
def composite(ctx, background, foreground, mask):
    """Lay the foreground over the background where the mask is 1 (and partly where it is between)."""
    bg, fg, m = _batches(background=background, foreground=foreground, mask=mask)
    return {"image": from_pil([Image.composite(f, b, k) for b, f, k in zip(bg, fg, m)], background.device)}


@node(
    "mask.from_color",
    title="Mask from Colour",
    category="mask",
    inputs=[Input("image", T.IMAGE)],
    outputs=[Output("mask", T.MASK)],
    params=[
        Param("color", T.STRING, "#ffffff", hint="color"),
        Param("tolerance", T.INT, 0, min=0, max=255, description="how far each channel may be from the colour (0-255)"),
    ],
)
def mask_from_color(ctx, image, color, tolerance):
    """Select the pixels whose colour is within a tolerance of a given colour."""
    rgb = parse_color("color", color)
    within = [255 if v <= tolerance else 0 for v in range(256)]

    def select(im):
        diff = ImageChops.difference(im, Image.new("RGB", im.size, rgb))
        r, g, b = (band.point(within) for band in diff.split())
        return ImageChops.darker(ImageChops.darker(r, g), b)  # all three channels within

    return {"mask": mask_from_pil([select(im) for im in to_pil(image)], image.device)}


@node(
    "mask.from_channel",
    title="Mask from Channel",
    category="mask",
    inputs=[Input("image", T.IMAGE)],
    outputs=[Output("mask", T.MASK)],
    params=[Param("channel", T.ENUM, "luminance", choices=("red", "green", "blue", "luminance"))],
)
def mask_from_channel(ctx, image, channel):
    """Use one colour channel of the picture, or its brightness, as a mask."""
    pick = {"red": "R", "green": "G", "blue": "B"}.get(channel)
    fn = (lambda im: im.getchannel(pick)) if pick else (lambda im: im.convert("L"))
    return {"mask": mask_from_pil([fn(im) for im in to_pil(image)], image.device)}


@node(
    "mask.invert",
    title="Invert Mask",
    category="mask",
    inputs=[Input("mask", T.MASK)],
    outputs=[Output("mask", T.MASK)],
)
def mask_invert(ctx, mask):
    """Select what was not selected, and the other way round."""
    return {"mask": map_pil(mask, ImageOps.invert, mask=True)}


@node(
    "mask.grow",
    title="Grow Mask",
    category="mask",
    inputs=[Input("mask", T.MASK)],
    outputs=[Output("mask", T.MASK)],
    params=[Param("pixels", T.INT, 8, min=-256, max=256, description="how far to grow; negative shrinks")],
)
def mask_grow(ctx, mask, pixels):
    """Grow the selected area outward by a number of pixels, or shrink it when negative."""
    if pixels == 0:
        return {"mask": mask}
    step = ImageFilter.MaxFilter(3) if pixels > 0 else ImageFilter.MinFilter(3)

    def grow(im):
        # n passes of a 3x3 filter grow by n pixels (a square reach), far cheaper than one (2n+1)^2 filter.
        for _ in range(abs(pixels)):
            ctx.check_cancelled()
            im = im.filter(step)
        return im

    return {"mask": map_pil(mask, grow, mask=True)}


@node(
    "mask.feather",
    title="Feather Mask",
    category="mask",
    inputs=[Input("mask", T.MASK)],
    outputs=[Output("mask", T.MASK)],
    params=[Param("radius", T.FLOAT, 4.0, min=0, max=256, step=0.5, description="Gaussian blur radius in pixels")],
)
def mask_feather(ctx, mask, radius):
    """Soften the mask's edges with a Gaussian blur."""
    if radius == 0:
        return {"mask": mask}
    return {"mask": map_pil(mask, lambda im: im.filter(ImageFilter.GaussianBlur(radius)), mask=True)}


@node(
    "mask.to_image",
    title="Mask to Image",
    category="mask",
    inputs=[Input("mask", T.MASK)],
    outputs=[Output("image", T.IMAGE)],
)
def mask_to_image(ctx, mask):
    """Show a mask as a greyscale picture: white where selected, black elsewhere."""
    return {"image": mask.repeat(1, 3, 1, 1)}


@node(
    "image.canny",
    title="Canny Edges",
    category="image/filter",
    inputs=[Input("image", T.IMAGE)],
    outputs=[Output("image", T.IMAGE, "white edges on black, the input of a canny ControlNet")],
    params=[
        Param("low_threshold", T.INT, 100, min=0, max=255, description="weaker edges kept only beside strong ones"),
        Param("high_threshold", T.INT, 200, min=0, max=255, description="edges this strong are always kept"),
    ],
)
def canny(ctx, image, low_threshold, high_threshold):
    """Find the picture's edges with the Canny detector: white lines on black."""
    import cv2

    def edges(im):
        grey = np.asarray(im.convert("L"))
        return Image.fromarray(cv2.Canny(grey, low_threshold, high_threshold), "L")  # swaps low > high itself

    return {"image": map_pil(image, edges)}
