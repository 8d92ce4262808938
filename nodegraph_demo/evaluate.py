"""Measures of how well a picture matches its scene: colour, position, background, edges, PSNR.

Why simple pixel rules rather than a learned judge: the scenes are flat colours on a flat background,
so "which named colour are the pixels that differ from the background, and where is their centre of
mass" answers the question exactly, offline, and the product's tests can reuse it on sampled pictures.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .scenes import NEUTRAL_COLOURS, OBJECT_COLOURS, PHRASES, SHAPES, Scene

# Hue bins (degrees, start inclusive) of the object colours: each named hue sits in the middle of its bin.
HUE_BINS = (("red", 345.0), ("orange", 15.0), ("yellow", 42.0), ("green", 85.0), ("cyan", 155.0),
            ("blue", 205.0), ("purple", 255.0), ("pink", 305.0))
NAMES = tuple(OBJECT_COLOURS) + tuple(NEUTRAL_COLOURS)
MIN_SATURATION = 0.2  # below this a pixel is white, gray or black
FOREGROUND_DISTANCE = 0.2  # RGB distance from the background colour that makes a pixel part of an object
MIN_OBJECT_PIXELS = 0.002  # fraction of the picture an object must cover to be seen at all


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over the batch of each picture's PSNR in dB (pictures in [0, 1])."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1).clamp(min=1e-10)
    return float((10 * torch.log10(1.0 / mse)).mean())


def colour_names(rgb: torch.Tensor) -> torch.Tensor:
    """Index into NAMES of each pixel's colour; rgb is (..., 3) in [0, 1]."""
    rgb = rgb.float().clamp(0, 1)
    v, _ = rgb.max(-1)
    c = v - rgb.min(-1).values
    s = torch.where(v > 0, c / v.clamp(min=1e-6), torch.zeros_like(v))
    r, g, b = rgb.unbind(-1)
    safe = c.clamp(min=1e-6)
    h = torch.where(v == r, ((g - b) / safe) % 6, torch.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60.0
    hue_index = torch.zeros_like(h, dtype=torch.long)
    for i, (_, start) in enumerate(HUE_BINS[1:], start=1):
        hue_index = torch.where(h >= start, torch.full_like(hue_index, i), hue_index)
    hue_index = torch.where(h >= HUE_BINS[0][1], torch.zeros_like(hue_index), hue_index)  # 345..360 is red again
    names = torch.tensor([NAMES.index(n) for n, _ in HUE_BINS], device=rgb.device)[hue_index]
    neutral = torch.where(v > 0.75, NAMES.index("white"), torch.where(v < 0.25, NAMES.index("black"),
                                                                        NAMES.index("gray")))
    return torch.where((s < MIN_SATURATION) | (v < 0.2), neutral, names)


def in_region(position: str, x: float, y: float) -> bool:
    """Whether a centre of mass (fractions of the picture) lies in the named half (or middle third)."""
    return {"left": x < 0.5, "right": x > 0.5, "top": y < 0.5, "bottom": y > 0.5,
            "centre": abs(x - 0.5) < 1 / 6 and abs(y - 0.5) < 1 / 6}[position]


PROMPT_BACKGROUNDS = ("white", "gray", "black")  # neutral, so no object colour is also the background's
PLACES = ("left", "right", "top", "bottom")


def colour_prompts(size: str) -> list[tuple[str, str]]:
    """(colour word, prompt) for every object colour: one ``size`` object in the centre, shapes and neutral
    backgrounds taking turns. The prompts the tests and scripts/measure_demo_models.py both use."""
    return [(colour, f"a {size} {colour} {SHAPES[i % len(SHAPES)]} in the centre, "
                     f"{PROMPT_BACKGROUNDS[i % len(PROMPT_BACKGROUNDS)]} background")
            for i, colour in enumerate(OBJECT_COLOURS)]


def place_prompts(size: str) -> list[tuple[str, str]]:
    """(place, prompt) for left, right, top and bottom: one ``size`` object, colours and shapes taking turns."""
    colours = list(OBJECT_COLOURS)
    return [(place, f"a {size} {colours[(3 * i + 1) % len(colours)]} {SHAPES[(i + 2) % len(SHAPES)]} "
                    f"{PHRASES[place]}, {PROMPT_BACKGROUNDS[i % len(PROMPT_BACKGROUNDS)]} background")
            for i, place in enumerate(PLACES)]


def _object_pixels(image: torch.Tensor):
    """Each pixel's colour name, which pixels belong to objects (far from the background colour and not of
    its name), and the background's name; image is (3, H, W) in [0, 1]."""
    pixels = image.float().permute(1, 2, 0)  # (H, W, 3)
    border = torch.cat([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = border.median(0).values
    names = colour_names(pixels)
    background_name = NAMES[int(colour_names(background))]
    foreground = (pixels - background).norm(dim=-1) > FOREGROUND_DISTANCE
    return names, foreground & (names != NAMES.index(background_name)), background_name


def _centre(mask: torch.Tensor) -> tuple[float, float]:
    """Centre of mass of a (H, W) boolean mask, as fractions of the width and height."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return float(xs.float().mean() + 0.5) / mask.shape[1], float(ys.float().mean() + 0.5) / mask.shape[0]


def main_object(image: torch.Tensor) -> tuple[str, float, float] | None:
    """The colour name most object pixels have and their centre of mass (fractions of the picture), or
    None where too few pixels stand out from the background: what a one-object prompt asked for."""
    names, chosen, _ = _object_pixels(image)
    if int(chosen.sum()) < max(1, int(MIN_OBJECT_PIXELS * chosen.numel())):
        return None
    return (NAMES[int(names[chosen].mode().values)], *_centre(chosen))


def object_count(image: torch.Tensor) -> int:
    """How many separate objects a picture (3, H, W) shows: connected groups of object pixels (8-connected,
    OpenCV's connectedComponentsWithStats) that each cover at least MIN_OBJECT_PIXELS of the picture. A
    one-object prompt should give 1; a model that has not learnt "a" from "two" draws 2."""
    import cv2

    _, chosen, _ = _object_pixels(image)
    _, _, stats, _ = cv2.connectedComponentsWithStats(chosen.numpy().astype("uint8"), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]  # row 0 is the background
    return int((areas >= MIN_OBJECT_PIXELS * chosen.numel()).sum())


def judge(image: torch.Tensor, scene: Scene) -> dict[str, bool | None]:
    """Does one picture (3, H, W) show ``scene``? colour / position / background: True, False, or None
    where the caption says nothing to check (no position named)."""
    names, chosen, background_name = _object_pixels(image)
    min_pixels = max(1, int(MIN_OBJECT_PIXELS * chosen.numel()))
    counts = torch.bincount(names[chosen], minlength=len(NAMES))
    total = int(counts.sum())
    said = any(o.position_said for o in scene.objects)
    if total < min_pixels:
        return {"colour": False, "position": False if said else None,
                "background": background_name == scene.background}
    # The named colours must be the most common ones and cover most of the object pixels (noise does not).
    wanted = [NAMES.index(o.colour) for o in scene.objects]
    top = counts.topk(len(wanted)).indices.tolist()
    colour_ok = set(top) == set(wanted) and int(counts[wanted].sum()) >= 0.5 * total
    position_ok = True if said else None
    for o, code in zip(scene.objects, wanted):
        if not o.position_said:
            continue
        mine = chosen & (names == code) if len(scene.objects) > 1 else chosen
        if int(mine.sum()) < min_pixels:
            position_ok = False
            continue
        position_ok = position_ok and in_region(o.position, *_centre(mine))
    return {"colour": colour_ok, "position": position_ok, "background": background_name == scene.background}


def score(images: torch.Tensor, scenes: list[Scene]) -> dict[str, float]:
    """Fractions of pictures whose colour(s), position(s) and background match their scenes, over all
    scenes and (``one_*``) over the one-object scenes, which is what the product's tests prompt."""
    verdicts = [judge(im, s) for im, s in zip(images, scenes)]
    out = {}
    for prefix, keep in (("", lambda s: True), ("one_", lambda s: len(s.objects) == 1)):
        for key in ("colour", "position") if prefix else ("colour", "position", "background"):
            known = [v[key] for v, s in zip(verdicts, scenes) if keep(s) and v[key] is not None]
            out[prefix + key] = sum(known) / len(known) if known else math.nan
    out["count"] = len(verdicts)
    return out


def edge_agreement(generated: torch.Tensor, control: torch.Tensor, tolerance: int = 1) -> dict[str, float]:
    """Precision and recall of ``generated`` edges against ``control`` edges (both (B, C, H, W), edges > 0.5),
    an edge counting as found when the other map has one within ``tolerance`` pixels."""
    g = (generated.float().amax(1, keepdim=True) > 0.5).float()
    c = (control.float().amax(1, keepdim=True) > 0.5).float()
    k = 2 * tolerance + 1
    near_g = F.max_pool2d(g, k, stride=1, padding=tolerance)
    near_c = F.max_pool2d(c, k, stride=1, padding=tolerance)
    recall = float((c * near_g).sum() / c.sum().clamp(min=1))
    precision = float((g * near_c).sum() / g.sum().clamp(min=1))
    return {"precision": precision, "recall": recall}


def f_score(found: dict[str, float]) -> float:
    """The harmonic mean of edge_agreement's precision and recall."""
    return 2 * found["precision"] * found["recall"] / max(found["precision"] + found["recall"], 1e-9)


# ----- the exported models, run through diffusers' own pipelines -----

def _chunks(n: int, size: int):
    return [(i, min(i + size, n)) for i in range(0, n, size)]


def save_grid(path, rows: list[torch.Tensor], columns: int = 8, zoom: int = 4) -> None:
    """A PNG of the first ``columns`` pictures of each row (each row a (B, 3, H, W) batch in [0, 1])."""
    import numpy as np
    from PIL import Image

    from .scenes import to_uint8

    strips = [np.concatenate(list(to_uint8(r[:columns]).numpy()), 1) for r in rows]
    grid = Image.fromarray(np.concatenate(strips, 0))
    grid.resize((grid.width * zoom, grid.height * zoom), Image.Resampling.NEAREST).save(path)


def evaluate_exports(out, device, count: int = 64, steps: int = 20, seed: int = 0, sd_cfg: float = 5.0,
                     sana_cfg: float = 4.5, pictures=None) -> dict[str, dict[str, float]]:
    """Held-out figures of the exported folders in ``out`` (loaded in float32 with the diffusers pipelines):
    autoencoder PSNR, and colour / position / background accuracy of pictures sampled from held-out captions.
    With ``pictures`` (a folder), also a PNG per model: held-out truth (or control) above samples."""
    from pathlib import Path

    from diffusers import (
        ControlNetModel,
        SanaPipeline,
        StableDiffusionControlNetPipeline,
        StableDiffusionPipeline,
    )

    from .scenes import canny, scene_batch

    out, device = Path(out), torch.device(device)
    if pictures is not None:
        Path(pictures).mkdir(parents=True, exist_ok=True)

    def grid(name: str, rows: list[torch.Tensor]) -> None:
        if pictures is not None:
            save_grid(Path(pictures) / f"eval-{name}.png", [r.float().cpu() for r in rows])
    chunk = count if device.type == "cuda" else 16
    results: dict[str, dict[str, float]] = {}

    def report(name: str, figures: dict[str, float]) -> None:
        results[name] = figures
        text = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items())
        print(f"[eval] {name}: {text}", flush=True)

    def sample(pipe, captions, control=None, **kwargs) -> torch.Tensor:
        """Pictures of ``captions`` in chunks, each chunk seeded by its start (and given its ``control`` pictures)."""
        drawn = []
        for a, b in _chunks(len(captions), chunk):
            generator = torch.Generator(device).manual_seed(seed + a)
            given = {} if control is None else {"image": control[a:b].to(device)}
            drawn.append(pipe(captions[a:b], num_inference_steps=steps, generator=generator, output_type="pt",
                              **given, **kwargs).images.float().cpu())
        return torch.cat(drawn)

    if (out / "demo-sd").is_dir():
        pipe = StableDiffusionPipeline.from_pretrained(out / "demo-sd", torch_dtype=torch.float32).to(device)
        pipe.set_progress_bar_config(disable=True)
        size = pipe.unet.config.sample_size * pipe.vae_scale_factor
        held = scene_batch(count, seed=seed, index=10_000, split="eval", size=size, device=device)
        with torch.no_grad():
            x = held.images * 2 - 1
            decoded = pipe.vae.decode(pipe.vae.encode(x).latent_dist.mode()).sample
        report("sd/vae", {"psnr_db": psnr((decoded / 2 + 0.5).clamp(0, 1), held.images)})
        images = sample(pipe, held.captions, height=size, width=size, guidance_scale=sd_cfg)
        report("sd", score(images, held.scenes))
        grid("sd", [held.images, (decoded / 2 + 0.5).clamp(0, 1), images])
        if (out / "demo-controlnet-canny").is_dir():
            net = ControlNetModel.from_pretrained(out / "demo-controlnet-canny", torch_dtype=torch.float32)
            control_pipe = StableDiffusionControlNetPipeline(**pipe.components, controlnet=net.to(device),
                                                             requires_safety_checker=False)
            control_pipe.set_progress_bar_config(disable=True)
            edges = canny(held.images).cpu()
            images = sample(control_pipe, held.captions, control=edges, height=size, width=size,
                            guidance_scale=sd_cfg)
            report("controlnet-canny", {**edge_agreement(canny(images), edges, tolerance=1),
                                        **score(images, held.scenes)})
            grid("controlnet-canny", [edges, images])
    if (out / "demo-sana").is_dir():
        pipe = SanaPipeline.from_pretrained(out / "demo-sana", torch_dtype=torch.float32).to(device)
        pipe.set_progress_bar_config(disable=True)
        size = pipe.transformer.config.sample_size * pipe.vae_scale_factor
        held = scene_batch(count, seed=seed, index=10_000, split="eval", size=size, device=device)
        with torch.no_grad():
            decoded = pipe.vae.decode(pipe.vae.encode(held.images * 2 - 1).latent).sample
        report("sana/dcae", {"psnr_db": psnr((decoded / 2 + 0.5).clamp(0, 1), held.images)})
        images = sample(pipe, held.captions, height=size, width=size, guidance_scale=sana_cfg,
                        use_resolution_binning=False)
        report("sana", score(images, held.scenes))
        grid("sana", [held.images, (decoded / 2 + 0.5).clamp(0, 1), images])
    return results
