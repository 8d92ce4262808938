"""Write a diffusers SD 1.x pipeline as one .safetensors file in the original (LDM) key layout.

Tests need single-file checkpoints without downloading one: this turns a tiny diffusers model into the
layout such files use (model.diffusion_model.*, first_stage_model.*, cond_stage_model.transformer.*),
the inverse of the conversion diffusers applies when it loads them.
"""

from __future__ import annotations

import re


def _resnet(name: str, vae: bool) -> str:
    if vae:
        return name.replace("conv_shortcut", "nin_shortcut")
    for new, old in (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
                     ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection")):
        name = re.sub(rf"^{new}\.", f"{old}.", name)
    return name


def unet_keys(state: dict, layers: int, attention_blocks: list[bool], prefix: str = "model.diffusion_model.") -> dict:
    out, per = {}, layers + 1
    for key, value in state.items():
        if m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            i, j, rest = int(m[1]), int(m[2]), m[3]
            new = f"input_blocks.{1 + i * per + j}.0.{_resnet(rest, False)}"
        elif m := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
            new = f"input_blocks.{1 + int(m[1]) * per + int(m[2])}.1.{m[3]}"
        elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            new = f"input_blocks.{(int(m[1]) + 1) * per}.0.op.{m[2]}"
        elif m := re.match(r"mid_block\.resnets\.(\d)\.(.+)", key):
            new = f"middle_block.{2 * int(m[1])}.{_resnet(m[2], False)}"
        elif m := re.match(r"mid_block\.attentions\.0\.(.+)", key):
            new = f"middle_block.1.{m[1]}"
        elif m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = f"output_blocks.{int(m[1]) * per + int(m[2])}.0.{_resnet(m[3], False)}"
        elif m := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
            new = f"output_blocks.{int(m[1]) * per + int(m[2])}.1.{m[3]}"
        elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            i = int(m[1])
            new = f"output_blocks.{i * per + layers}.{2 if attention_blocks[i] else 1}.conv.{m[2]}"
        else:
            new = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
                   "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",  # SDXL
                   "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}[key.rsplit(".", 1)[0]]
            new = f"{new}.{key.rsplit('.', 1)[1]}"
        out[f"{prefix}{new}"] = value
    return out


def vae_keys(state: dict, blocks: int, prefix: str = "first_stage_model.") -> dict:
    out = {}
    attention = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    for key, value in state.items():
        new = key
        if m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", key):
            new = f"{m[1]}.mid.attn_1.{attention[m[2]]}.{m[3]}"
            if m[3] == "weight" and value.ndim == 2:  # LDM stores these as 1x1 convolutions
                value = value[:, :, None, None]
        elif m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d)\.(.+)", key):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{_resnet(m[3], True)}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = f"encoder.down.{m[1]}.block.{m[2]}.{_resnet(m[3], True)}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            new = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = f"decoder.up.{blocks - 1 - int(m[1])}.block.{m[2]}.{_resnet(m[3], True)}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            new = f"decoder.up.{blocks - 1 - int(m[1])}.upsample.conv.{m[2]}"
        else:
            new = key.replace("conv_norm_out", "norm_out")
        out[f"{prefix}{new}"] = value
    return out


def clip_keys(state: dict) -> dict:
    """transformers 5 names CLIP weights without 'text_model.'; single files always have it."""
    return {f"cond_stage_model.transformer.text_model.{k.removeprefix('text_model.')}": v for k, v in state.items()}


def write_sd1_single_file(pipe, path) -> None:
    from safetensors.torch import save_file

    unet_config = pipe.unet.config
    attention = ["CrossAttn" in t for t in unet_config.up_block_types]
    state = {}
    state.update(unet_keys(pipe.unet.state_dict(), unet_config.layers_per_block, attention))
    state.update(vae_keys(pipe.vae.state_dict(), len(pipe.vae.config.block_out_channels)))
    state.update(clip_keys(pipe.text_encoder.state_dict()))
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
