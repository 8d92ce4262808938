"""Textual-inversion embeddings named in a prompt: ``a portrait, embedding:mystyle`` (as in ComfyUI).

Each name is looked up like a model of kind ``embeddings`` (a path, a name in the model folders or their
``embeddings`` sub-folders, ComfyUI's ``models/embeddings``; ``.safetensors`` added when the name has no
suffix) and loaded once into the text
encoder's tokenizer as the token ``<name>`` through diffusers' ``load_textual_inversion``. Adding tokens
leaves every other prompt's encoding as it was, so the shared text encoder can keep them.
"""

from __future__ import annotations

import re
from pathlib import Path

from nodegraph import NodeUserError

from . import _model_files as files

NAME = re.compile(r"embedding:([A-Za-z0-9_.\-/]+)")
SDXL_KEYS = (("clip_l", "text_encoder", "tokenizer"), ("clip_g", "text_encoder_2", "tokenizer_2"))


def names(*prompts: str) -> list[str]:
    return sorted({m.group(1).rstrip(".") for p in prompts for m in NAME.finditer(p)})


def _path(name: str, ctx) -> Path:
    """The embedding's file: the name as given, with ``.safetensors`` added, or in an ``embeddings``
    sub-folder of a model folder; the first error (it lists where it looked) when none is found."""
    tries = [name] if Path(name).suffix else [name, f"{name}.safetensors"]
    tries += [f"embeddings/{t}" for t in tries]
    first = None
    for ref in tries:
        try:
            return files.resolve(ref, ctx, "embeddings")
        except NodeUserError as e:
            first = first or e
    raise first


def identity(params, ctx):
    """The files of the embeddings a prompt names (a changed file re-encodes the prompt); None without any."""
    found = {}
    for name in names(params.get("prompt", ""), params.get("negative", "")):
        try:
            found[name] = files.identity(str(_path(name, ctx)), ctx, "embeddings")
        except NodeUserError as e:
            found[name] = {"missing": str(e)}
    return found or None


def expand(te, prompt: str, ctx, pipeline_class: str) -> str:
    """``prompt`` with each ``embedding:name`` replaced by its token, loading the embedding on first use."""
    if "embedding:" not in prompt:
        return prompt
    from ._families import partial_pipeline

    for name in names(prompt):
        token = f"<{Path(name).stem}>"
        if token not in te.components["tokenizer"].get_vocab():
            _load(te, _path(name, ctx), token, pipeline_class, partial_pipeline)
        prompt = re.sub(rf"embedding:{re.escape(name)}\b\.?", token, prompt)
    return prompt


def _load(te, path: Path, token: str, pipeline_class: str, partial_pipeline) -> None:
    import safetensors.torch

    if path.suffix != ".safetensors":
        raise NodeUserError(f"{path}: embeddings are read only as .safetensors")
    try:
        state = safetensors.torch.load_file(str(path))
    except (OSError, ValueError, RuntimeError) as e:
        raise NodeUserError(f"{path}: not a readable embedding file ({e})") from None
    pipe = partial_pipeline(pipeline_class, te.components)
    try:
        if "clip_l" in state:  # SDXL: one embedding per text encoder
            for key, encoder, tokenizer in SDXL_KEYS:
                if key in state and encoder in te.components:
                    pipe.load_textual_inversion(state[key], token=token, text_encoder=te.components[encoder],
                                                tokenizer=te.components[tokenizer])
        else:
            pipe.load_textual_inversion(state, token=token, text_encoder=te.components["text_encoder"],
                                        tokenizer=te.components["tokenizer"])
    except (ValueError, RuntimeError) as e:
        raise NodeUserError(f"{path}: cannot be used with this text encoder ({e})") from None
