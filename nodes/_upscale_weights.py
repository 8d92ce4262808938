"""Reading an upscale model's file and handing it to spandrel, without ever running pickled code.

Upscale models (ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT, ...) mostly ship as ``.pth`` files, with no config:
spandrel recognises the architecture and its sizes from the state dict's keys and shapes. We read the state
dict ourselves so that no file can run code: ``.safetensors`` with safetensors, ``.pth``/``.pt`` only with
``torch.load(weights_only=True)``, whose unpickler builds tensors and plain containers and refuses every
other object (it never imports or calls what the file names). spandrel's own file loader is not used: it
unpickles ``.pth`` files with a looser unpickler and runs TorchScript ``.pt`` files. Any other format is
refused, and so is a model that is not image-to-image (an inpainting model takes a mask too).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nodegraph import NodeUserError

SAFETENSORS = (".safetensors",)
WEIGHTS_ONLY = (".pth", ".pt")  # read only through torch.load(weights_only=True)
#: spandrel's purposes of image-to-image models, in words
PURPOSES = {"SR": "super-resolution", "Restoration": "restoration", "FaceSR": "face restoration",
            "Inpainting": "inpainting"}
CHANNELS = (1, 3)  # pictures travel as RGB; a grayscale model sees their luminance


def read_state_dict(path: Path) -> dict[str, Any]:
    """The tensors of an upscale model file, by name (possibly nested, as in ``{"params_ema": {...}}``)."""
    suffix = path.suffix.lower()
    if path.is_dir():
        raise NodeUserError(f"{path} is a folder; an upscale model is one .safetensors or .pth file")
    if suffix in SAFETENSORS:
        return _read_safetensors(path)
    if suffix in WEIGHTS_ONLY:
        return _read_weights_only(path)
    raise NodeUserError(f"{path}: upscale models are read from .safetensors files, or from .pth/.pt files through "
                        f"torch.load(weights_only=True); a {suffix or 'suffixless'} file is not opened")


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise NodeUserError(f"cannot read {path} as a .safetensors file: {_one_line(e)}") from None


def _read_weights_only(path: Path) -> dict[str, Any]:
    import pickle
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # a TorchScript file: refused below, torch's note about it adds nothing
            warnings.filterwarnings("ignore", message=".*TorchScript archive", category=UserWarning)
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        wanted = re.search(r"GLOBAL ([\w.]+)", str(e))
        if wanted:
            raise NodeUserError(
                f"{path} holds pickled objects other than tensors and plain containers (it asks for "
                f"{wanted.group(1)}), so it was not opened: an upscale model file should hold only its weights; "
                f"ask its author for a .safetensors copy") from None
        raise NodeUserError(f"{path} cannot be read by torch's weights-only reader ({_reader_error(e)}), so it was "
                            f"not opened further: is it a PyTorch weights file?") from None
    except RuntimeError as e:
        if "TorchScript" in str(e):
            raise NodeUserError(f"{path} is a TorchScript archive (a program, not a state dict); programs in "
                                f"model files are not run here: save its state_dict() instead") from None
        raise NodeUserError(f"cannot read {path} as PyTorch weights: {_one_line(e)}") from None
    except (OSError, EOFError, ValueError) as e:
        raise NodeUserError(f"cannot read {path} as PyTorch weights: {_one_line(e)}") from None
    if not isinstance(data, dict):
        raise NodeUserError(f"{path} holds a {type(data).__name__}, not a state dict (names -> tensors)")
    return data


def _reader_error(error: BaseException) -> str:
    """What torch's weights-only unpickler objected to, without its boilerplate (which suggests retrying
    with weights_only=False: exactly what is never done here)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    after = text.split("WeightsUnpickler error:", 1)
    if len(after) == 2:
        line = next((line.strip() for line in after[1].splitlines() if line.strip()), "")
        if line:
            return line.rstrip(".")
    return "it refused the file"


def load(path: Path, state_dict: dict[str, Any]):
    """spandrel's descriptor for the model in ``state_dict``, or a NodeUserError naming ``path`` and what
    spandrel took it for. Only image-to-image models with 1 or 3 channels are accepted."""
    import spandrel

    try:
        descriptor = spandrel.ModelLoader(device="cpu").load_from_state_dict(state_dict)
    except spandrel.UnsupportedModelError:
        keys = [k for k, v in state_dict.items() if not isinstance(v, dict)][:3]
        raise NodeUserError(
            f"spandrel does not recognise the model in {path} ({len(state_dict)} entries, e.g. "
            f"{', '.join(keys) or 'none'}): it knows ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT, OmniSR, SPAN and other "
            f"super-resolution and restoration architectures, but not this one") from None
    except Exception as e:  # noqa: BLE001 (an architecture's loader fails on a damaged or odd file in its own way)
        arch = _detected(state_dict)
        raise NodeUserError(f"{path} looks like {arch or 'a known'} model to spandrel but does not load: "
                            f"{_one_line(e)}") from None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise NodeUserError(
            f"{path} is {describe(descriptor)} (spandrel: {type(descriptor).__name__}); Load Upscale Model takes "
            f"image-to-image super-resolution or restoration models, and this one needs a mask as well")
    if descriptor.input_channels not in CHANNELS or descriptor.output_channels != descriptor.input_channels:
        raise NodeUserError(
            f"{path} is {describe(descriptor)} that turns {descriptor.input_channels}-channel pictures into "
            f"{descriptor.output_channels}-channel ones; Upscale Image works on RGB (3 channels) or grayscale (1)")
    return descriptor.eval()


def _detected(state_dict: dict[str, Any]) -> str | None:
    """The name of the architecture spandrel detects in ``state_dict``, for a message when loading fails."""
    import spandrel

    try:
        canonical = spandrel.canonicalize_state_dict(state_dict)
        for support in spandrel.MAIN_REGISTRY.architectures("detection"):
            if support.detect(canonical):
                return _a(support.architecture.name)
    except Exception:  # noqa: BLE001 (only a message depends on it)
        return None
    return None


def describe(descriptor) -> str:
    """'a 4x ESRGAN super-resolution model': what spandrel says a model is, in words."""
    purpose = PURPOSES.get(descriptor.purpose, descriptor.purpose)
    scale = f"{descriptor.scale}x " if descriptor.purpose in ("SR", "FaceSR") else ""
    return _a(f"{scale}{descriptor.architecture.name} {purpose} model")


def _a(words: str) -> str:
    return ("an " if words[0].upper() in "AEIOU8" else "a ") + words


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."
