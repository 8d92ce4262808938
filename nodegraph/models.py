"""Model references: resolving them, recording them by hash, and finding them again on another machine.

A parameter declared with ``hint="model"`` names a model: a path (relative to the workflow file), a name
in the configured model folders, or ``hf:org/name`` in the local Hugging Face cache. ``record`` stores,
for each such parameter, the model's name, size and sha256 in the workflow's metadata; ``check`` says which
models are missing and, for a renamed or moved file, finds it in the model folders by its hash. Hashes are
computed once per file and remembered by path, size and modification time.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import NodegraphError, Problem
from .files import atomic_write
from .settings import bundled_model_folder, model_folders

HF_PREFIX = "hf:"
MODEL_HINT = "model"
METADATA_KEY = "models"
_CHUNK = 16 * 1024 * 1024


class ModelNotFound(NodegraphError):
    pass


def resolve(ref: str, base_dir: Path | None = None) -> Path:
    """A model reference -> a local path, or :class:`ModelNotFound` saying where it looked."""
    ref = ref.strip()
    if not ref:
        raise ModelNotFound("no model chosen")
    if ref.startswith(HF_PREFIX):
        return _from_hf_cache(ref[len(HF_PREFIX):])
    path = Path(ref).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if path.exists():
        return path
    searched = model_folders()
    for folder in searched:
        if (folder / ref).exists():
            return folder / ref
    where = ", ".join(str(f) for f in searched) or "no model folders configured"
    raise ModelNotFound(f"model {ref!r} not found (looked at {path} and in: {where})")


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


def available() -> list[str]:
    """Model names in the configured folders (for pickers): model folders and weight files."""
    names = []
    folders, bundled = model_folders(), bundled_model_folder()
    if bundled in folders:  # the demo models come first in pickers (a user's model of the same name still wins)
        folders = [bundled] + [f for f in folders if f != bundled]
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if entry.is_dir() and ((entry / "model_index.json").exists() or (entry / "config.json").exists()):
                names.append(entry.name)
            elif entry.suffix in WEIGHT_SUFFIXES:
                names.append(entry.name)
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
    linked = {(l.target, l.input) for l in workflow.links}
    refs = {}
    for node in workflow.nodes.values():
        node_type = workflow.registry.get(node.type)
        if node_type is None or node.mode == "muted":
            continue
        for param in node_type.params:
            value = node.params.get(param.name)
            if param.hint == MODEL_HINT and value and (node.id, param.name) not in linked:
                refs[f"{node.id}.{param.name}"] = value
    return refs


def record(workflow) -> dict[str, dict]:
    """Store name, size and sha256 of every model the workflow can resolve in ``metadata["models"]``."""
    cache = _load_hash_cache()
    records = dict(workflow.metadata.get(METADATA_KEY) or {})
    for where, ref in references(workflow).items():
        try:
            records[where] = describe(resolve(ref, workflow.base_dir), cache).to_json()
        except ModelNotFound:
            continue  # keep what an earlier machine recorded
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
    for where, ref in references(workflow).items():
        try:
            resolve(ref, workflow.base_dir)
            continue
        except ModelNotFound as e:
            missing = str(e)
        node_id, param = where.split(".", 1)
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
    found = []
    for folder in model_folders():
        if folder.is_dir():
            found.extend(sorted(folder.iterdir()))
    return found


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
