"""Sampling with several prompts at once, ComfyUI's way (its ``calc_cond_batch`` and ``get_area_and_mult``):
where and when each prompt of a Combine Conditioning acts, and the blend of their predictions.

Every step, each prompt whose timestep range holds the step predicts on its own region of the latent (the
whole picture, its area, or its mask's bounds); the predictions are summed weighted by area/mask x strength
and divided by the sum of the weights. An area without a mask fades in over 8 latent pixels at its edges
inside the picture, as ComfyUI's does. A single prompt over the whole picture is one plain denoiser call,
so a Sampler without regions computes exactly what it always did. The negative half of a guided batch is
blended with the same weights, each prompt's own negative on its own region.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nodegraph import NodeUserError

from ._diffusion_types import Conditioning, each_entry

FEATHER = 8  # latent pixels over which an area's inner edges fade in (ComfyUI's rr)


@dataclass(eq=False)
class Entry:
    """One prompt placed on the latent: its region (y0, y1, x0, x1) in latent pixels, its weight there
    ((B or 1, 1, h, w), float32), and the denoiser inputs and ControlNets the Sampler prepared for it."""

    cond: Conditioning
    region: tuple[int, int, int, int]
    weight: Any
    whole: bool  # the whole picture at one weight: a plain denoiser call when it acts alone
    embeds: dict = field(default_factory=dict)
    controls: list = field(default_factory=list)

    def acts_at(self, at: float) -> bool:
        return self.cond.start <= at < self.cond.end

    def controls_at(self, step: int, total: int, width: int) -> list:
        """(module, control picture cropped to the region, scale) for the ControlNets active at this step
        (diffusers' keep rule: the step lies wholly inside the ControlNet's start..end)."""
        y0, y1, x0, x1 = self.region
        active = []
        for module, image, strength, control in self.controls:
            if control.start <= step / total and (step + 1) / total <= control.end:
                s = image.shape[-1] // width  # pixels (UNet ControlNets) or latents (SD3, Flux) per latent pixel
                active.append((module, image[..., y0 * s:y1 * s, x0 * s:x1 * s], strength))
        return active


def checked(family, model, conditioning: Conditioning, negative: Conditioning | None) -> Conditioning:
    """The conditioning the Sampler samples with: every prompt checked against the model, and the negative
    input (when linked) as every prompt's negative."""
    import dataclasses

    for part in conditioning.parts():
        family.check(model, part)
    ip_adapters(conditioning)
    if negative is None:
        return conditioning
    family.check(model, negative)
    if negative.entries or negative.area is not None or negative.mask is not None or (negative.start,
                                                                                      negative.end) != (0.0, 1.0):
        raise NodeUserError("the Sampler's 'negative' takes one prompt for the whole picture; give regions and "
                            "timestep ranges to the prompts in 'conditioning'")
    return each_entry(conditioning, lambda e: dataclasses.replace(e, negative=negative.positive))


def ip_adapters(conditioning: Conditioning) -> tuple:
    """The IP-Adapters to install for sampling: they act on the whole denoiser, so every prompt of a
    Combine Conditioning must carry the same ones."""
    kinds = {tuple(map(id, p.ip_adapters)) for p in conditioning.parts()}
    if len(kinds) > 1:
        raise NodeUserError("IP-Adapters act on the whole picture, not on one prompt of a Combine Conditioning: "
                            "apply the IP-Adapter after Combine Conditioning (it then applies to every prompt)")
    return conditioning.parts()[0].ip_adapters


def entries(model, conditioning: Conditioning, latent, positions: list[float], device) -> list[Entry]:
    """Each prompt placed on the latent; refuses, in words, areas outside the picture, masks of another
    shape, and steps or pixels that no prompt covers."""
    import torch

    height, width = latent.samples.shape[-2:]
    pixels = latent.meta.get("pixel_size") or (height * 8, width * 8)
    down = max(1, round(pixels[1] / width))
    multiple = 2 if model.family == "flux" else getattr(model.denoiser.config, "patch_size", None) or 1
    placed = []
    for part in conditioning.parts():
        entry = _place(part, (height, width), pixels, down, multiple, latent.samples.shape[0])
        if entry is not None:
            entry.weight = entry.weight.to(device=device, dtype=torch.float32)
            placed.append(entry)
    _check_coverage(placed, positions, (height, width))
    return placed


def _place(part, size, pixels, down: int, multiple: int, batch: int) -> Entry | None:
    import torch

    height, width = size
    region = (0, height, 0, width)
    if part.area is not None:
        x, y, w, h = part.area
        if x >= pixels[1] or y >= pixels[0] or x < 0 or y < 0:
            raise NodeUserError(f"the area {w}x{h} at x={x}, y={y} (Set Conditioning Area) lies outside the "
                                f"{pixels[1]}x{pixels[0]} picture")
        y0, x0 = y // down, x // down
        region = (y0, min(height, y0 + h // down), x0, min(width, x0 + w // down))
        if region[1] <= region[0] or region[3] <= region[2]:
            raise NodeUserError(f"the area {w}x{h} at x={x}, y={y} (Set Conditioning Area) is smaller than one "
                                f"latent pixel ({down}x{down} pixels)")
    if part.mask is None:
        region = _snapped(region, size, multiple)
        return Entry(part, region, _feathered(region, size) * part.strength, region == (0, height, 0, width))
    mask = part.mask.float()
    mask = mask.reshape(-1, 1, *mask.shape[-2:])
    mh, mw = mask.shape[-2:]
    if abs(mh * pixels[1] - mw * pixels[0]) > 0.02 * mw * pixels[0]:
        raise NodeUserError(f"the mask of Set Conditioning Mask is {mw}x{mh} but the picture is "
                            f"{pixels[1]}x{pixels[0]}: give it a mask of the picture's size (or its shape)")
    if mask.shape[0] not in (1, batch):
        raise NodeUserError(f"the mask of Set Conditioning Mask holds {mask.shape[0]} masks for a batch of {batch} "
                            f"pictures: give one mask, or one per picture")
    mask = torch.nn.functional.interpolate(mask, size=size, mode="bilinear", align_corners=False)  # as ComfyUI
    if part.mask_bounds:
        ys, xs = torch.nonzero(mask.abs().amax(dim=(0, 1)) > 0, as_tuple=True)
        if len(ys) == 0:
            return None  # an empty mask: the prompt acts nowhere
        y0, x0 = int(ys.min()), int(xs.min())
        y1 = min(height, y0 + max(FEATHER, int(ys.max()) + 1 - y0))  # at least 8 latent pixels, as ComfyUI
        x1 = min(width, x0 + max(FEATHER, int(xs.max()) + 1 - x0))
        region = (y0, y1, x0, x1)
    region = _snapped(region, size, multiple)
    y0, y1, x0, x1 = region
    weight = mask[..., y0:y1, x0:x1] * (part.mask_strength * part.strength)
    return Entry(part, region, weight, False)


def _feathered(region, size):
    """The area's weight: 1 inside, fading over ``FEATHER`` latent pixels at each edge inside the picture."""
    import torch

    (y0, y1, x0, x1), (height, width) = region, size
    rows, cols = torch.ones(y1 - y0), torch.ones(x1 - x0)
    for line, start, end, full in ((rows, y0, y1, height), (cols, x0, x1, width)):
        n = len(line)
        for t in range(min(FEATHER, n)):
            if start != 0:
                line[t] *= (t + 1) / FEATHER
            if end < full:
                line[n - 1 - t] *= (t + 1) / FEATHER
    return (rows[:, None] * cols[None, :])[None, None]


def _snapped(region, size, multiple: int):
    """The region grown to the denoiser's patch size (Flux's 2x2 packing, SD3's and Sana's patches)."""
    if multiple == 1:
        return region
    y0, y1, x0, x1 = region
    up = lambda v, full: min(full, -(-v // multiple) * multiple)  # noqa: E731
    return (y0 // multiple * multiple, up(y1, size[0]), x0 // multiple * multiple, up(x1, size[1]))


def _check_coverage(placed: list[Entry], positions: list[float], size) -> None:
    import torch
    import torch.nn.functional as F

    seen = set()
    for step, at in enumerate(positions):
        acting = tuple(i for i, e in enumerate(placed) if e.acts_at(at))
        if not acting:
            ranges = ", ".join(f"{e.cond.start:g}-{e.cond.end:g}" for e in placed) or "none"
            raise NodeUserError(f"no prompt acts at step {step + 1} of {len(positions)} ({at:.3g} of the schedule): "
                                f"the timestep ranges ({ranges}) leave a gap")
        if acting in seen:
            continue
        seen.add(acting)
        count = torch.zeros(1, 1, *size)
        for i in acting:
            y0, y1, x0, x1 = placed[i].region
            weight = placed[i].weight.cpu()
            count = count + F.pad(weight, (x0, size[1] - x1, y0, size[0] - y1))
        if not (count > 0).all():
            raise NodeUserError(f"part of the picture has no prompt at step {step + 1} of {len(positions)}: the "
                                f"areas or masks leave it uncovered (or weigh it 0); combine a prompt without an "
                                f"area for the background")


def predict(predict_one, runner, x, t, placed: list[Entry], at: float, step: int, total: int):
    """The guided prediction for batch ``x`` at ``t``: each acting prompt on its region, blended by weight.
    ``predict_one(runner, x, t, embeds, controls)`` is one prompt's prediction with its guidance applied (CFG,
    PAG); guidance is linear in the predictions it mixes, so blending guided predictions equals guiding
    blended ones, as ComfyUI does it."""
    import torch

    width = x.shape[-1]
    acting = [e for e in placed if e.acts_at(at)]
    if len(acting) == 1 and acting[0].whole:
        entry = acting[0]
        return predict_one(runner, x, t, entry.embeds, entry.controls_at(step, total, width))
    out = count = prediction = None
    for entry in acting:
        y0, y1, x0, x1 = entry.region
        prediction = predict_one(runner, x[..., y0:y1, x0:x1], t, entry.embeds, entry.controls_at(step, total, width))
        if out is None:
            out = torch.zeros((prediction.shape[0], prediction.shape[1], *x.shape[-2:]), device=x.device,
                              dtype=torch.float32)
            count = torch.zeros((prediction.shape[0], 1, *x.shape[-2:]), device=x.device, dtype=torch.float32)
        weight = entry.weight
        if weight.shape[0] != 1:  # one mask per picture
            weight = weight.repeat(prediction.shape[0] // weight.shape[0], 1, 1, 1)
        out[..., y0:y1, x0:x1] += prediction.float() * weight
        count[..., y0:y1, x0:x1] += weight
    return (out / count).to(prediction.dtype)
