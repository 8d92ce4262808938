"""The text forms of points and boxes placed on a picture, as parameters hold them.

A points parameter reads ``"412,300 -80,90"``: pixel ``x,y`` pairs split by spaces, a leading ``-`` marking a
point to leave out (SAM's background point) and an optional ``+`` one to keep. A boxes parameter reads
``"10,20,200,180 220,40,300,120"``: ``x0,y0,x1,y1`` corners in pixels. The editor writes these when a person
clicks or drags on the picture in the viewer; a person can also type them, and they diff well in a workflow file.
Plain text keeps the engine free of any editor type.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    keep: bool = True  # False: a background point, "not this"


def _numbers(item: str, count: int, what: str, example: str) -> list[float]:
    parts = item.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != count or any(v != v or v < 0 for v in values):  # NaN or negative
        raise ValueError(f"{what} {item!r} is not {example} (pixels, 0 or more)")
    return values


def parse_points(text: str) -> list[Point]:
    """``"412,300 -80,90"`` -> two points, the second one to leave out; a ValueError names a bad item."""
    points = []
    for item in text.replace(";", " ").split():
        keep = not item.startswith("-")
        x, y = _numbers(item.lstrip("+-"), 2, "point", "x,y")
        points.append(Point(x, y, keep))
    return points


def format_points(points: list[Point]) -> str:
    return " ".join(f"{'' if p.keep else '-'}{_short(p.x)},{_short(p.y)}" for p in points)


def parse_boxes(text: str) -> list[tuple[float, float, float, float]]:
    """``"10,20,200,180"`` -> [(10, 20, 200, 180)], corners put in order; a ValueError names a bad item."""
    boxes = []
    for item in text.replace(";", " ").split():
        x0, y0, x1, y1 = _numbers(item, 4, "box", "x0,y0,x1,y1")
        if x0 == x1 or y0 == y1:
            raise ValueError(f"box {item!r} has no area")
        boxes.append((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    return boxes


def format_boxes(boxes) -> str:
    return " ".join(",".join(_short(v) for v in box) for box in boxes)


def _short(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"
