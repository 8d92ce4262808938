"""The values that travel on diffusion ports: MODEL, TEXT_ENCODER, VAE, CONDITIONING, LATENT.

Each carries its model family ("sd", "sdxl", "sd3", "flux", "sana"), so a Sampler given conditioning
from another family's text encoder says so in words instead of failing on a tensor shape.
They are dataclasses so the engine's cache can measure them, move them between devices and compare them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class DiffusionModel:
    """MODEL: the denoiser (UNet or transformer) with the scheduler settings it was trained with."""

    family: str
    denoiser: Any
    scheduler_config: dict
    source: str
    loras: tuple[tuple[str, float], ...] = ()  # (adapter name, strength) to switch on before sampling
    freeu: tuple[float, float, float, float] | None = None  # FreeU's (s1, s2, b1, b2), switched on before sampling
    pag: tuple[float, str] | None = None  # perturbed-attention guidance's (scale, layers), run by the Sampler
    differential: float | None = None  # Differential Diffusion's strength: per-step masks from a soft inpaint mask

    @property
    def in_channels(self) -> int:
        return self.denoiser.config.in_channels


@dataclass(eq=False)
class TextEncoders:
    """TEXT_ENCODER: a family's text encoder(s) and tokenizer(s), by their diffusers component names."""

    family: str
    components: dict[str, Any]
    source: str
    options: dict[str, Any] = field(default_factory=dict)  # pipeline settings such as force_zeros_for_empty_prompt
    loras: tuple[tuple[str, float], ...] = ()


@dataclass(eq=False)
class Vae:
    """VAE: an AutoencoderKL ("kl"), AutoencoderDC ("dc"), AutoencoderTiny ("tiny", TAESD) or Qwen-Image's video
    VAE ("qwen", used on one-frame clips, with a mean and std per latent channel instead of one scale and shift)
    with its latent scaling."""

    kind: str
    module: Any
    scaling_factor: float
    shift_factor: float
    downscale: int  # pixels per latent pixel along each side
    latents_mean: tuple[float, ...] | None = None  # per channel (kind "qwen"): latents = (raw - mean) / std
    latents_std: tuple[float, ...] | None = None

    @property
    def latent_channels(self) -> int:
        config = self.module.config
        return config.z_dim if self.kind == "qwen" else config.latent_channels

    def scaled(self, raw):
        """The VAE's raw latents -> the latents a denoiser works on."""
        if self.latents_mean is None:
            return (raw - self.shift_factor) * self.scaling_factor
        mean, std = self._per_channel(raw)
        return (raw - mean) / std

    def unscaled(self, z):
        """The inverse of ``scaled``: what the VAE's decoder takes."""
        if self.latents_mean is None:
            return z / self.scaling_factor + self.shift_factor
        mean, std = self._per_channel(z)
        return z * std + mean

    def _per_channel(self, x):
        import torch

        shape = (1, -1) + (1,) * (x.dim() - 2)
        return (torch.tensor(self.latents_mean).view(shape).to(x.device, x.dtype),
                torch.tensor(self.latents_std).view(shape).to(x.device, x.dtype))


@dataclass(eq=False)
class ControlNet:
    """CONTROLNET: a ControlNet module and the model families it can steer."""

    families: tuple[str, ...]
    module: Any
    source: str


@dataclass(eq=False)
class Control:
    """One applied ControlNet: its control picture, strength, and the fraction of the steps it acts on."""

    net: ControlNet
    image: Any  # IMAGE in [0, 1]
    strength: float
    start: float
    end: float
    vae: Any = None  # SD3 and Flux ControlNets take the control picture as latents


@dataclass(eq=False)
class IpAdapter:
    """One applied IP-Adapter: its weights (diffusers' image_proj / ip_adapter layout), the reference
    picture's embedding and the negative one, and its scale."""

    state_dict: dict
    embeds: Any
    negative: Any
    scale: float
    source: str


@dataclass(eq=False)
class Conditioning:
    """CONDITIONING: encoded prompts, positive and negative, as the family's sampler inputs by name,
    plus the ControlNets applied to it (in order) and the reference latents an edit model (Flux Kontext) sees."""

    family: str
    positive: dict[str, Any]
    negative: dict[str, Any]
    prompt: str = ""
    controls: tuple[Control, ...] = ()
    ip_adapters: tuple[IpAdapter, ...] = ()
    guidance: float | None = None  # a guidance-distilled model's scale (Flux), set by Flux Guidance; else cfg
    # where and when this prompt acts (nodes/regions.py): ComfyUI's area, mask and timestep range
    area: tuple[int, int, int, int] | None = None  # (x, y, width, height) in pixels; None: the whole picture
    strength: float = 1.0  # the area's weight among the prompts of a Combine Conditioning
    mask: Any = None  # MASK (B, 1, H, W) weighting the prompt per pixel, resized to the latent at sampling
    mask_strength: float = 1.0
    mask_bounds: bool = False  # sample only the mask's bounding box (ComfyUI's set_cond_area "mask bounds")
    start: float = 0.0  # the fraction of the sampling schedule where it begins acting ...
    end: float = 1.0  # ... and where it stops
    entries: tuple["Conditioning", ...] = ()  # Combine Conditioning: several prompts, each sampled for itself
    references: tuple[Any, ...] = ()  # reference pictures' latents (Reference Latent), for edit models to see

    def parts(self) -> tuple["Conditioning", ...]:
        """The prompts the Sampler predicts with: the combined entries, or this conditioning alone."""
        return self.entries or (self,)


def combined(parts) -> Conditioning:
    """A Combine Conditioning list of ``parts`` (flattened); its own fields mirror the first entry, so a reader
    of ``positive`` still finds tensors of the right kind."""
    import dataclasses

    parts = tuple(e for p in parts for e in p.parts())
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    guidance = next((p.guidance for p in parts if p.guidance is not None), None)
    return dataclasses.replace(first, prompt=" | ".join(p.prompt for p in parts), controls=(), ip_adapters=(),
                               guidance=guidance, area=None, strength=1.0, mask=None, mask_strength=1.0,
                               mask_bounds=False, start=0.0, end=1.0, entries=parts)


def each_entry(cond: Conditioning, change) -> Conditioning:
    """``change`` applied to every prompt of a Combine Conditioning list (or to the one conditioning), as
    ComfyUI's conditioning nodes apply to each entry of its list."""
    if not cond.entries:
        return change(cond)
    return combined(change(e) for e in cond.entries)


@dataclass(eq=False)
class Latent:
    """LATENT: samples in a VAE's latent space (already scaled), and what inpainting needs.

    ``mask`` (latent resolution, 1 = repaint) and ``masked`` (latents of the picture with the masked
    area blanked, for 9-channel inpainting models) come from Inpaint Encode; ``source_image`` and
    ``source_mask`` let VAE Decode put the unmasked pixels back exactly as they were.
    ``meta["pixel_size"]`` is the (height, width) of the picture it stands for (SDXL conditions on it).
    """

    samples: Any
    channels: int
    mask: Any = None
    masked: Any = None
    source_image: Any = None
    source_mask: Any = None
    meta: dict = field(default_factory=dict)
