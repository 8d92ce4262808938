"""Finding model files: a path, a name in the configured model folders, a ComfyUI name in the ComfyUI
folders of the parameter's kind, or a repo in the Hugging Face cache.

Nothing here touches the network: the Hugging Face cache is read with ``local_files_only=True``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from nodegraph import NodeUserError, models


def resolve(ref: str, ctx, kind: str | None = None) -> Path:
    """A model reference -> a local path: ``hf:org/name``, a path (relative to the workflow), or a name
    (ComfyUI names too, given the parameter's ``kind``). Every diffusers or transformers loader calls this
    just before loading, so it also quiets those libraries' loading bars."""
    _quiet_loading_bars()
    return find(ref, ctx, kind)


def find(ref: str, ctx, kind: str | None = None) -> Path:
    """:func:`resolve` without touching diffusers or transformers, for fingerprints and for loaders that use
    neither library (importing them costs seconds)."""
    try:
        return models.resolve(ref, ctx.input_path("."), kind)
    except models.ModelNotFound as e:
        raise NodeUserError(str(e).replace("no model chosen", "no model chosen: set 'model'")) from None


def _quiet_loading_bars() -> None:
    """diffusers' and transformers' "Loading ..." progress bars: the engine reports progress its own way
    (events, the editor's node states, the batch bar), and the bars would clutter a headless run's output."""
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    # we pass torch_dtype on purpose: every diffusers version we allow (>= 0.35) accepts it; newer ones warn
    warnings.filterwarnings("ignore", message="`torch_dtype` is deprecated", category=FutureWarning)


def identity(ref: str, ctx, kind: str | None = None) -> dict:
    """What makes a loaded model the same model: each weight file's path, size and modification time."""
    try:
        path = find(ref, ctx, kind)
    except NodeUserError as e:
        return {"ref": ref, "missing": str(e)}
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    stats = []
    for f in files:
        try:
            st = f.stat()
        except FileNotFoundError:  # removed while we looked: it is not part of the model any more
            continue
        stats.append((str(f.relative_to(path)) if f != path else f.name, st.st_size, st.st_mtime_ns))
    return {"path": str(path.resolve()), "files": stats}


def list_models(kind: str | None = None) -> list[str]:
    """Names the loader's picker offers: diffusers folders and weight files in the model folders, and
    given a ``kind``, that kind's models in the ComfyUI folders."""
    return models.available(kind)


def config_class(path: Path, what: str) -> str:
    """The ``_class_name`` in a component folder's config.json, or an error saying the folder is not ``what``."""
    import json

    try:
        return json.loads((path / "config.json").read_text())["_class_name"]
    except (OSError, ValueError, KeyError):
        raise NodeUserError(f"{path} is not {what} (no config.json naming its class)") from None


def transformers_config(path: Path) -> dict:
    """A transformers folder's config.json, or a NodeUserError saying the folder is not one."""
    import json

    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        config = None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise NodeUserError(f"{path} is not a transformers model folder (no config.json naming its model_type)")
    return config


def model_type(path: Path) -> str:
    """config.json's model_type: which transformers classes read the folder, known before any weights load."""
    return transformers_config(path)["model_type"]


def load_transformers(path: Path, model_class: str, processor_class: str, dtype: str, device):
    """A transformers model (in eval mode, on ``device``) and its processor from a local folder, offline; a
    loading failure said in words."""
    import transformers

    try:
        module = getattr(transformers, model_class).from_pretrained(
            path, dtype=torch_dtype(dtype, device), local_files_only=True)
        processor = getattr(transformers, processor_class).from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise NodeUserError(f"cannot load {path}: {' '.join(str(e).split())[:300]}") from None
    return module.to(device).eval(), processor


def torch_dtype(name: str, device):
    import torch

    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


