"""The demo models' configurations and builders: stock diffusers / transformers classes, small sizes.

Why these sizes: everything ships inside the package, so all fp16 weights together must stay under
25 MB, and every example workflow must run on a CPU in seconds. ``FULL`` is what the GPU trains;
``TINY`` shrinks every model (and the picture) so the whole pipeline can be tested on a laptop CPU.

The tokenizers are written here too, from the scene vocabulary, so each caption word is one token and
nothing is downloaded.
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .scenes import VOCABULARY


@dataclass(frozen=True)
class Arch:
    name: str
    image_size: int
    # CLIP text encoder (SD)
    clip_hidden: int
    clip_layers: int
    clip_heads: int
    clip_ff: int
    clip_max_length: int
    # AutoencoderKL: 3 blocks, so the latent is 1/4 of the picture
    vae_channels: tuple[int, ...]
    vae_groups: int
    # UNet2DConditionModel and its ControlNet
    unet_channels: tuple[int, ...]
    unet_heads: tuple[int, ...]
    unet_groups: int
    controlnet_embedding: tuple[int, ...]  # one more entry than the VAE has downsamplings: 1/4 of the picture
    # AutoencoderDC: 4 stages, so the latent is 1/8 of the picture
    dcae_channels: tuple[int, ...]
    dcae_latent: int
    dcae_head_dim: int
    # Gemma-2 text encoder (Sana)
    gemma_hidden: int
    gemma_layers: int
    gemma_heads: int
    gemma_kv_heads: int
    gemma_head_dim: int
    gemma_ff: int
    # SanaTransformer2DModel
    sana_width: int
    sana_heads: int
    sana_layers: int

    @property
    def sd_latent(self) -> int:
        return self.image_size // 2 ** (len(self.vae_channels) - 1)

    @property
    def sana_latent(self) -> int:
        return self.image_size // 2 ** (len(self.dcae_channels) - 1)


FULL = Arch(
    name="full", image_size=64,
    clip_hidden=128, clip_layers=4, clip_heads=4, clip_ff=512, clip_max_length=77,
    vae_channels=(32, 64, 64), vae_groups=16,
    unet_channels=(64, 96, 96), unet_heads=(2, 3, 3), unet_groups=16, controlnet_embedding=(16, 32, 64),
    dcae_channels=(32, 64, 64, 128), dcae_latent=16, dcae_head_dim=16,
    gemma_hidden=128, gemma_layers=3, gemma_heads=4, gemma_kv_heads=2, gemma_head_dim=32, gemma_ff=384,
    sana_width=160, sana_heads=5, sana_layers=5,
)

TINY = Arch(
    name="tiny", image_size=32,
    clip_hidden=32, clip_layers=2, clip_heads=2, clip_ff=64, clip_max_length=77,
    vae_channels=(8, 16, 16), vae_groups=4,
    unet_channels=(16, 32, 32), unet_heads=(2, 2, 2), unet_groups=8, controlnet_embedding=(8, 8, 16),
    dcae_channels=(8, 16, 16, 32), dcae_latent=8, dcae_head_dim=8,
    gemma_hidden=32, gemma_layers=1, gemma_heads=2, gemma_kv_heads=1, gemma_head_dim=16, gemma_ff=64,
    sana_width=32, sana_heads=2, sana_layers=1,
)

ARCHS = {a.name: a for a in (FULL, TINY)}

# v-prediction on a schedule rescaled to zero terminal SNR (Lin et al. 2024, "Common Diffusion Noise Schedules
# and Sample Steps are Flawed"): SD's own schedule leaves a trace of the picture at its last step, and an
# epsilon model trained on it took each object's place from that trace in the starting noise, never from
# the prompt ("on the left" and "on the right" gave the same picture for a seed).
SD_SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
                "prediction_type": "v_prediction", "rescale_betas_zero_snr": True, "steps_offset": 1,
                "timestep_spacing": "trailing"}
SANA_FLOW_SHIFT = 1.0  # 64 latent tokens: the 1024-pixel models' shift of 3 would spend the steps at high noise
SANA_SCHEDULER = {"num_train_timesteps": 1000, "flow_shift": SANA_FLOW_SHIFT, "use_flow_sigmas": True,
                  "prediction_type": "flow_prediction"}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----- tokenizers -----

def sana_instruction() -> list[str]:
    """SanaPipeline's default complex_human_instruction: the prefix every Sana prompt is encoded with."""
    from diffusers import SanaPipeline

    return list(inspect.signature(SanaPipeline.__call__).parameters["complex_human_instruction"].default)


def write_clip_tokenizer(folder: Path, max_length: int, words=VOCABULARY) -> None:
    """A CLIPTokenizer (vocab.json, merges.txt) that spells any text, with each of ``words`` one token."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(bytes_to_unicode().values())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for s in symbols + [s + "</w>" for s in symbols]:
        vocab.setdefault(s, len(vocab))
    merges = []
    # Merge each word from its end: every merge joins a letter to a word ending ("e</w>", "ge</w>", ...), so
    # a merge only ever applies where the word ending it builds is the ending of the word at hand: no word's
    # merges can split another word, whatever their order.
    for word in words:
        if len(word) == 1:
            continue
        tail = word[-1] + "</w>"
        for ch in reversed(word[:-1]):
            merges.append(f"{ch} {tail}")
            tail = ch + tail
            vocab.setdefault(tail, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(dict.fromkeys(merges)) + "\n")
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=max_length,
                        bos_token="<|startoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                        unk_token="<|endoftext|>")
    split = [w for w in words if len(tok.tokenize(w)) != 1]
    if split:
        raise AssertionError(f"caption words that are not one CLIP token: {split}")
    tok.save_pretrained(folder)


def _gemma_pieces(text: str) -> list[str]:
    """The words (with their leading '▁' where a space came before) and single marks of ``text``."""
    return re.findall(r"▁?[A-Za-z]+|[^▁A-Za-z]|▁", text.replace(" ", "▁"))


def write_gemma_tokenizer(folder: Path) -> None:
    """A GemmaTokenizer (BPE with byte fallback, adds <bos>) whose merges build whole words: each caption
    word and each word of Sana's instruction prefix is one token, anything else falls back to bytes."""
    from transformers import GemmaTokenizer

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4, "▁": 5}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    spaced = ["▁" + w for w in VOCABULARY if w.isalpha()]
    instruction = _gemma_pieces("\n".join(sana_instruction()))
    words = list(dict.fromkeys(spaced + [p for p in instruction if p.startswith("▁")] + instruction))
    merges: list[tuple[str, str]] = []
    for word in words:  # '▁' words first: their merges win, so a word after a space is always whole
        for ch in word:
            vocab.setdefault(ch, len(vocab))
        current = word[0]
        for ch in word[1:]:
            merges.append((current, ch))
            current += ch
            vocab.setdefault(current, len(vocab))
    for mark in ",.:;'-\n":
        vocab.setdefault(mark, len(vocab))
    folder.mkdir(parents=True, exist_ok=True)
    GemmaTokenizer(vocab=vocab, merges=list(dict.fromkeys(merges)), add_bos_token=True).save_pretrained(folder)


# ----- models -----

def clip_text_encoder(arch: Arch, vocab_size: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=arch.clip_hidden, intermediate_size=arch.clip_ff,
        num_hidden_layers=arch.clip_layers, num_attention_heads=arch.clip_heads,
        max_position_embeddings=arch.clip_max_length, projection_dim=arch.clip_hidden,
        bos_token_id=0, eos_token_id=1, pad_token_id=1))


def kl_vae(arch: Arch, scaling_factor: float = 1.0):
    from diffusers import AutoencoderKL

    n = len(arch.vae_channels)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=arch.vae_channels, layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        norm_num_groups=arch.vae_groups, sample_size=arch.image_size, scaling_factor=scaling_factor)


def unet(arch: Arch):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=arch.sd_latent, in_channels=4, out_channels=4, block_out_channels=arch.unet_channels,
        layers_per_block=1, attention_head_dim=arch.unet_heads, norm_num_groups=arch.unet_groups,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=arch.clip_hidden)


def controlnet(arch: Arch, unet_model):
    """A canny ControlNet copied from the trained UNet (zero-initialised output convolutions)."""
    from diffusers import ControlNetModel

    return ControlNetModel.from_unet(unet_model, conditioning_embedding_out_channels=arch.controlnet_embedding)


def dc_vae(arch: Arch, scaling_factor: float = 1.0):
    from diffusers import AutoencoderDC

    blocks = ("ResBlock",) * (len(arch.dcae_channels) - 1) + ("EfficientViTBlock",)
    scales = ((),) * (len(arch.dcae_channels) - 1) + ((5,),)
    layers = (1,) * len(arch.dcae_channels)
    return AutoencoderDC(
        in_channels=3, latent_channels=arch.dcae_latent, attention_head_dim=arch.dcae_head_dim,
        encoder_block_types=blocks, decoder_block_types=blocks,
        encoder_block_out_channels=arch.dcae_channels, decoder_block_out_channels=arch.dcae_channels,
        encoder_layers_per_block=layers, decoder_layers_per_block=layers,
        encoder_qkv_multiscales=scales, decoder_qkv_multiscales=scales,
        downsample_block_type="conv", upsample_block_type="interpolate",
        decoder_norm_types="rms_norm", decoder_act_fns="silu", scaling_factor=scaling_factor)


def gemma_text_encoder(arch: Arch, vocab_size: int):
    from transformers import Gemma2Config, Gemma2Model

    return Gemma2Model(Gemma2Config(
        vocab_size=vocab_size, hidden_size=arch.gemma_hidden, intermediate_size=arch.gemma_ff,
        num_hidden_layers=arch.gemma_layers, num_attention_heads=arch.gemma_heads,
        num_key_value_heads=arch.gemma_kv_heads, head_dim=arch.gemma_head_dim,
        query_pre_attn_scalar=arch.gemma_head_dim, attn_logit_softcapping=None, final_logit_softcapping=None,
        max_position_embeddings=2048, pad_token_id=0, eos_token_id=1, bos_token_id=2))


def sana_transformer(arch: Arch):
    from diffusers import SanaTransformer2DModel

    head = arch.sana_width // arch.sana_heads
    return SanaTransformer2DModel(
        in_channels=arch.dcae_latent, out_channels=arch.dcae_latent, num_attention_heads=arch.sana_heads,
        attention_head_dim=head, num_layers=arch.sana_layers, num_cross_attention_heads=arch.sana_heads,
        cross_attention_head_dim=head, cross_attention_dim=arch.sana_width, caption_channels=arch.gemma_hidden,
        sample_size=arch.sana_latent, patch_size=1, interpolation_scale=1, qk_norm="rms_norm_across_heads")


def sd_scheduler():
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(**SD_SCHEDULER)


def sana_scheduler():
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler(**SANA_SCHEDULER)


def parameter_table(arch: Arch) -> dict[str, int]:
    """Parameters of every shipped model at ``arch`` (built with random weights; tokenizers in a temp dir)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        write_clip_tokenizer(Path(tmp) / "clip", arch.clip_max_length)
        write_gemma_tokenizer(Path(tmp) / "gemma")
        clip_vocab = len(json.loads((Path(tmp) / "clip" / "vocab.json").read_text()))
        from transformers import GemmaTokenizer

        gemma_vocab = len(GemmaTokenizer.from_pretrained(Path(tmp) / "gemma"))
    u = unet(arch)
    return {
        "sd/text_encoder": count(clip_text_encoder(arch, clip_vocab)),
        "sd/vae": count(kl_vae(arch)),
        "sd/unet": count(u),
        "controlnet-canny": count(controlnet(arch, u)),
        "sana/text_encoder": count(gemma_text_encoder(arch, gemma_vocab)),
        "sana/vae": count(dc_vae(arch)),
        "sana/transformer": count(sana_transformer(arch)),
    }
