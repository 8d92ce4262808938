"""Single-file checkpoints (.safetensors): detect the family from the keys, load with shipped configs.

A single file holds weights only. diffusers converts it given a folder of component configs and tokenizer
files; we ship those for each supported family (nodes/configs/), so ``from_single_file`` never reaches
for the network. The family is found by diffusers' own ``infer_diffusers_model_type``, shown only the
tensors' shapes so a multi-gigabyte file is read once, by the real load.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from nodegraph import NodeUserError

CONFIGS = Path(__file__).resolve().parent / "configs"
SHIPPED = {"v1": "sd15", "xl_base": "sdxl"}  # diffusers' model type -> our config folder


class _Shapes(Mapping):
    """A checkpoint seen through its header: key -> object with the tensor's shape, no data read."""

    def __init__(self, path: Path):
        from safetensors import safe_open

        import torch

        with safe_open(str(path), "pt") as f:
            self._shapes = {k: SimpleNamespace(shape=torch.Size(f.get_slice(k).get_shape())) for k in f.keys()}

    def __getitem__(self, key):
        return self._shapes[key]

    def __iter__(self):
        return iter(self._shapes)

    def __len__(self):
        return len(self._shapes)


def model_type(path: Path) -> str:
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    try:
        return infer_diffusers_model_type(_Shapes(path))
    except Exception as e:  # a header safetensors cannot read, or keys diffusers does not recognise
        raise NodeUserError(f"{path.name}: not a checkpoint diffusers can read ({e})") from None


@contextmanager
def shipped_config(kind: str):
    """The config folder for a family, assembled in a temporary folder with the shipped CLIP tokenizer."""
    with tempfile.TemporaryDirectory(prefix="nodegraph-config-") as tmp:
        folder = Path(tmp) / kind
        shutil.copytree(CONFIGS / kind, folder)
        for tokenizer in folder.glob("tokenizer*"):
            for name in ("vocab.json", "merges.txt"):
                shutil.copy(CONFIGS / "clip_tokenizer" / name, tokenizer / name)
        yield folder


def load(path: Path, config: Path | None, torch_dtype):
    """A diffusers pipeline from a single .safetensors file (``config``: a folder to use instead of ours)."""
    import json

    import diffusers

    if path.suffix != ".safetensors":
        raise NodeUserError(f"{path.name}: single-file checkpoints are read only as .safetensors")

    from diffusers.loaders.single_file_utils import SingleFileComponentError

    def from_folder(folder: Path):
        class_name = json.loads((folder / "model_index.json").read_text())["_class_name"]
        try:
            return getattr(diffusers, class_name).from_single_file(
                str(path), config=str(folder), local_files_only=True, torch_dtype=torch_dtype)
        except (OSError, ValueError, KeyError, RuntimeError, SingleFileComponentError) as e:
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise NodeUserError(f"cannot load {path.name} as a {class_name}: {first_line}") from None

    if config is not None:
        return from_folder(config)
    kind = model_type(path)
    if kind not in SHIPPED:
        raise NodeUserError(f"{path.name} is a '{kind}' checkpoint; single files load for "
                            f"{', '.join(sorted(SHIPPED))} (set 'config' to a diffusers folder of this model "
                            f"to load others)")
    with shipped_config(SHIPPED[kind]) as folder:
        return from_folder(folder)
