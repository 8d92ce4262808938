"""Write tiny diffusers/transformers models as the lone files modern models ship as, in their original key layouts.

Each function is the inverse of what loads such a file (diffusers' converters in
``diffusers/loaders/single_file_utils.py``, read to learn the layouts): Flux in Black Forest Labs' layout
(``double_blocks.*``, fused q/k/v), SD3 in Stability's (``joint_blocks.*``), a UNet in the LDM layout with
or without ``model.diffusion_model.``, CLIP and T5 in transformers' layout, a VAE in the LDM layout.
"""

from __future__ import annotations

import torch

import ldm_layout


def _swap(weight):
    """diffusers keeps (scale, shift) where the original keeps (shift, scale)."""
    scale, shift = weight.chunk(2, dim=0)
    return torch.cat([shift, scale], dim=0)


def flux_keys(state: dict) -> dict:
    out = {}
    renames = {
        "time_text_embed.timestep_embedder.linear_1": "time_in.in_layer",
        "time_text_embed.timestep_embedder.linear_2": "time_in.out_layer",
        "time_text_embed.text_embedder.linear_1": "vector_in.in_layer",
        "time_text_embed.text_embedder.linear_2": "vector_in.out_layer",
        "time_text_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
        "time_text_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
        "context_embedder": "txt_in", "x_embedder": "img_in", "proj_out": "final_layer.linear",
        "norm_out.linear": "final_layer.adaLN_modulation.1",
    }
    double = {"norm1.linear": "img_mod.lin", "norm1_context.linear": "txt_mod.lin", "attn.to_out.0": "img_attn.proj",
              "attn.to_add_out": "txt_attn.proj", "ff.net.0.proj": "img_mlp.0", "ff.net.2": "img_mlp.2",
              "ff_context.net.0.proj": "txt_mlp.0", "ff_context.net.2": "txt_mlp.2",
              "attn.norm_q": "img_attn.norm.query_norm", "attn.norm_k": "img_attn.norm.key_norm",
              "attn.norm_added_q": "txt_attn.norm.query_norm", "attn.norm_added_k": "txt_attn.norm.key_norm"}
    single = {"norm.linear": "modulation.lin", "proj_out": "linear2", "attn.norm_q": "norm.query_norm",
              "attn.norm_k": "norm.key_norm"}
    fused = {"img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
             "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")}
    single_fused = ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")

    def param_name(stem, param):  # BFL's RMSNorm weights are called "scale"
        return "scale" if stem.endswith("_norm") else param

    for key, value in state.items():
        stem, param = key.rsplit(".", 1)
        if stem in renames:
            out[f"{renames[stem]}.{param}"] = _swap(value) if stem == "norm_out.linear" else value
            continue
        block, i, rest = stem.split(".", 2)
        if block == "transformer_blocks" and rest in double:
            out[f"double_blocks.{i}.{double[rest]}.{param_name(double[rest], param)}"] = value
        elif block == "single_transformer_blocks" and rest in single:
            out[f"single_blocks.{i}.{single[rest]}.{param_name(single[rest], param)}"] = value
    for block, i in {tuple(k.split(".")[:2]) for k in state if k.startswith("transformer_blocks.")}:
        for name, parts in fused.items():
            for param in ("weight", "bias"):
                out[f"double_blocks.{i}.{name}.{param}"] = torch.cat([state[f"{block}.{i}.{p}.{param}"] for p in parts])
    for block, i in {tuple(k.split(".")[:2]) for k in state if k.startswith("single_transformer_blocks.")}:
        for param in ("weight", "bias"):
            out[f"single_blocks.{i}.linear1.{param}"] = torch.cat([state[f"{block}.{i}.{p}.{param}"] for p in single_fused])
    return out


def sd3_keys(state: dict, num_layers: int) -> dict:
    out = {}
    renames = {"pos_embed.proj": "x_embedder.proj", "time_text_embed.timestep_embedder.linear_1": "t_embedder.mlp.0",
               "time_text_embed.timestep_embedder.linear_2": "t_embedder.mlp.2", "context_embedder": "context_embedder",
               "time_text_embed.text_embedder.linear_1": "y_embedder.mlp.0",
               "time_text_embed.text_embedder.linear_2": "y_embedder.mlp.2", "proj_out": "final_layer.linear",
               "norm_out.linear": "final_layer.adaLN_modulation.1"}
    block_renames = {"attn.to_out.0": "x_block.attn.proj", "attn.to_add_out": "context_block.attn.proj",
                     "norm1.linear": "x_block.adaLN_modulation.1", "norm1_context.linear": "context_block.adaLN_modulation.1",
                     "ff.net.0.proj": "x_block.mlp.fc1", "ff.net.2": "x_block.mlp.fc2",
                     "ff_context.net.0.proj": "context_block.mlp.fc1", "ff_context.net.2": "context_block.mlp.fc2"}
    fused = {"x_block.attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
             "context_block.attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")}
    for key, value in state.items():
        stem, param = key.rsplit(".", 1)
        if key == "pos_embed.pos_embed":
            out["pos_embed"] = value
        elif stem in renames:
            out[f"{renames[stem]}.{param}"] = _swap(value) if stem == "norm_out.linear" else value
        elif stem.startswith("transformer_blocks."):
            _, i, rest = stem.split(".", 2)
            if rest in block_renames:
                last_context_norm = rest == "norm1_context.linear" and int(i) == num_layers - 1
                out[f"joint_blocks.{i}.{block_renames[rest]}.{param}"] = _swap(value) if last_context_norm else value
    for i in range(num_layers):
        for name, parts in fused.items():
            for param in ("weight", "bias"):
                out[f"joint_blocks.{i}.{name}.{param}"] = torch.cat(
                    [state[f"transformer_blocks.{i}.{p}.{param}"] for p in parts])
    return out


def unet_keys(unet, prefix: str = "model.diffusion_model.") -> dict:
    config = unet.config
    attention = ["CrossAttn" in t for t in config.up_block_types]
    return ldm_layout.unet_keys(unet.state_dict(), config.layers_per_block, attention, prefix=prefix)


def vae_keys(vae, prefix: str = "") -> dict:
    return ldm_layout.vae_keys(vae.state_dict(), len(vae.config.block_out_channels), prefix=prefix)


def clip_keys(model, prefixed: bool = True) -> dict:
    """transformers' CLIP layout; ``prefixed=False``: without 'text_model.', as transformers 5 saves it."""
    return {(k if prefixed else k.removeprefix("text_model.")): v for k, v in model.state_dict().items()}


def t5_keys(model) -> dict:
    """T5's encoder as t5xxl_fp16.safetensors holds it: shared.weight and encoder.*, the tied copy left out."""
    return {k: v for k, v in model.state_dict().items() if k != "encoder.embed_tokens.weight"}


def save(state: dict, path, dtype=None):
    from safetensors.torch import save_file

    save_file({k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
               for k, v in state.items()}, str(path))
    return path
