"""Model references: resolving them, recording them by hash, and finding them again on another machine.

A parameter declared with ``hint="model"`` names a model: a path (relative to the workflow file), a name
in the configured model folders, a ComfyUI name in the folders of the parameter's ``kind`` (from a ComfyUI
install and its extra_model_paths.yaml: see ``comfyui_paths``), or ``hf:org/name`` in the local Hugging
Face cache. A lone pickle file (.ckpt, .pt, ...) is refused, never opened: loading one can run code (a kind
whose loader reads such files only with ``torch.load(weights_only=True)`` says so in ``model_kinds``).
``record`` stores, for each such parameter, the model's name, size and sha256 in the workflow's metadata;
``check`` says which models are missing and, for a renamed or moved file, finds it in the model folders
by its hash. Hashes are computed once per file and remembered by path, size and modification time.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from . import comfyui_paths
from .errors import NodegraphError, Problem
from .files import atomic_write
from .model_kinds import KINDS, PICKLE_SUFFIXES, canonical
from .settings import bundled_model_folder, model_folders

HF_PREFIX = "hf:"
MODEL_HINT = "model"
METADATA_KEY = "models"
_CHUNK = 16 * 1024 * 1024


class ModelNotFound(NodegraphError):
    pass


class ModelRefused(ModelNotFound):
    """The model was found, but in a format that is never opened here (a pickle)."""


def resolve(ref: str, base_dir: Path | None = None, kind: str | None = None) -> Path:
    """A model reference -> a local path, or :class:`ModelNotFound` saying where it looked.

    In order: ``hf:`` names, a path (relative to ``base_dir``), a name in the model folders, then a
    ComfyUI name in the ComfyUI folders of ``kind`` (subfolders included)."""
    ref = ref.strip()
    if not ref:
        raise ModelNotFound("no model chosen")
    if ref.startswith(HF_PREFIX):
        return _from_hf_cache(ref[len(HF_PREFIX):])
    path = Path(ref).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if path.exists():
        return _openable(path, kind)
    searched = model_folders()
    for folder in searched:
        if (folder / ref).exists():
            return _openable(folder / ref, kind)
    where = ", ".join(str(f) for f in searched) or "no model folders configured"
    comfy = comfyui_paths.folders_of(kind) if kind else []
    name = comfyui_paths.comfy_name(ref)
    for folder in comfy if name is not None else ():
        if (folder / name).exists():
            return _openable(folder / name, kind)
    if comfy:
        where += f"; ComfyUI {canonical(kind)} folders: " + ", ".join(str(f) for f in comfy)
    raise ModelNotFound(f"model {ref!r} not found (looked at {path} and in: {where})")


def _openable(path: Path, kind: str | None = None) -> Path:
    """``path``, unless it is a lone pickle file: those can run code when loaded, so they are never opened.
    (A diffusers folder holding .bin files is fine: diffusers reads those with weights_only, and so does the
    loader of a kind that lists the suffix in its ``weights_only``.)"""
    suffix = path.suffix.lower()
    kind_info = KINDS.get(canonical(kind)) if kind else None
    if kind_info is not None and suffix in kind_info.weights_only:
        return path
    if path.is_file() and suffix in PICKLE_SUFFIXES:
        raise ModelRefused(
            f"{path}: model files are read only as .safetensors; {path.suffix} files are pickles, which can "
            "run code when opened, so this one is not opened: convert it to .safetensors (for example with "
            "safetensors.torch.save_file on the tensors of torch.load(path, weights_only=True))")
    return path


def _from_hf_cache(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError):
        raise ModelNotFound(f"{repo_id!r} is not in the Hugging Face cache (nothing is downloaded here)") from None
    except HFValidationError as e:
        raise ModelNotFound(f"{repo_id!r} is not a Hugging Face repo id: {e}") from None


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


def available(kind: str | None = None) -> list[str]:
    """Model names for pickers: the model folders' models and weight files (demo models first), then,
    given a ``kind``, that kind's ComfyUI names (relative paths with ``/``, as ComfyUI lists them)."""
    names = []
    folders, bundled = model_folders(), bundled_model_folder()
    if bundled in folders:  # the demo models come first in pickers (a user's model of the same name still wins)
        folders = [bundled] + [f for f in folders if f != bundled]
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if entry.is_dir() and comfyui_paths.is_model_folder(entry):
                names.append(entry.name)
            elif entry.suffix in WEIGHT_SUFFIXES:
                names.append(entry.name)
    if kind:
        suffixes = KINDS[canonical(kind)].suffixes if canonical(kind) in KINDS else WEIGHT_SUFFIXES
        found = (name for folder in comfyui_paths.folders_of(kind)
                 for name, _ in comfyui_paths.models_in(folder, suffixes))
        names += sorted(set(found))  # one sorted list over all the kind's folders, as ComfyUI shows it
    return list(dict.fromkeys(names))


# ----- hashing, remembered by path, size and mtime ----------------------------------------------

def _hash_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nodegraph" / "model-hashes.json"


def _load_hash_cache() -> dict:
    try:
        return json.loads(_hash_cache_path().read_text())
    except (OSError, ValueError):
        return {}


def _file_sha256(path: Path, cache: dict) -> str:
    st = path.stat()
    key = str(path.resolve())
    known = cache.get(key)
    if known and known["size"] == st.st_size and known["mtime_ns"] == st.st_mtime_ns:
        return known["sha256"]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    cache[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest.hexdigest()}
    return cache[key]["sha256"]


def _files_of(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


@dataclass(frozen=True)
class ModelRecord:
    name: str
    size: int
    sha256: str

    def to_json(self) -> dict:
        return {"name": self.name, "sha256": self.sha256, "size": self.size}


def describe(path: Path, cache: dict | None = None) -> ModelRecord:
    """Name, size and sha256 of a model file, or of a model folder (a hash over its files' hashes)."""
    own = cache is None
    cache = _load_hash_cache() if own else cache
    files = _files_of(path)
    if path.is_file():
        sha = _file_sha256(path, cache)
    else:
        parts = [f"{f.relative_to(path).as_posix()}:{_file_sha256(f, cache)}" for f in files]
        sha = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    if own:
        _save_hash_cache(cache)
    return ModelRecord(path.name, sum(f.stat().st_size for f in files), sha)


def _save_hash_cache(cache: dict) -> None:
    try:
        path = _hash_cache_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(cache, indent=1, sort_keys=True).encode())
    except OSError:
        pass  # a cache we cannot write only costs time


# ----- what a workflow uses ----------------------------------------------------------------------

def references(workflow) -> dict[str, str]:
    """``"node.param" -> reference`` for every model parameter not fed by a link."""
    return {where: ref for where, (ref, _) in _model_params(workflow).items()}


def _model_params(workflow) -> dict[str, tuple[str, str]]:
    """``"node.param" -> (reference, kind)`` for every model parameter not fed by a link (inside a
    subgraph instance, ``"hires/loader.model"``)."""
    from .expand import flatten

    workflow = flatten(workflow)
    linked = {(l.target, l.input) for l in workflow.links}
    refs = {}
    for node in workflow.nodes.values():
        node_type = workflow.registry.get(node.type)
        if node_type is None or node.mode == "muted":
            continue
        for param in node_type.params:
            value = node.params.get(param.name)
            if param.hint == MODEL_HINT and value and (node.id, param.name) not in linked:
                refs[f"{node.id}.{param.name}"] = (value, param.kind)
    return refs


def record(workflow) -> dict[str, dict]:
    """Store name, size and sha256 of every model the workflow can resolve in ``metadata["models"]``."""
    cache = _load_hash_cache()
    records = dict(workflow.metadata.get(METADATA_KEY) or {})
    for where, (ref, kind) in _model_params(workflow).items():
        try:
            records[where] = describe(resolve(ref, workflow.base_dir, kind), cache).to_json()
        except NodegraphError:
            continue  # keep what an earlier machine recorded (check() reports why it is not found)
    _save_hash_cache(cache)
    refs = references(workflow)
    workflow.metadata[METADATA_KEY] = {k: v for k, v in sorted(records.items()) if k in refs}
    return workflow.metadata[METADATA_KEY]


def check(workflow, relink: bool = True) -> tuple[list[Problem], list[str]]:
    """Problems for models that cannot be found, and notes for models found again by hash.

    With ``relink``, a model found under another name or folder is written into the parameter.
    """
    problems, notes = [], []
    recorded = workflow.metadata.get(METADATA_KEY) or {}
    candidates = None
    for where, (ref, kind) in _model_params(workflow).items():
        node_id, param = where.split(".", 1)
        try:
            resolve(ref, workflow.base_dir, kind)
            continue
        except ModelRefused as e:  # found, but never to be opened: no other copy would be better
            problems.append(Problem(str(e), node_id, param))
            continue
        except ModelNotFound as e:
            missing = str(e)
        except NodegraphError as e:  # the folders to look in cannot be read (a broken extra_model_paths.yaml)
            problems.append(Problem(str(e), node_id, param))
            continue
        want = recorded.get(where)
        if isinstance(want, dict) and want.get("sha256"):
            if candidates is None:
                candidates = _candidates()
            found = _find_by_hash(want, candidates)
            if found is not None:
                notes.append(f"{where}: {ref!r} found by its hash at {found}")
                if relink:
                    workflow.set_param(node_id, param, str(found))
                continue
            size = _size_text(want.get("size", 0))
            missing = f"model {want.get('name', ref)!r} ({size}, sha256 {want['sha256'][:12]}...) is missing"
        problems.append(Problem(missing, node_id, param))
    return problems, notes


def _candidates() -> list[Path]:
    """Everything a renamed model could now be: the model folders' entries and every ComfyUI kind folder's models."""
    found = []
    for folder in model_folders():
        if folder.is_dir():
            found.extend(sorted(folder.iterdir()))
    for kind, folders in comfyui_paths.all_folders().items():
        suffixes = KINDS[kind].suffixes if kind in KINDS else WEIGHT_SUFFIXES
        for folder in folders:
            found.extend(path for _, path in comfyui_paths.models_in(folder, suffixes))
    return list(dict.fromkeys(found))


def _find_by_hash(want: dict, candidates: list[Path]) -> Path | None:
    cache = _load_hash_cache()
    try:
        for path in candidates:
            if sum(f.stat().st_size for f in _files_of(path)) != want.get("size"):
                continue  # sizes first: hashing is for the few that could match
            if describe(path, cache).sha256 == want["sha256"]:
                return path
    finally:
        _save_hash_cache(cache)
    return None


def _size_text(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} bytes"
