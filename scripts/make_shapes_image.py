"""Draw workflows/assets/shapes.png: a 64x64 scene in the demo models' own world (a large red circle on the
left and a yellow square on the right, blue background), for the img2img, inpaint, outpaint and ControlNet
examples. Colours come from nodegraph_demo.scenes, so the picture speaks the demo models' vocabulary."""

import colorsys
from pathlib import Path

from PIL import Image, ImageDraw

from nodegraph_demo.scenes import OBJECT_COLOURS

SIZE = 64


def rgb(name: str) -> tuple[int, int, int]:
    h, s, v = OBJECT_COLOURS[name]
    return tuple(round(c * 255) for c in colorsys.hsv_to_rgb(h / 360, s, v))


def draw() -> Image.Image:
    big = 4 * SIZE  # drawn large and shrunk: antialiased edges, like the training pictures
    im = Image.new("RGB", (big, big), rgb("blue"))
    d = ImageDraw.Draw(im)
    d.ellipse((0.22 * big - 0.15 * big, 0.5 * big - 0.15 * big, 0.22 * big + 0.15 * big, 0.5 * big + 0.15 * big),
              fill=rgb("red"))
    d.rectangle((0.78 * big - 0.09 * big, 0.5 * big - 0.09 * big, 0.78 * big + 0.09 * big, 0.5 * big + 0.09 * big),
                fill=rgb("yellow"))
    return im.resize((SIZE, SIZE), Image.LANCZOS)


if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "workflows" / "assets" / "shapes.png"
    draw().save(out, optimize=True)
    print(out, out.stat().st_size, "bytes")
