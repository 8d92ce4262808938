"""User settings shared by the command line, the nodes and the editor (model folders first of all).

One JSON file, so a headless run sees the model folders the editor was told about:
``$NODEGRAPH_SETTINGS``, else ``$XDG_CONFIG_HOME/nodegraph/settings.json`` (``~/.config/...``).
``$NODEGRAPH_MODEL_PATHS`` (folders separated by ``os.pathsep``) adds folders before the file's. The demo
models that ship inside the package (``nodegraph_demo/models``) are searched last, so a user's own model of
the same name wins, but they are listed first in the pickers.

A ComfyUI install (``comfyui`` in the file, or ``$NODEGRAPH_COMFYUI``, which wins) adds its model folders
per kind, with those its ``extra_model_paths.yaml`` lists; ``comfyui_extra_paths`` (or
``$NODEGRAPH_COMFYUI_EXTRA_PATHS``) names more such yaml files. ``nodegraph.comfyui_paths`` reads them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import NodegraphError
from .files import atomic_write

MODEL_PATHS_ENV = "NODEGRAPH_MODEL_PATHS"
COMFYUI_ENV = "NODEGRAPH_COMFYUI"
COMFYUI_EXTRA_PATHS_ENV = "NODEGRAPH_COMFYUI_EXTRA_PATHS"


def settings_path() -> Path:
    if os.environ.get("NODEGRAPH_SETTINGS"):
        return Path(os.environ["NODEGRAPH_SETTINGS"])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "nodegraph" / "settings.json"


def load_settings() -> dict[str, Any]:
    path = settings_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise NodegraphError(f"settings file {path} is unreadable: {e}") from None
    if not isinstance(data, dict):
        raise NodegraphError(f"settings file {path} must hold a JSON object")
    return data


def save_settings(settings: dict[str, Any]) -> Path:
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, (json.dumps(settings, indent=2, sort_keys=True) + "\n").encode())


def bundled_model_folder() -> Path | None:
    """The folder of demo models installed with the package, if the package is there."""
    import importlib.util

    spec = importlib.util.find_spec("nodegraph_demo")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    return folder if folder.is_dir() else None


def model_folders() -> list[Path]:
    """Folders searched for models by name: the environment variable's, the settings file's, then the
    bundled demo models."""
    folders = [p for p in os.environ.get(MODEL_PATHS_ENV, "").split(os.pathsep) if p]
    folders += [p for p in load_settings().get("model_folders", []) if isinstance(p, str)]
    bundled = bundled_model_folder()
    paths = [Path(p).expanduser() for p in dict.fromkeys(folders)]
    return paths + ([bundled] if bundled is not None and bundled not in paths else [])


def comfyui_folder() -> Path | None:
    """The ComfyUI install whose model folders are searched: ``$NODEGRAPH_COMFYUI``, else the ``comfyui``
    setting; None when neither is set."""
    value = os.environ.get(COMFYUI_ENV) or load_settings().get("comfyui") or ""
    if not isinstance(value, str):
        raise NodegraphError(f"settings file {settings_path()}: 'comfyui' must be the path of a ComfyUI folder")
    return Path(value.strip()).expanduser() if value.strip() else None


def comfyui_extra_paths() -> list[Path]:
    """Standalone extra_model_paths.yaml files: ``$NODEGRAPH_COMFYUI_EXTRA_PATHS`` (several separated by
    ``os.pathsep``), else the ``comfyui_extra_paths`` setting (one path, or a list)."""
    env = os.environ.get(COMFYUI_EXTRA_PATHS_ENV, "")
    if env:
        values = env.split(os.pathsep)
    else:
        values = load_settings().get("comfyui_extra_paths") or []
        values = [values] if isinstance(values, str) else values
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise NodegraphError(f"settings file {settings_path()}: 'comfyui_extra_paths' must be the path of an "
                                 "extra_model_paths.yaml, or a list of them")
    return [Path(v.strip()).expanduser() for v in dict.fromkeys(values) if v.strip()]
