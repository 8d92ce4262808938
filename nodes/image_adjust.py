"""Tone, colour and sharpness: the Pillow enhancers and filters, one node each."""

from __future__ import annotations

from PIL import ImageEnhance, ImageFilter, ImageOps

from nodegraph import Output, Param, PortType as T, node
from nodegraph.imaging import map_pil
from nodegraph.node import Input

IMAGE_IN = [Input("image", T.IMAGE)]
IMAGE_OUT = [Output("image", T.IMAGE)]


def _factor(description: str, default: float = 1.0) -> Param:
    return Param("factor", T.FLOAT, default, min=0, max=10, step=0.05, description=description)


def _enhance(image, enhancer, factor):
    return map_pil(image, lambda im: enhancer(im).enhance(factor))


@node(
    "image.brightness",
    title="Brightness",
    category="image/adjust",
    inputs=IMAGE_IN,
    outputs=IMAGE_OUT,
    params=[_factor("1 keeps the picture; 0 is black, 2 twice as bright")],
)
def brightness(ctx, image, factor):
    """Make the picture darker or brighter by a factor."""
    return {"image": _enhance(image, ImageEnhance.Brightness, factor)}


@node(
    "image.contrast",
    title="Contrast",
    category="image/adjust",
    inputs=IMAGE_IN,
    outputs=IMAGE_OUT,
    params=[_factor("1 keeps the picture; 0 is flat grey, above 1 more contrast")],
)
def contrast(ctx, image, factor):
    """Lower or raise the picture's contrast by a factor."""
    return {"image": _enhance(image, ImageEnhance.Contrast, factor)}


@node(
    "image.saturation",
    title="Saturation",
    category="image/adjust",
    inputs=IMAGE_IN,
    outputs=IMAGE_OUT,
    params=[_factor("1 keeps the picture; 0 is greyscale, above 1 more vivid")],
)
def saturation(ctx, image, factor):
    """Make the picture's colours duller or more vivid by a factor."""
    return {"image": _enhance(image, ImageEnhance.Color, factor)}


@node(
    "image.gamma",
    title="Gamma",
    category="image/adjust",
    inputs=IMAGE_IN,
    outputs=IMAGE_OUT,
    params=[
        Param(
            "gamma",
            T.FLOAT,
            1.0,
            min=0.01,
            max=10,
            step=0.05,
            description="above 1 brightens the mid-tones, below 1 darkens them; black and white stay",
        )
    ],
)
def gamma(ctx, image, gamma):
    """Brighten or darken the mid-tones with a gamma curve."""
    lut = [round(255 * (v / 255) ** (1 / gamma)) for v in range(256)] * 3
    return {"image": map_pil(image, lambda im: im.point(lut))}


@node(
    "image.blur",
    title="Blur",
    category="image/filter",
    inputs=IMAGE_IN,
    outputs=IMAGE_OUT,
    params=[Param("radius", T.FLOAT, 2.0, min=0, max=256, step=0.5, description="Gaussian radius in pixels")],
)
def blur(ctx, image, radius):
    """Soften the picture with a Gaussian blur."""
    if radius == 0:
        return {"image": image}
    return {"image": map_pil(image, lambda im: im.filter(ImageFilter.GaussianBlur(radius)))}


@node(
    "image.sharpen",
    title="Sharpen",
    category="image/filter",
    inputs=IMAGE_IN,
    outputs=IMAGE_OUT,
    params=[_factor("1 keeps the picture; 0 blurs it, above 1 sharpens", default=2.0)],
)
def sharpen(ctx, image, factor):
    """Sharpen (or soften) the picture by a factor."""
    return {"image": _enhance(image, ImageEnhance.Sharpness, factor)}


@node(
    "image.unsharp_mask",
    title="Unsharp Mask",
    category="image/filter",
    inputs=IMAGE_IN,
    outputs=IMAGE_OUT,
    params=[
        Param("radius", T.FLOAT, 2.0, min=0, max=256, step=0.5, description="size of the detail sharpened"),
        Param("percent", T.INT, 150, min=0, max=1000, step=5, description="strength"),
        Param("threshold", T.INT, 3, min=0, max=255, description="least brightness change that is sharpened"),
    ],
)
def unsharp_mask(ctx, image, radius, percent, threshold):
    """Sharpen edges by subtracting a blurred copy of the picture."""
    fn = ImageFilter.UnsharpMask(radius=radius, percent=percent, threshold=threshold)
    return {"image": map_pil(image, lambda im: im.filter(fn))}


@node(
    "image.autocontrast",
    title="Auto Contrast",
    category="image/adjust",
    inputs=IMAGE_IN,
    outputs=IMAGE_OUT,
    params=[
        Param(
            "cutoff",
            T.FLOAT,
            0.0,
            min=0,
            max=49,
            step=0.5,
            description="percent of the darkest and of the lightest pixels ignored",
        )
    ],
)
def autocontrast(ctx, image, cutoff):
    """Stretch the picture's tones so its darkest pixel becomes black and its lightest white."""
    return {"image": map_pil(image, lambda im: ImageOps.autocontrast(im, cutoff=cutoff))}


@node("image.equalize", title="Equalize", category="image/adjust", inputs=IMAGE_IN, outputs=IMAGE_OUT)
def equalize(ctx, image):
    """Spread the picture's tones evenly by equalizing its histogram."""
    return {"image": map_pil(image, ImageOps.equalize)}


@node("image.grayscale", title="Grayscale", category="image/adjust", inputs=IMAGE_IN, outputs=IMAGE_OUT)
def grayscale(ctx, image):
    """Turn the picture grey (still a three-channel image)."""
    return {"image": map_pil(image, ImageOps.grayscale)}  # from_pil converts the L picture back to RGB


@node("image.invert", title="Invert", category="image/adjust", inputs=IMAGE_IN, outputs=IMAGE_OUT)
def invert(ctx, image):
    """Turn the picture into its negative."""
    return {"image": map_pil(image, ImageOps.invert)}
