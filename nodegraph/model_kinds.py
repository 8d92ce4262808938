"""Model kinds, named as ComfyUI names them: which folders of an install hold each kind, and which files count.

A loader parameter declares its kind (``Param(..., hint="model", kind="loras")``), so a ComfyUI model name,
written relative to that kind's folder (``SDXL/sd_xl_base_1.0.safetensors``), can be looked up in the right
folders, and a picker lists only that kind. The table is ComfyUI's ``folder_paths`` defaults for the kinds
this program loads; ``ALIASES`` are the old names ComfyUI still maps onto the new ones.
"""

from __future__ import annotations

from dataclasses import dataclass

#: weight files in the formats ComfyUI lists; only .safetensors is ever opened here
SAFE_SUFFIXES = (".safetensors",)
#: pickle-based formats: listed (so a user sees the file and is told to convert it) but never opened
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pt2")


@dataclass(frozen=True)
class Kind:
    folders: tuple[str, ...]  # under ComfyUI/models/, in ComfyUI's search order
    suffixes: tuple[str, ...] = SAFE_SUFFIXES + PICKLE_SUFFIXES  # the files ComfyUI's pickers show
    #: pickle formats this kind's loader opens anyway, only through ``torch.load(weights_only=True)`` (which
    #: builds tensors and plain containers and refuses anything else): upscale models mostly ship as .pth
    weights_only: tuple[str, ...] = ()


KINDS: dict[str, Kind] = {
    "checkpoints": Kind(("checkpoints",)),
    "diffusion_models": Kind(("unet", "diffusion_models")),
    "text_encoders": Kind(("text_encoders", "clip")),
    "vae": Kind(("vae",)),
    "loras": Kind(("loras",)),
    "controlnet": Kind(("controlnet", "t2i_adapter")),
    "embeddings": Kind(("embeddings",)),
    "upscale_models": Kind(("upscale_models",), weights_only=(".pth", ".pt")),
    "clip_vision": Kind(("clip_vision",)),
    "ipadapter": Kind(("ipadapter",)),  # ComfyUI_IPAdapter_plus registers this one
}

#: ComfyUI's legacy names (``folder_paths.map_legacy``), accepted wherever a kind is named, yaml keys included
ALIASES: dict[str, str] = {"unet": "diffusion_models", "clip": "text_encoders"}


def canonical(kind: str) -> str:
    """The current name of a kind (``unet`` -> ``diffusion_models``); other names are returned as given."""
    return ALIASES.get(kind, kind)
