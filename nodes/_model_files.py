"""Finding model files: a path, a name in the configured model folders, or a repo in the Hugging Face cache.

Nothing here touches the network: the Hugging Face cache is read with ``local_files_only=True``.
"""

from __future__ import annotations

from pathlib import Path

from nodegraph import NodeUserError
from nodegraph.settings import model_folders

HF_PREFIX = "hf:"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


def resolve(ref: str, ctx) -> Path:
    """A model reference -> a local path: ``hf:org/name``, a path (relative to the workflow), or a name."""
    ref = ref.strip()
    if not ref:
        raise NodeUserError("no model chosen: set 'model'")
    if ref.startswith(HF_PREFIX):
        return _from_hf_cache(ref[len(HF_PREFIX):])
    path = ctx.input_path(ref)
    if path.exists():
        return path
    searched = model_folders()
    for folder in searched:
        if (folder / ref).exists():
            return folder / ref
    where = ", ".join(str(f) for f in searched) or "no model folders configured"
    raise NodeUserError(f"model {ref!r} not found (looked at {path} and in: {where})")


def _from_hf_cache(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError):
        raise NodeUserError(f"{repo_id!r} is not in the Hugging Face cache (nothing is downloaded here)") from None
    except HFValidationError as e:
        raise NodeUserError(f"{repo_id!r} is not a Hugging Face repo id: {e}") from None


def identity(ref: str, ctx) -> dict:
    """What makes a loaded model the same model: each weight file's path, size and modification time."""
    try:
        path = resolve(ref, ctx)
    except NodeUserError as e:
        return {"ref": ref, "missing": str(e)}
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    stats = []
    for f in files:
        st = f.stat()
        stats.append((str(f.relative_to(path)) if f != path else f.name, st.st_size, st.st_mtime_ns))
    return {"path": str(path.resolve()), "files": stats}


def list_models() -> list[str]:
    """Names the loader's picker offers: diffusers folders and weight files in the model folders."""
    names = []
    for folder in model_folders():
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if entry.is_dir() and ((entry / "model_index.json").exists() or (entry / "config.json").exists()):
                names.append(entry.name)
            elif entry.suffix in WEIGHT_SUFFIXES:
                names.append(entry.name)
    return list(dict.fromkeys(names))


def torch_dtype(name: str, device):
    import torch

    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


__all__ = ["HF_PREFIX", "identity", "list_models", "resolve", "torch_dtype"]
