"""Captioned pictures of coloured shapes: the demo models' training and evaluation data.

Why drawn rather than collected: nothing may be downloaded, and a caption that is true by construction
lets us measure what a trained model got right (colour, position) without a second model to judge it.

A batch is sampled on the CPU from a seeded ``torch.Generator`` (so a seed gives the same scenes on any
device), then rasterised on any device, batched, from signed distance functions with a one-pixel
antialiased edge. The train and eval splits draw from different seed streams, so they never share a
picture. ``canny`` computes the edge maps a canny ControlNet sees at inference.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
from dataclasses import dataclass

import torch

SHAPES = ("circle", "square", "triangle", "star", "diamond")

# (hue in degrees, saturation, value); hues far enough apart that a pixel's hue names its colour.
OBJECT_COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.0, 0.85, 0.9),
    "orange": (28.0, 0.9, 0.97),
    "yellow": (56.0, 0.85, 0.95),
    "green": (120.0, 0.72, 0.72),
    "cyan": (185.0, 0.8, 0.9),
    "blue": (226.0, 0.8, 0.9),
    "purple": (280.0, 0.65, 0.75),
    "pink": (330.0, 0.45, 1.0),
}
NEUTRAL_COLOURS: dict[str, tuple[float, float, float]] = {
    "white": (0.0, 0.0, 0.96),
    "black": (0.0, 0.0, 0.08),
    "gray": (0.0, 0.0, 0.5),
}
BACKGROUND_COLOURS = {**OBJECT_COLOURS, **NEUTRAL_COLOURS}
HUE_JITTER, SAT_JITTER, VALUE_JITTER = 6.0, 0.08, 0.06

SIZES = {"small": (0.07, 0.09), "large": (0.14, 0.17)}  # the shape's radius as a fraction of the picture

# Where an object's centre may fall: (x range, y range) as fractions of the picture, x to the right, y down.
POSITIONS = {
    "left": ((0.10, 0.34), (0.28, 0.72)),
    "right": ((0.66, 0.90), (0.28, 0.72)),
    "top": ((0.28, 0.72), (0.10, 0.34)),
    "bottom": ((0.28, 0.72), (0.66, 0.90)),
    "centre": ((0.42, 0.58), (0.42, 0.58)),
}
PHRASES = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom",
           "centre": "in the centre"}
PAIRS = (("left", "right"), ("right", "left"), ("top", "bottom"), ("bottom", "top"))  # two objects never overlap much

# How far each shape reaches from its centre, in radii (keeps the whole shape inside the picture).
_EXTENT = {"circle": 1.0, "square": 1.05, "triangle": 1.42, "star": 1.36, "diamond": 1.26}
_MAX_ANGLE = {"circle": 0.0, "square": 12.0, "triangle": 10.0, "star": 10.0, "diamond": 8.0}  # degrees
_MARGIN = 0.02

P_TWO_OBJECTS = 0.5
P_SIZE_SAID = 0.75
P_POSITION_SAID = 0.85  # one-object scenes; two objects always say where each is
P_CENTER_SPELLING = 0.25  # "in the center" as well as "in the centre", so either prompt works

VOCABULARY: tuple[str, ...] = tuple(dict.fromkeys(
    ["a", "an", "and", "on", "the", "at", "in", "background", ",", "center"]
    + list(SIZES) + list(BACKGROUND_COLOURS) + list(SHAPES)
    + [w for phrase in PHRASES.values() for w in phrase.split()]
))
"""Every word (and punctuation mark) a caption can contain: the tokenizers make each one a single token."""


@dataclass(frozen=True)
class SceneObject:
    colour: str
    shape: str
    size: str
    position: str
    x: float  # centre, fraction of the width from the left
    y: float  # centre, fraction of the height from the top
    radius: float  # fraction of the picture's side
    angle: float  # degrees, counter-clockwise
    rgb: tuple[float, float, float]
    size_said: bool = True
    position_said: bool = True

    def phrase(self, centre_word: str = "centre") -> str:
        words = ([self.size] if self.size_said else []) + [self.colour, self.shape]
        words.insert(0, "an" if words[0][0] in "aeiou" else "a")
        if self.position_said:
            words.append(PHRASES[self.position].replace("centre", centre_word))
        return " ".join(words)


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]
    background: str
    background_rgb: tuple[float, float, float]
    caption: str


@dataclass
class SceneBatch:
    images: torch.Tensor  # (B, 3, H, W) in [0, 1]
    masks: torch.Tensor  # (B, 2, H, W): each object's visible coverage in [0, 1] (zeros for a missing object)
    scenes: list[Scene]

    @property
    def captions(self) -> list[str]:
        return [s.caption for s in self.scenes]


def generator_for(seed: int, index: int, split: str) -> torch.Generator:
    """The CPU generator of batch ``index`` of ``split``: a hash, so no two (split, seed, index) share a stream."""
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', not {split!r}")
    digest = hashlib.blake2b(f"nodegraph-demo/{split}/{seed}/{index}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))


def scene_batch(batch: int, *, seed: int = 0, index: int = 0, split: str = "train", size: int = 64,
                device="cpu") -> SceneBatch:
    """Batch ``index`` of the ``split`` stream for ``seed``: the same arguments give the same pictures."""
    scenes = sample_scenes(batch, generator_for(seed, index, split))
    images, masks = render(scenes, size, device)
    return SceneBatch(images, masks, scenes)


class _Draws:
    """Uniform numbers drawn up front from the generator, handed out one at a time."""

    def __init__(self, values: list[float]):
        self.values, self.i = values, 0

    def uniform(self, lo: float = 0.0, hi: float = 1.0) -> float:
        self.i += 1
        return lo + (hi - lo) * self.values[self.i - 1]

    def choice(self, options):
        options = list(options)
        return options[min(int(self.uniform() * len(options)), len(options) - 1)]


def _jitter_rgb(d: _Draws, hsv: tuple[float, float, float]) -> tuple[float, float, float]:
    h, s, v = hsv
    if s == 0.0:  # a neutral: keep it neutral
        h, s = 0.0, 0.0
        v = min(max(v + d.uniform(-0.03, 0.03), 0.0), 1.0)
        d.uniform(), d.uniform()
    else:
        h = (h + d.uniform(-HUE_JITTER, HUE_JITTER)) % 360.0
        s = min(max(s + d.uniform(-SAT_JITTER, SAT_JITTER), 0.0), 1.0)
        v = min(max(v + d.uniform(-VALUE_JITTER, VALUE_JITTER), 0.0), 1.0)
    return colorsys.hsv_to_rgb(h / 360.0, s, v)


def _object(d: _Draws, colour: str, position: str, position_said: bool) -> SceneObject:
    shape = d.choice(SHAPES)
    size = d.choice(SIZES)
    radius = d.uniform(*SIZES[size])
    reach = _EXTENT[shape] * radius + _MARGIN
    (x0, x1), (y0, y1) = POSITIONS[position]
    x = d.uniform(max(x0, reach), min(x1, 1 - reach)) if max(x0, reach) < min(x1, 1 - reach) else (x0 + x1) / 2
    y = d.uniform(max(y0, reach), min(y1, 1 - reach)) if max(y0, reach) < min(y1, 1 - reach) else (y0 + y1) / 2
    angle = d.uniform(-_MAX_ANGLE[shape], _MAX_ANGLE[shape])
    rgb = _jitter_rgb(d, OBJECT_COLOURS[colour])
    return SceneObject(colour, shape, size, position, x, y, radius, angle, rgb,
                       size_said=d.uniform() < P_SIZE_SAID, position_said=position_said)


def sample_scene(d: _Draws) -> Scene:
    if d.uniform() < P_TWO_OBJECTS:
        first = d.choice(OBJECT_COLOURS)
        second = d.choice([c for c in OBJECT_COLOURS if c != first])
        pair = d.choice(PAIRS)
        objects = (_object(d, first, pair[0], True), _object(d, second, pair[1], True))
    else:
        said = d.uniform() < P_POSITION_SAID
        objects = (_object(d, d.choice(OBJECT_COLOURS), d.choice(POSITIONS), said),)
    background = d.choice([c for c in BACKGROUND_COLOURS if c not in {o.colour for o in objects}])
    background_rgb = _jitter_rgb(d, BACKGROUND_COLOURS[background])
    centre_word = "center" if d.uniform() < P_CENTER_SPELLING else "centre"
    caption = " and ".join(o.phrase(centre_word) for o in objects) + f", {background} background"
    return Scene(objects, background, background_rgb, caption)


def sample_scenes(n: int, generator: torch.Generator) -> list[Scene]:
    values = torch.rand(n, 64, generator=generator, dtype=torch.float64).tolist()
    return [sample_scene(_Draws(v)) for v in values]


# ----- rasterisation: signed distances (negative inside), after Inigo Quilez's 2D distance functions -----

def _circle(px, py, r):
    return torch.sqrt(px * px + py * py) - r


def _box(px, py, half):
    dx, dy = px.abs() - half, py.abs() - half
    outside = torch.sqrt(dx.clamp(min=0) ** 2 + dy.clamp(min=0) ** 2)
    return outside + torch.maximum(dx, dy).clamp(max=0)


def _triangle(px, py, half_side):
    """Equilateral, pointing up (y up), centred on its centroid."""
    k = math.sqrt(3.0)
    x = px.abs() - half_side
    y = py + half_side / k
    fold = (x + k * y) > 0
    x, y = torch.where(fold, (x - k * y) / 2, x), torch.where(fold, (-k * x - y) / 2, y)
    x = x - torch.clamp(x, -2 * half_side, torch.zeros_like(x))
    return -torch.sqrt(x * x + y * y) * torch.sign(y)


def _star(px, py, r, inner):
    """Five points, one pointing up (y up)."""
    k1x, k1y = 0.809016994375, -0.587785252292
    k2x, k2y = -k1x, k1y
    x, y = px.abs(), py
    dot = (k1x * x + k1y * y).clamp(min=0)
    x, y = x - 2 * dot * k1x, y - 2 * dot * k1y
    dot = (k2x * x + k2y * y).clamp(min=0)
    x, y = x - 2 * dot * k2x, y - 2 * dot * k2y
    x, y = x.abs(), y - r
    bax, bay = inner * -k1y, inner * k1x - 1.0
    h = ((x * bax + y * bay) / (bax * bax + bay * bay)).clamp(min=torch.zeros_like(r), max=r)
    dx, dy = x - bax * h, y - bay * h
    return torch.sqrt(dx * dx + dy * dy) * torch.sign(y * bax - x * bay)


def _rhombus(px, py, bx, by):
    x, y = px.abs(), py.abs()
    h = (((bx - 2 * x) * bx - (by - 2 * y) * by) / (bx * bx + by * by)).clamp(-1, 1)
    dx, dy = x - 0.5 * bx * (1 - h), y - 0.5 * by * (1 + h)
    return torch.sqrt(dx * dx + dy * dy) * torch.sign(x * by + y * bx - bx * by)


_SHAPE_DISTANCES = (
    lambda px, py, r: _circle(px, py, r),
    lambda px, py, r: _box(px, py, 0.87 * r),
    lambda px, py, r: _triangle(px, py, 1.225 * r),
    lambda px, py, r: _star(px, py, 1.35 * r, 0.45),
    lambda px, py, r: _rhombus(px, py, 0.9 * r, 1.25 * r),
)


def _distance(shape_ids: list[int], px, py, r):
    """Signed distance of each pixel to each picture's shape (``shape_ids`` index SHAPES, -1: none), computing
    each kind of shape only for the pictures that have one."""
    d = torch.full_like(px, 1e3)
    for sid, fn in enumerate(_SHAPE_DISTANCES):
        rows = [i for i, s in enumerate(shape_ids) if s == sid]
        if len(rows) == len(shape_ids):
            return fn(px, py, r)
        if rows:
            idx = torch.tensor(rows, device=px.device)
            d[idx] = fn(px[idx], py[idx], r[idx])
    return d


@dataclass
class SceneTensors:
    """What rendering needs of a batch of scenes, as CPU tensors (built in a data worker while training)."""

    shape_ids: list[list[int]]  # per object slot, per picture: index into SHAPES or -1
    params: torch.Tensor  # (B, 2, 7): x, y, radius, angle (radians), r, g, b
    background: torch.Tensor  # (B, 3)


def scene_tensors(scenes: list[Scene], slots: int = 2) -> SceneTensors:
    rows, ids, backgrounds = [], [[-1] * len(scenes) for _ in range(slots)], []
    for i, scene in enumerate(scenes):
        row = []
        for k in range(slots):
            if k < len(scene.objects):
                o = scene.objects[k]
                ids[k][i] = SHAPES.index(o.shape)
                row.append([o.x, o.y, o.radius, math.radians(o.angle), *o.rgb])
            else:
                row.append([0.0] * 7)
        rows.append(row)
        backgrounds.append(scene.background_rgb)
    return SceneTensors(ids, torch.tensor(rows, dtype=torch.float32).reshape(len(scenes), slots, 7),
                        torch.tensor(backgrounds, dtype=torch.float32).reshape(len(scenes), 3))


def render(scenes: list[Scene] | SceneTensors, size: int = 64, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Pictures (B, 3, H, W) and each object's visible coverage (B, 2, H, W), drawn in caption order."""
    t = scenes if isinstance(scenes, SceneTensors) else scene_tensors(scenes)
    n, slots = t.params.shape[:2]
    f32 = {"dtype": torch.float32}
    params, background = t.params.to(device), t.background.to(device)

    coords = (torch.arange(size, device=device, **f32) + 0.5) / size
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")  # (H, W)
    image = background[:, :, None, None].expand(n, 3, size, size).clone()
    coverages = []
    for k in range(slots):
        p = params[:, k, :, None, None]  # (B, 7, 1, 1)
        dx, dy = gx - p[:, 0], -(gy - p[:, 1])  # y up, centred on the object
        cos, sin = torch.cos(-p[:, 3]), torch.sin(-p[:, 3])
        px, py = cos * dx - sin * dy, sin * dx + cos * dy  # undo the object's rotation
        distance = _distance(t.shape_ids[k], px, py, p[:, 2])
        coverage = (0.5 - distance * size).clamp(0, 1)
        image = image * (1 - coverage[:, None]) + p[:, 4:7] * coverage[:, None]
        coverages.append(coverage)
    masks = torch.stack(coverages, 1)
    masks = torch.stack([masks[:, 0] * (1 - masks[:, 1]), masks[:, 1]], 1)  # the second object covers the first
    return image.clamp(0, 1), masks


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) floats in [0, 1] -> (B, H, W, 3) uint8 on the CPU, rounded as nodegraph.imaging does."""
    return images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()


def canny(images: torch.Tensor, low_threshold: int = 100, high_threshold: int = 200) -> torch.Tensor:
    """White-on-black canny edges (B, 3, H, W) in {0, 1}, on the images' device.

    The same edges as the ControlNet Preprocessor node's ``canny`` detector (controlnet-aux's
    CannyDetector: cv2.Canny on the uint8 RGB picture, gradients over all three channels) when its
    detect_resolution and image_resolution equal the picture's side, and as the 100/200 defaults.
    """
    import cv2
    import numpy as np

    pictures = to_uint8(images).numpy()
    edges = np.stack([cv2.Canny(np.ascontiguousarray(p), low_threshold, high_threshold) for p in pictures])
    out = torch.from_numpy(edges).to(images.device, torch.float32).div_(255.0)
    return out[:, None].expand(-1, 3, -1, -1).contiguous()
