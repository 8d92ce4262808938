"""A ComfyUI install's model folders, per kind, read the way ComfyUI reads them.

A user coming from ComfyUI keeps models in ``ComfyUI/models/<folder>/...`` and in the folders an
``extra_model_paths.yaml`` adds; ComfyUI workflows name a model relative to its kind's folder. Following
ComfyUI's own rules (``folder_paths.py``, ``utils/extra_config.py``) means those names find the same files
here, in the same order. The yaml file has named sections (``comfyui:``, ``a111:``, ...), each with an
optional ``base_path`` (``~`` and ``$VARS`` expanded; relative to the yaml file's folder) that the
section's relative folders are joined to (without one they are relative to the yaml file's folder),
``is_default`` (its folders go in front of the others) and ``kind: folder`` lines, where a ``|`` block
lists several folders, one a line.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import settings
from .errors import NodegraphError
from .model_kinds import KINDS, canonical

EXTRA_PATHS_FILE = "extra_model_paths.yaml"  # next to ComfyUI's main.py, read at its start when present


class ComfyPathsError(NodegraphError):
    """An extra_model_paths.yaml that cannot be read; the message names the file and, where known, the line."""


def read_extra_paths(path: Path) -> list[tuple[str, Path, bool]]:
    """``(kind, folder, is_default)`` for every folder an extra_model_paths.yaml lists, in the file's order."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ComfyPathsError(f"{path}: no such file (named as an extra_model_paths.yaml)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ComfyPathsError(f"{path}: cannot be read ({getattr(e, 'strerror', None) or e})") from None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        what = ": ".join(str(x) for x in (getattr(e, "context", None), getattr(e, "problem", None)) if x) or str(e)
        raise ComfyPathsError(f"{path}{where}: not valid YAML ({what})") from None
    if config is None:  # an empty file adds nothing
        return []
    if not isinstance(config, dict):
        raise ComfyPathsError(f"{path}, line 1: expected named sections (comfyui:, a111:, ...) of 'kind: folder' lines")
    yaml_dir = os.path.dirname(os.path.abspath(path))
    found = []
    for section, conf in config.items():
        if conf is None:
            continue
        if not isinstance(conf, dict):
            raise ComfyPathsError(f"{_at(path, text, section)}: section {section!r} must hold 'kind: folder' lines")
        conf = dict(conf)
        base = conf.pop("base_path", None)
        is_default = bool(conf.pop("is_default", False))
        if base is not None:
            if not isinstance(base, str):
                raise ComfyPathsError(f"{_at(path, text, section, 'base_path')}: {section}.base_path must be a folder")
            base = os.path.expandvars(os.path.expanduser(base))
            if base and not os.path.isabs(base):
                base = os.path.abspath(os.path.join(yaml_dir, base))
        for key, value in conf.items():
            if not isinstance(value, str):
                raise ComfyPathsError(f"{_at(path, text, section, key)}: {section}.{key} must be a folder, "
                                      "or several folders one a line (a '|' block)")
            for line in value.split("\n"):
                line = line.strip()
                if not line:
                    continue
                if base:
                    full = os.path.join(base, line)
                elif not os.path.isabs(line):
                    full = os.path.abspath(os.path.join(yaml_dir, line))
                else:
                    full = line
                found.append((canonical(str(key)), Path(os.path.normpath(full)), is_default))
    return found


def _at(path: Path, text: str, *keys) -> str:
    """``file, line N`` for a section (or a key in it), found by composing the yaml again with its marks."""
    import yaml

    try:
        node, mark = yaml.compose(text, Loader=yaml.SafeLoader), None
        for key in keys:
            key_node, node = next((k, v) for k, v in node.value if getattr(k, "value", None) == str(key))
            mark = key_node.start_mark
        return f"{path}, line {mark.line + 1}"
    except (yaml.YAMLError, StopIteration, AttributeError, TypeError):
        return str(path)


def _add(folders: list[Path], folder: Path, is_default: bool) -> None:
    """ComfyUI's ``add_model_folder_path``: appended, or put first for an ``is_default`` section; a folder
    already listed stays where it is unless an ``is_default`` section names it again."""
    if folder in folders:
        if is_default and folders[0] != folder:
            folders.remove(folder)
            folders.insert(0, folder)
    elif is_default:
        folders.insert(0, folder)
    else:
        folders.append(folder)


def all_folders() -> dict[str, list[Path]]:
    """Every kind's folders in ComfyUI's search order: the install's own ``models/<folder>``, then what its
    extra_model_paths.yaml and the standalone yaml files add. Empty when no ComfyUI folder is configured."""
    folders: dict[str, list[Path]] = {}
    yamls = []
    install = settings.comfyui_folder()
    if install is not None:
        for kind, spec in KINDS.items():
            folders[kind] = [install / "models" / name for name in spec.folders]
        if (install / EXTRA_PATHS_FILE).is_file():
            yamls.append(install / EXTRA_PATHS_FILE)
    yamls += settings.comfyui_extra_paths()
    for path in yamls:
        for kind, folder, is_default in read_extra_paths(path):
            _add(folders.setdefault(kind, []), folder, is_default)
    return folders


def folders_of(kind: str) -> list[Path]:
    return all_folders().get(canonical(kind), [])


def is_model_folder(path: Path) -> bool:
    """A diffusers or transformers folder: one model, listed by its own name and not looked into."""
    return (path / "model_index.json").is_file() or (path / "config.json").is_file()


def models_in(folder: Path, suffixes: tuple[str, ...]) -> list[tuple[str, Path]]:
    """``(name, path)`` of every model under ``folder``: files with one of ``suffixes`` and model folders,
    named relative to ``folder`` with ``/`` the way ComfyUI lists them, subfolders (and linked ones) included."""
    found, seen = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a link back up the tree
            dirs[:] = []
            continue
        seen.add(real)
        here = Path(root)
        rel = here.relative_to(folder)
        if here != folder and is_model_folder(here):
            found.append((rel.as_posix(), here))
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in files:
            if os.path.splitext(name)[1].lower() in suffixes:
                found.append(((rel / name).as_posix(), here / name))
    return found


def comfy_name(ref: str) -> Path | None:
    """A model name as ComfyUI writes it (relative to a kind folder, ``/`` or ``\\\\`` separated) as a
    relative path; None for a name that is absolute or climbs out of the folder."""
    parts = [p for p in ref.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts or ref.startswith(("/", "\\")) or ":" in parts[0]:
        return None
    return Path(*parts)
