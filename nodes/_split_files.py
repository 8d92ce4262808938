"""Lone component files: a UNet or transformer, a text encoder or a VAE saved on its own as one .safetensors.

Modern models ship split (ComfyUI's ``models/unet``, ``models/clip``, ``models/vae``): ``flux1-dev.safetensors``
in Black Forest Labs' layout, ``clip_l.safetensors``, ``t5xxl_fp8_e4m3fn.safetensors``, ``ae.safetensors``.
Each file is recognised from its keys (header only) with the tables below, and loaded with a shipped
real-size config (nodes/configs/) or the diffusers folder the user names. Diffusion models and VAEs go
through diffusers' ``from_single_file``; text encoders are transformers models built on the meta device
and given the file's tensors. Weights stored as float8 stay float8 and are upcast layer by layer at
compute time (diffusers' layerwise casting), so an fp8 file never costs its full-precision size.
"""

from __future__ import annotations

import json
import re
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from nodegraph import NodeUserError

from . import _single_file
from ._single_file import CONFIGS  # noqa: F401 (the shipped configs, for the tests and readers)

REFUSED_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")  # pickles: never opened
LDM_PREFIX = "model.diffusion_model."
FP8 = {"F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}  # safetensors dtype -> torch dtype name


def check_suffix(path: Path) -> None:
    if path.suffix.lower() in REFUSED_SUFFIXES:
        raise NodeUserError(f"{path.name}: {path.suffix} files are pickles, which this program never opens; convert "
                            f"it to .safetensors (e.g. with safetensors' convert script) and load that")
    if path.suffix.lower() != ".safetensors":
        raise NodeUserError(f"{path.name}: lone model files are read only as .safetensors")


def header(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """key -> (shape, safetensors dtype), read from the file's header without loading a tensor."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except Exception as e:  # not a safetensors file at all
        raise NodeUserError(f"{path.name}: not a readable .safetensors file ({e})") from None


def fp8_dtype(head: dict):
    """The float8 dtype most of the file is stored in, or None."""
    import torch

    names = [FP8[dtype] for _, dtype in head.values() if dtype in FP8]
    return getattr(torch, max(set(names), key=names.count)) if names else None


def read(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


# ----------------------------------------------------------------------------------------------- diffusion models
@dataclass(frozen=True)
class DenoiserLayout:
    family: str
    marker: str  # a key only this layout has (diffusers' own CHECKPOINT_KEY_NAMES where it has one), unprefixed
    class_name: str
    shipped: str | None  # our config folder in nodes/configs, None: the user must name one
    subfolder: str


DENOISER_LAYOUTS = (  # checked in order: an SDXL UNet also has SD 1.x's keys
    DenoiserLayout("flux", "double_blocks.0.img_attn.norm.key_norm.scale", "FluxTransformer2DModel", "flux",
                   "transformer"),
    DenoiserLayout("sd3", "joint_blocks.0.context_block.adaLN_modulation.1.bias", "SD3Transformer2DModel", "sd3",
                   "transformer"),
    DenoiserLayout("sana", "blocks.0.cross_attn.q_linear.weight", "SanaTransformer2DModel", None, "transformer"),
    DenoiserLayout("sdxl", "label_emb.0.0.weight", "UNet2DConditionModel", "sdxl", "unet"),
    DenoiserLayout("sd", "input_blocks.0.0.weight", "UNet2DConditionModel", "sd15", "unet"),
)


def denoiser_layout(path: Path, head: dict) -> DenoiserLayout:
    for layout in DENOISER_LAYOUTS:
        if layout.marker in head or LDM_PREFIX + layout.marker in head:
            return layout
    raise NodeUserError(
        f"{path.name}: not a diffusion model this program knows; expected the keys of an SD 1.x/SDXL UNet "
        f"(input_blocks.*), an SD3 transformer (joint_blocks.*), a Flux transformer (double_blocks.*) or a Sana "
        f"transformer (blocks.*.cross_attn.*), with or without the '{LDM_PREFIX}' prefix")


# Flux in Black Forest Labs' layout -> diffusers. diffusers' own converter assumes Flux's real width (3072) when it
# splits the single blocks' fused projection; this table reads the width from the config, so any Flux loads.
# (BFL name, diffusers names: several when BFL fuses them along dim 0)
FLUX_KEYS = (
    (r"time_in\.in_layer", ("time_text_embed.timestep_embedder.linear_1",)),
    (r"time_in\.out_layer", ("time_text_embed.timestep_embedder.linear_2",)),
    (r"vector_in\.in_layer", ("time_text_embed.text_embedder.linear_1",)),
    (r"vector_in\.out_layer", ("time_text_embed.text_embedder.linear_2",)),
    (r"guidance_in\.in_layer", ("time_text_embed.guidance_embedder.linear_1",)),
    (r"guidance_in\.out_layer", ("time_text_embed.guidance_embedder.linear_2",)),
    (r"txt_in", ("context_embedder",)),
    (r"img_in", ("x_embedder",)),
    (r"final_layer\.linear", ("proj_out",)),
    (r"final_layer\.adaLN_modulation\.1", ("norm_out.linear",)),  # (shift, scale) -> (scale, shift), below
    (r"double_blocks\.(\d+)\.img_mod\.lin", ("transformer_blocks.{0}.norm1.linear",)),
    (r"double_blocks\.(\d+)\.txt_mod\.lin", ("transformer_blocks.{0}.norm1_context.linear",)),
    (r"double_blocks\.(\d+)\.img_attn\.qkv",
     ("transformer_blocks.{0}.attn.to_q", "transformer_blocks.{0}.attn.to_k", "transformer_blocks.{0}.attn.to_v")),
    (r"double_blocks\.(\d+)\.txt_attn\.qkv", ("transformer_blocks.{0}.attn.add_q_proj",
                                              "transformer_blocks.{0}.attn.add_k_proj",
                                              "transformer_blocks.{0}.attn.add_v_proj")),
    (r"double_blocks\.(\d+)\.img_attn\.norm\.query_norm", ("transformer_blocks.{0}.attn.norm_q",)),
    (r"double_blocks\.(\d+)\.img_attn\.norm\.key_norm", ("transformer_blocks.{0}.attn.norm_k",)),
    (r"double_blocks\.(\d+)\.txt_attn\.norm\.query_norm", ("transformer_blocks.{0}.attn.norm_added_q",)),
    (r"double_blocks\.(\d+)\.txt_attn\.norm\.key_norm", ("transformer_blocks.{0}.attn.norm_added_k",)),
    (r"double_blocks\.(\d+)\.img_attn\.proj", ("transformer_blocks.{0}.attn.to_out.0",)),
    (r"double_blocks\.(\d+)\.txt_attn\.proj", ("transformer_blocks.{0}.attn.to_add_out",)),
    (r"double_blocks\.(\d+)\.img_mlp\.0", ("transformer_blocks.{0}.ff.net.0.proj",)),
    (r"double_blocks\.(\d+)\.img_mlp\.2", ("transformer_blocks.{0}.ff.net.2",)),
    (r"double_blocks\.(\d+)\.txt_mlp\.0", ("transformer_blocks.{0}.ff_context.net.0.proj",)),
    (r"double_blocks\.(\d+)\.txt_mlp\.2", ("transformer_blocks.{0}.ff_context.net.2",)),
    (r"single_blocks\.(\d+)\.modulation\.lin", ("single_transformer_blocks.{0}.norm.linear",)),
    (r"single_blocks\.(\d+)\.linear1", ("single_transformer_blocks.{0}.attn.to_q", "single_transformer_blocks.{0}.attn.to_k",
                                        "single_transformer_blocks.{0}.attn.to_v",
                                        "single_transformer_blocks.{0}.proj_mlp")),
    (r"single_blocks\.(\d+)\.norm\.query_norm", ("single_transformer_blocks.{0}.attn.norm_q",)),
    (r"single_blocks\.(\d+)\.norm\.key_norm", ("single_transformer_blocks.{0}.attn.norm_k",)),
    (r"single_blocks\.(\d+)\.linear2", ("single_transformer_blocks.{0}.proj_out",)),
)
_FLUX_SWAPPED = "norm_out.linear"
_FLUX_RULES = [(re.compile(rf"^{pattern}\.(weight|bias|scale)$"), targets) for pattern, targets in FLUX_KEYS]


def flux_to_diffusers(state: dict, width: int) -> dict:
    """A BFL-layout Flux state dict in diffusers' names; ``width`` = heads x head size (3072 for FLUX.1).
    Fused tensors split along dim 0: q, k, v are ``width`` rows each, the last part takes the rest."""
    import torch

    out = {}
    for key, value in state.items():
        bare = key.removeprefix(LDM_PREFIX)
        for rule, targets in _FLUX_RULES:
            if m := rule.match(bare):
                break
        else:
            raise NodeUserError(f"unexpected key {key!r} for a Flux transformer in Black Forest Labs' layout")
        param = "weight" if m[m.lastindex] == "scale" else m[m.lastindex]
        names = [t.format(*m.groups()[:-1]) for t in targets]
        sizes = [width] * (len(names) - 1) + [value.shape[0] - width * (len(names) - 1)]
        if len(names) > 1 and min(sizes) <= 0:
            raise NodeUserError(f"{key} has {value.shape[0]} rows, too few for a Flux of width {width} (the config's "
                                f"heads x head size): the config does not fit this file")
        parts = [value] if len(names) == 1 else torch.split(value, sizes)
        for name, part in zip(names, parts):
            if name == _FLUX_SWAPPED:
                shift, scale = part.chunk(2, dim=0)
                part = torch.cat([scale, shift], dim=0)
            out[f"{name}.{param}"] = part.contiguous()
    return out


def _config_folder(config: Path | None, shipped: str | None, subfolder: str, what: str, stack: ExitStack):
    """(folder, subfolder) holding the component's config.json: the user's folder, or ours."""
    if config is not None:
        if (config / "model_index.json").is_file():
            if not (config / subfolder / "config.json").is_file():
                raise NodeUserError(f"config: {config} has no {subfolder}/config.json")
            return config, subfolder
        if (config / "config.json").is_file():
            return config, None
        raise NodeUserError(f"config: {config} is neither a diffusers pipeline folder nor a {what} folder "
                            f"(it has no model_index.json or config.json)")
    return stack.enter_context(_single_file.shipped_config(shipped)), subfolder


def has_guidance(head: dict) -> bool:
    """Whether a Flux file has the guidance embedding of a guidance-distilled model (dev has it, schnell not)."""
    return any(key.split("guidance_in.", 1)[0] in ("", LDM_PREFIX) for key in head if "guidance_in." in key)


def _edit_config(folder: Path, subfolder: str | None, **changes) -> None:
    """Change our shipped config (a temporary copy) to fit the file."""
    import json

    path = folder / (subfolder or "") / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}, indent=2))


def load_denoiser(path: Path, config: Path | None, torch_dtype):
    """(family, module) from a lone UNet or transformer file."""
    import diffusers

    check_suffix(path)
    head = header(path)
    layout = denoiser_layout(path, head)
    if layout.shipped is None and config is None:
        raise NodeUserError(f"{path.name} is a {layout.class_name}; no config for it ships with this program: set "
                            f"'config' to a diffusers folder of this model (its transformer/config.json is enough)")
    cls = getattr(diffusers, layout.class_name)
    state = read(path)
    if layout.class_name == "UNet2DConditionModel" and not any(k.startswith(LDM_PREFIX) for k in state):
        state = {LDM_PREFIX + k: v for k, v in state.items()}  # ComfyUI saves a lone UNet without the prefix
    with ExitStack() as stack:
        folder, subfolder = _config_folder(config, layout.shipped, layout.subfolder, "model", stack)
        if layout.family == "flux" and config is None and not has_guidance(head):
            _edit_config(folder, subfolder, guidance_embeds=False)  # FLUX.1-schnell: ours is dev's, with guidance
        if layout.family == "flux":
            cfg = cls.load_config(str(folder), subfolder=subfolder, local_files_only=True)
            try:
                state = flux_to_diffusers(state, cfg["num_attention_heads"] * cfg["attention_head_dim"])
            except NodeUserError as e:
                raise NodeUserError(f"cannot load {path.name} as a {cls.__name__} with the config in {folder}: "
                                    f"{e}") from None
        module = load_diffusers(cls, path, state, folder, subfolder, torch_dtype, fp8_dtype(head))
    return layout.family, module


def load_diffusers(cls, path: Path, state: dict, folder: Path, subfolder: str | None, torch_dtype, storage=None):
    """A diffusers model from a state dict in any layout its ``from_single_file`` converts; float8 weights
    (``storage``) are kept so and upcast per layer, with diffusers' converter and layerwise casting."""
    from diffusers.loaders.single_file_utils import SingleFileComponentError

    try:
        if storage is None:
            module = cls.from_single_file(state, config=str(folder), subfolder=subfolder, local_files_only=True,
                                          torch_dtype=torch_dtype)
        else:
            module = _diffusers_fp8(cls, state, folder, subfolder, storage, torch_dtype)
    except NodeUserError:
        raise
    except (OSError, ValueError, KeyError, IndexError, RuntimeError, SingleFileComponentError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NodeUserError(f"cannot load {path.name} as a {cls.__name__} with the config in {folder}: "
                            f"{first_line}") from None
    _check_complete(module, path, cls.__name__, folder)
    return module.eval()


def _diffusers_fp8(cls, state, folder, subfolder, storage, compute_dtype):
    """``from_single_file`` casts every tensor to one dtype; this keeps each as stored (float8 stays float8)."""
    from accelerate import init_empty_weights
    from diffusers.loaders.single_file_model import (SINGLE_FILE_LOADABLE_CLASSES, _get_single_file_loadable_mapping_class,
                                                     _should_convert_state_dict_to_diffusers)

    config = cls.load_config(str(folder), subfolder=subfolder, local_files_only=True)
    with init_empty_weights():
        module = cls.from_config(config)
    if _should_convert_state_dict_to_diffusers(module.state_dict(), state):
        convert = SINGLE_FILE_LOADABLE_CLASSES[_get_single_file_loadable_mapping_class(cls)]["checkpoint_mapping_fn"]
        state = convert(checkpoint=state, config=config)
    _assign(module, state)
    _cast_as_stored(module, compute_dtype)
    _upcast_the_rest(module, compute_dtype)
    return module


CASTABLE = ("Linear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d")


def _cast_as_stored(module, compute_dtype) -> None:
    """Each layer whose weight the file stores in float8 keeps it so and is upcast while it runs (diffusers'
    layerwise-casting hook); a layer stored in higher precision computes as stored. Upcasting a float8 layer for
    good gains nothing (its values are float8's either way) and, for Flux, holds 3.2 GB more on the GPU
    (docs/benchmarks.md); diffusers' own enable_layerwise_casting would also push higher-precision layers of a
    mixed file down to float8."""
    import torch
    from diffusers.hooks import apply_layerwise_casting_hook

    float8 = {torch.float8_e4m3fn, torch.float8_e5m2}
    for sub in module.modules():
        weight = getattr(sub, "weight", None)
        if type(sub).__name__ in CASTABLE and isinstance(weight, torch.Tensor) and weight.dtype in float8:
            apply_layerwise_casting_hook(sub, storage_dtype=weight.dtype, compute_dtype=compute_dtype,
                                         non_blocking=False)


def _assign(module, state: dict) -> None:
    """Put the file's tensors into a meta-device model as they are (no copy, no dtype change)."""
    own = module.state_dict()
    given = {k: v for k, v in state.items() if k in own}
    for k, v in given.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise NodeUserError(f"{k} has shape {tuple(v.shape)} in the file but {tuple(own[k].shape)} in the config")
    module.load_state_dict(given, strict=False, assign=True)


def _check_complete(module, path: Path, what: str, folder) -> None:
    missing = [name for name, p in module.named_parameters() if p.device.type == "meta"]
    if missing:
        raise NodeUserError(f"{path.name} lacks {len(missing)} of the weights a {what} with the config in {folder} "
                            f"has (first: {missing[0]}): not this model, or its config does not fit it")


def _upcast_the_rest(module, compute_dtype) -> None:
    """Layers that layerwise casting leaves alone (norms, embeddings it skips) compute in ``compute_dtype``; a float8
    norm weight would not, so those (small) tensors are cast up once."""
    import torch

    keep_fp32 = set(getattr(module, "_keep_in_fp32_modules", None) or ())
    for name, sub in module.named_modules():
        hook = getattr(sub, "_diffusers_hook", None)
        if hook is not None and hook.get_hook("layerwise_casting") is not None:
            continue
        dtype = torch.float32 if compute_dtype == torch.float16 and keep_fp32 & set(name.split(".")) else compute_dtype
        for tensors in (sub._parameters, sub._buffers):
            for key, t in tensors.items():
                if t is not None and t.is_floating_point() and t.dtype != dtype:
                    t.data = t.data.to(dtype)


def keep_fp8(module, storage, compute_dtype, skip=()) -> None:
    """Layerwise casting for any torch module (a transformers text encoder): Linear weights stay in ``storage``,
    each upcast for its own forward; the modules named in ``skip`` and the rest compute as usual.

    Embeddings are left out: transformers reports a model's dtype as its first parameter's (the token
    embedding), and diffusers' pipelines cast the prompt embeddings they return to that dtype."""
    import torch
    from diffusers.hooks import apply_layerwise_casting

    apply_layerwise_casting(module, storage_dtype=storage, compute_dtype=compute_dtype,
                            skip_modules_pattern=tuple(skip) or None, skip_modules_classes=(torch.nn.Embedding,))
    _upcast_the_rest(module, compute_dtype)
    if module.dtype != compute_dtype:
        raise RuntimeError(f"{type(module).__name__} reports {module.dtype} after layerwise casting")


# ----------------------------------------------------------------------------------------------- text encoders
TEXT_KIND_TITLES = {"clip_l": "CLIP-L", "clip_g": "CLIP-G", "t5": "T5-XXL", "clip": "CLIP"}
CLIP_WIDTHS = {768: "clip_l", 1280: "clip_g"}  # the token embedding's width -> which CLIP
CLIP_TOKEN_EMBEDDING = "embeddings.token_embedding.weight"  # with or without transformers' 'text_model.' prefix
T5_MARKER = "encoder.block.0.layer.0.SelfAttention.q.weight"
TEXT_FAMILIES = {  # family -> our config folder and the files it takes: (kind, encoder component, tokenizer component)
    "sd": ("sd15", (("clip_l", "text_encoder", "tokenizer"),)),
    "sdxl": ("sdxl", (("clip_l", "text_encoder", "tokenizer"), ("clip_g", "text_encoder_2", "tokenizer_2"))),
    "sd3": ("sd3", (("clip_l", "text_encoder", "tokenizer"), ("clip_g", "text_encoder_2", "tokenizer_2"),
                    ("t5", "text_encoder_3", "tokenizer_3"))),
    "flux": ("flux", (("clip_l", "text_encoder", "tokenizer"), ("t5", "text_encoder_2", "tokenizer_2"))),
}
T5_TOKENIZERS_IN_HF_CACHE = (  # (repo, folder in it) whose T5 tokenizer fits T5-XXL, first found wins
    ("black-forest-labs/FLUX.1-dev", "tokenizer_2"),
    ("black-forest-labs/FLUX.1-schnell", "tokenizer_2"),
    ("stabilityai/stable-diffusion-3-medium-diffusers", "tokenizer_3"),
    ("stabilityai/stable-diffusion-3.5-large", "tokenizer_3"),
    ("stabilityai/stable-diffusion-3.5-medium", "tokenizer_3"),
    ("google/t5-v1_1-xxl", ""),
)


def text_kind(path: Path, head: dict) -> str:
    """'clip_l', 'clip_g', 't5', or 'clip' (a CLIP of another width: its place in the list decides)."""
    if T5_MARKER in head:
        return "t5"
    for key, (shape, _) in head.items():
        if key.removeprefix("text_model.") == CLIP_TOKEN_EMBEDDING:
            return CLIP_WIDTHS.get(shape[1], "clip")
    raise NodeUserError(f"{path.name}: not a text encoder this program knows; expected CLIP-L or CLIP-G in transformers' "
                        f"layout (text_model.embeddings.*, text_model.encoder.layers.*) or T5 (shared.weight, "
                        f"encoder.block.*)")


def text_family(files: list[tuple[Path, str]], family: str) -> tuple[str, list[tuple[Path, str]]]:
    """The family the files make up (``family`` "auto": from which files they are) and each file's kind."""
    kinds: list[str] = []
    for _, kind in files:
        if kind == "clip":  # a CLIP of unknown width: the first is CLIP-L, a second CLIP-G
            kind = "clip_g" if "clip_l" in kinds else "clip_l"
        kinds.append(kind)
    named = " + ".join(f"{TEXT_KIND_TITLES[k]} ({p.name})" for (p, _), k in zip(files, kinds))
    by_kinds = {frozenset(k for k, _, _ in parts): fam for fam, (_, parts) in TEXT_FAMILIES.items()}
    if family == "auto":
        found = by_kinds.get(frozenset(kinds)) if len(set(kinds)) == len(kinds) else None
        if found is None:
            known = "; ".join(f"{fam}: {' + '.join(TEXT_KIND_TITLES[k] for k, _, _ in parts)}"
                              for fam, (_, parts) in TEXT_FAMILIES.items())
            raise NodeUserError(f"the files are {named}, which is no family's set of text encoders ({known})")
        family = found
    wanted = [k for k, _, _ in TEXT_FAMILIES[family][1]]
    if sorted(kinds) != sorted(wanted):
        raise NodeUserError(f"family '{family}' takes {' + '.join(TEXT_KIND_TITLES[k] for k in wanted)}; "
                            f"the files are {named}")
    return family, [(p, k) for (p, _), k in zip(files, kinds)]


def _clip_keys(state: dict, own: set) -> dict:
    """transformers' CLIP names, with or without the 'text_model.' prefix (transformers 5 dropped it in saved files)."""
    out = {}
    for key, value in state.items():
        bare = key.removeprefix("text_model.")
        out[bare if bare in own else f"text_model.{bare}"] = value
    return out


def load_text_encoder(path: Path, kind: str, class_name: str, config_dir: Path, torch_dtype, storage):
    import torch
    import transformers
    from accelerate import init_empty_weights

    cls = getattr(transformers, class_name)
    config = cls.config_class.from_pretrained(str(config_dir))
    with init_empty_weights():
        model = cls(config)
    state = read(path)
    if kind != "t5":
        state = _clip_keys(state, set(model.state_dict()))
    _assign(model, state)
    for target, source in (getattr(model, "_tied_weights_keys", None) or {}).items():  # T5: embed_tokens is shared
        if isinstance(target, str) and model.get_parameter(target).device.type == "meta":
            owner, _, name = target.rpartition(".")
            setattr(model.get_submodule(owner), name, model.get_parameter(source))
    _check_complete(model, path, class_name, config_dir)
    if storage is not None:
        # T5 casts its input to wo's dtype before wo runs (modeling_t5.T5DenseGatedActDense): wo cannot be float8
        keep_fp8(model, storage, torch_dtype, skip=[rf"\.{m}$" for m in (model._keep_in_fp32_modules or ())])
    else:
        model.to(torch_dtype)
        if torch_dtype == torch.float16:  # as transformers' from_pretrained keeps T5's wo
            keep = set(model._keep_in_fp32_modules or ())
            for name, sub in model.named_modules():
                if keep & set(name.split(".")):
                    sub.to(torch.float32)
    return model.eval()


def _is_t5_tokenizer(folder: Path) -> bool:
    if (folder / "spiece.model").is_file():
        return True
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return False
    return (folder / "tokenizer.json").is_file() and str(config.get("tokenizer_class", "")).startswith("T5")


def t5_tokenizer_folder(path: Path, config: Path | None, component: str) -> Path:
    """Where T5's tokenizer comes from (it cannot be built offline): the config folder's, a folder beside the file,
    or a FLUX.1 / SD3 / T5 repo in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    beside = [path.parent / f"{path.stem}.tokenizer", path.parent / "tokenizer"]
    local = ([config / component] if config is not None else []) + beside
    for folder in local:
        if _is_t5_tokenizer(folder):
            return folder
    for repo, sub in T5_TOKENIZERS_IN_HF_CACHE:
        found = try_to_load_from_cache(repo, f"{sub}/tokenizer_config.json" if sub else "tokenizer_config.json")
        if isinstance(found, str) and _is_t5_tokenizer(Path(found).parent):
            return Path(found).parent
    cached = ", ".join(f"{repo} ({sub or 'its root'})" for repo, sub in T5_TOKENIZERS_IN_HF_CACHE)
    raise NodeUserError(f"no tokenizer for the T5 text encoder {path.name}: put T5's tokenizer files (spiece.model or "
                        f"tokenizer.json, with tokenizer_config.json) in {beside[0]} or {beside[1]}, or have one of "
                        f"these in the Hugging Face cache: {cached}")


def load_text_encoders(paths: list[Path], family: str, config: Path | None, torch_dtype):
    """(family, components dict as a diffusers pipeline of that family has them, pipeline options)."""
    import transformers

    for p in paths:
        check_suffix(p)
    heads = [header(p) for p in paths]
    family, kinds = text_family([(p, text_kind(p, h)) for p, h in zip(paths, heads)], family)
    shipped, parts = TEXT_FAMILIES[family]
    components = {}
    with ExitStack() as stack:
        folder = config if config is not None else stack.enter_context(_single_file.shipped_config(shipped))
        index = _pipeline_index(folder, config is not None)
        for kind, encoder, tokenizer in parts:
            path, head = next((p, h) for (p, k), h in zip(kinds, heads) if k == kind)
            class_name = index.get(encoder, [None, None])[1]
            if not class_name or not (folder / encoder / "config.json").is_file():
                raise NodeUserError(f"config: {folder} has no {encoder} (a {family} pipeline folder has one)")
            components[encoder] = load_text_encoder(path, kind, class_name, folder / encoder, torch_dtype,
                                                    fp8_dtype(head))
            if kind == "t5":
                source = t5_tokenizer_folder(path, config, tokenizer)
                components[tokenizer] = transformers.AutoTokenizer.from_pretrained(str(source), local_files_only=True)
            else:
                components[tokenizer] = transformers.CLIPTokenizer.from_pretrained(str(folder / tokenizer),
                                                                                   local_files_only=True)
    options = {}
    if "force_zeros_for_empty_prompt" in index:
        options["force_zeros_for_empty_prompt"] = bool(index["force_zeros_for_empty_prompt"])
    return family, components, options


def _pipeline_index(folder: Path, theirs: bool) -> dict:
    try:
        return json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError):
        raise NodeUserError(f"config: {folder} is not a diffusers pipeline folder (no readable model_index.json)"
                            if theirs else f"{folder}: shipped config missing") from None


# ----------------------------------------------------------------------------------------------- VAEs
VAE_MARKERS = ("encoder.down.0.block.0.conv1.weight", "encoder.down_blocks.0.resnets.0.conv1.weight")  # LDM, diffusers
VAE_PREFIXES = ("", "first_stage_model.", "vae.")
VAE_BY_CHANNELS = {4: "sd", 16: "flux"}  # latent channels -> family, when the file's name says nothing more
VAE_NAME_HINTS = ((4, "xl", "sdxl"), (16, "sd3", "sd3"))  # (channels, text in the file name, family)
VAE_CONFIGS = {"sd": "sd15", "sdxl": "sdxl", "sd3": "sd3", "flux": "flux"}  # family -> our config folder


def vae_family(path: Path, head: dict, family: str) -> str:
    """Which family's latent scaling a lone VAE gets: SD and SDXL VAEs (and SD3's and Flux's) have the same keys,
    so the file name decides between them (sdxl_vae.safetensors), or ``family`` when set."""
    channels = None
    for prefix in VAE_PREFIXES:
        if any(prefix + marker in head for marker in VAE_MARKERS):
            conv_out = head.get(prefix + "encoder.conv_out.weight")
            channels = conv_out[0][0] // 2 if conv_out else None
            break
    if channels is None:
        raise NodeUserError(f"{path.name}: not a VAE this program knows; expected an AutoencoderKL in the original "
                            f"layout (encoder.down.*, decoder.up.*, optionally under 'first_stage_model.') or "
                            f"diffusers' (encoder.down_blocks.*)")
    if family != "auto":
        return family
    name = path.name.lower()
    for hint_channels, text, hinted in VAE_NAME_HINTS:
        if channels == hint_channels and text in name:
            return hinted
    if channels not in VAE_BY_CHANNELS:
        raise NodeUserError(f"{path.name}: a VAE with {channels} latent channels; set 'config' to its diffusers folder")
    return VAE_BY_CHANNELS[channels]


def load_vae(path: Path, config: Path | None, family: str, torch_dtype):
    from diffusers import AutoencoderKL

    check_suffix(path)
    head = header(path)
    family = vae_family(path, head, family)
    with ExitStack() as stack:
        folder, subfolder = _config_folder(config, VAE_CONFIGS[family], "vae", "VAE", stack)
        return load_diffusers(AutoencoderKL, path, read(path), folder, subfolder, torch_dtype, fp8_dtype(head))
