"""Draw the bundled sample picture (workflows/assets/sample.png) procedurally, so no photo is shipped."""

from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

W, H = 384, 256


def draw() -> Image.Image:
    sky = Image.linear_gradient("L").resize((W, H)).rotate(180)
    im = Image.merge("RGB", (sky.point(lambda v: 40 + v // 3), sky.point(lambda v: 90 + v // 3), sky.point(lambda v: 160 + v // 3)))
    d = ImageDraw.Draw(im)
    d.ellipse((280, 30, 340, 90), fill=(255, 214, 90))  # sun
    d.polygon([(0, 200), (90, 110), (170, 190), (250, 120), (384, 210), (384, 256), (0, 256)], fill=(60, 110, 70))
    d.polygon([(0, 230), (120, 170), (230, 225), (384, 190), (384, 256), (0, 256)], fill=(40, 80, 50))
    d.rectangle((60, 180, 110, 225), fill=(170, 60, 50))  # a house
    d.polygon([(55, 182), (85, 155), (115, 182)], fill=(110, 40, 35))
    d.rectangle((78, 200, 92, 225), fill=(60, 35, 25))
    for x, y in ((200, 60), (150, 40), (60, 70)):
        d.ellipse((x, y, x + 50, y + 18), fill=(240, 240, 245))
    return im.filter(ImageFilter.SMOOTH)


if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "workflows" / "assets" / "sample.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    draw().save(out, optimize=True)
    print(out, out.stat().st_size, "bytes")
