"""Tiny random-weight diffusion models, built from configs and saved in the real on-disk layouts.

Nothing is downloaded: the CLIP tokenizer is written from a small byte-level vocabulary, and every
model is saved with safetensors, then loaded back by the code under test.
"""

from __future__ import annotations

from pathlib import Path

import torch

CLIP_WORDS = ["a", "red", "blue", "green", "circle", "square", "on", "the", "left", "right", "background", "cat", "photo"]


def write_clip_tokenizer(folder: Path, max_length: int = 77) -> None:
    """A CLIPTokenizer folder (vocab.json, merges.txt) that spells any text, with a few whole words: the demo
    models' tokenizer builder with the tests' words."""
    from nodegraph_demo.architectures import write_clip_tokenizer as write

    write(folder, max_length, CLIP_WORDS)


def clip_text_model(seed: int, vocab_size: int = 1024, hidden: int = 32, projection: int | None = None):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    config = CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=hidden, intermediate_size=37,
                            num_attention_heads=4, num_hidden_layers=2, vocab_size=vocab_size,
                            max_position_embeddings=77, projection_dim=projection or hidden)
    model = CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)
    return model.eval()


def sd_unet(seed: int, in_channels: int = 4, cross_attention_dim: int = 32, **extra):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=in_channels, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim, norm_num_groups=4, attention_head_dim=2, **extra,
    ).eval()


def kl_vae(seed: int, latent_channels: int = 4, **config):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=latent_channels,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=4, sample_size=16, **config).eval()
    with torch.no_grad():  # a posterior with (almost) no variance: diffusers' sampled latents equal the mean we use
        vae.quant_conv.weight[latent_channels:] = 0
        vae.quant_conv.bias[latent_channels:] = -30.0
    return vae


def sd_pipeline(folder: Path, seed: int = 0, inpaint: bool = False, prediction_type: str = "epsilon") -> Path:
    """A Stable Diffusion 1.x pipeline folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/).

    The VAE halves the size once (a latent is 1/2 of the picture), so a 32x32 picture samples on 16x16 latents.
    """
    from diffusers import DDIMScheduler, StableDiffusionInpaintPipeline, StableDiffusionPipeline
    from transformers import CLIPTokenizer

    write_clip_tokenizer(folder / "_tok")
    cls = StableDiffusionInpaintPipeline if inpaint else StableDiffusionPipeline
    pipe = cls(
        vae=kl_vae(seed + 1),
        text_encoder=clip_text_model(seed + 2),
        tokenizer=CLIPTokenizer.from_pretrained(folder / "_tok"),
        unet=sd_unet(seed + 3, in_channels=9 if inpaint else 4),
        scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                                set_alpha_to_one=False, steps_offset=1, prediction_type=prediction_type),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    _remove(folder / "_tok")
    return folder


def sdxl_pipeline(folder: Path, seed: int = 0) -> Path:
    """An SDXL pipeline folder: two CLIP text encoders (the second with a projection) and a text-time UNet."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTokenizer

    write_clip_tokenizer(folder / "_tok")
    tokenizer = CLIPTokenizer.from_pretrained(folder / "_tok")
    torch.manual_seed(seed + 3)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=6 * 8 + 32,
        cross_attention_dim=64, norm_num_groups=4,
    ).eval()
    pipe = StableDiffusionXLPipeline(
        vae=kl_vae(seed + 1), text_encoder=clip_text_model(seed + 2), text_encoder_2=clip_text_model(seed + 4, projection=32),
        tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet,
        scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                                         timestep_spacing="leading"),
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    _remove(folder / "_tok")
    return folder


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def write_t5_tokenizer(folder: Path) -> None:
    """A T5 tokenizer whose Unigram vocabulary is the caption words (no sentencepiece file needed)."""
    from transformers import T5TokenizerFast

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [("\u2581" + word, -1.0) for word in CLIP_WORDS]
    T5TokenizerFast(vocab=vocab, extra_ids=0).save_pretrained(folder)


def t5_encoder(seed: int, d_model: int = 32, vocab_size: int = 64):
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    return T5EncoderModel(T5Config(vocab_size=vocab_size, d_model=d_model, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                                   relative_attention_num_buckets=8, decoder_start_token_id=0)).eval()


def sd3_pipeline(folder: Path, seed: int = 0) -> Path:
    """An SD3 pipeline folder: CLIP-L, CLIP-G (both projected), T5, and a one-layer MMDiT transformer."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTokenizer, T5TokenizerFast

    write_clip_tokenizer(folder / "_tok")
    write_t5_tokenizer(folder / "_t5")
    torch.manual_seed(seed + 3)
    transformer = SD3Transformer2DModel(sample_size=16, patch_size=1, in_channels=4, num_layers=2, attention_head_dim=8,
                                        num_attention_heads=4, caption_projection_dim=32, joint_attention_dim=32,
                                        pooled_projection_dim=64, out_channels=4).eval()
    tokenizer = CLIPTokenizer.from_pretrained(folder / "_tok")
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=kl_vae(seed + 1, scaling_factor=1.5305, shift_factor=0.0609),  # SD3's own latent scaling
        text_encoder=clip_text_model(seed + 2, projection=32), text_encoder_2=clip_text_model(seed + 4, projection=32),
        text_encoder_3=t5_encoder(seed + 5), tokenizer=tokenizer, tokenizer_2=tokenizer,
        tokenizer_3=T5TokenizerFast.from_pretrained(folder / "_t5"),
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    _remove(folder / "_tok")
    _remove(folder / "_t5")
    return folder


def flux_pipeline(folder: Path, seed: int = 0, kontext: bool = False) -> Path:
    """A Flux pipeline folder: CLIP (pooled) + T5 and a guidance-distilled transformer on packed latents;
    ``kontext``: the same components saved as a FluxKontextPipeline (FLUX.1 Kontext's model_index.json)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxKontextPipeline, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTokenizer, T5TokenizerFast

    write_clip_tokenizer(folder / "_tok")
    write_t5_tokenizer(folder / "_t5")
    torch.manual_seed(seed + 3)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, axes_dims_rope=[4, 4, 8], guidance_embeds=True).eval()
    pipe = (FluxKontextPipeline if kontext else FluxPipeline)(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True),
        vae=kl_vae(seed + 1, scaling_factor=0.3611, shift_factor=0.1159),  # Flux's own latent scaling
        text_encoder=clip_text_model(seed + 2), text_encoder_2=t5_encoder(seed + 5),
        tokenizer=CLIPTokenizer.from_pretrained(folder / "_tok"), tokenizer_2=T5TokenizerFast.from_pretrained(folder / "_t5"),
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    _remove(folder / "_tok")
    _remove(folder / "_t5")
    return folder


def dc_vae(seed: int):
    """A tiny AutoencoderDC (DC-AE): halves the size once, 4 latent channels."""
    from diffusers import AutoencoderDC

    torch.manual_seed(seed)
    return AutoencoderDC(in_channels=3, latent_channels=4, attention_head_dim=2,
                         encoder_block_types=("ResBlock", "EfficientViTBlock"),
                         decoder_block_types=("ResBlock", "EfficientViTBlock"),
                         encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
                         encoder_qkv_multiscales=((), (5,)), decoder_qkv_multiscales=((), (5,)),
                         encoder_layers_per_block=(1, 1), decoder_layers_per_block=(1, 1),
                         downsample_block_type="conv", upsample_block_type="interpolate",
                         decoder_norm_types="rms_norm", decoder_act_fns="silu", scaling_factor=0.41407).eval()


def write_gemma_tokenizer(folder: Path) -> None:
    from transformers import GemmaTokenizer

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4, "\u2581": 5}
    for word in CLIP_WORDS:
        vocab.setdefault("\u2581" + word, len(vocab))
    GemmaTokenizer(vocab=vocab, merges=[]).save_pretrained(folder)


def sana_pipeline(folder: Path, seed: int = 0) -> Path:
    """A Sana pipeline folder: Gemma-2 text encoder, linear DiT, DC-AE, DPM-Solver with flow sigmas."""
    from diffusers import DPMSolverMultistepScheduler, SanaPipeline, SanaTransformer2DModel
    from transformers import Gemma2Config, Gemma2Model, GemmaTokenizer

    write_gemma_tokenizer(folder / "_gemma")
    torch.manual_seed(seed + 2)
    text_encoder = Gemma2Model(Gemma2Config(head_dim=16, hidden_size=8, intermediate_size=32, num_attention_heads=2,
                                            num_hidden_layers=1, num_key_value_heads=2, vocab_size=64,
                                            max_position_embeddings=2048)).eval()
    torch.manual_seed(seed + 3)
    transformer = SanaTransformer2DModel(patch_size=1, in_channels=4, out_channels=4, num_layers=1,
                                         num_attention_heads=2, attention_head_dim=4, num_cross_attention_heads=2,
                                         cross_attention_head_dim=4, cross_attention_dim=8, caption_channels=8,
                                         sample_size=16).eval()
    pipe = SanaPipeline(
        tokenizer=GemmaTokenizer.from_pretrained(folder / "_gemma"), text_encoder=text_encoder, vae=dc_vae(seed + 1),
        transformer=transformer,
        scheduler=DPMSolverMultistepScheduler(flow_shift=3.0, use_flow_sigmas=True, prediction_type="flow_prediction"),
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    _remove(folder / "_gemma")
    return folder


def controlnet(folder: Path, seed: int = 0, cross_attention_dim: int = 32, sdxl: bool = False) -> Path:
    """A ControlNetModel folder matching sd_unet (or sdxl_pipeline's UNet): a 2x conditioning downsampler."""
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    extra = dict(addition_embed_type="text_time", addition_time_embed_dim=8, use_linear_projection=True,
                 projection_class_embeddings_input_dim=6 * 8 + 32, attention_head_dim=(2, 4)) if sdxl else {}
    net = ControlNetModel(block_out_channels=(8, 16), layers_per_block=1, in_channels=4,
                          down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                          cross_attention_dim=64 if sdxl else cross_attention_dim,
                          conditioning_embedding_out_channels=(4, 8), norm_num_groups=4,
                          **({"attention_head_dim": 2} | extra)).eval()
    _randomise_zero_layers(net)
    net.save_pretrained(folder, safe_serialization=True)
    return folder


def _randomise_zero_layers(net) -> None:
    with torch.no_grad():  # ControlNets start with zero output layers; give them weights, as training would
        for p in net.parameters():
            if not p.any():
                p.normal_(std=0.3)


def sd3_controlnet(folder: Path, seed: int = 0) -> Path:
    from diffusers import SD3ControlNetModel

    torch.manual_seed(seed)
    net = SD3ControlNetModel(sample_size=16, patch_size=1, in_channels=4, num_layers=1, attention_head_dim=8,
                             num_attention_heads=4, joint_attention_dim=32, caption_projection_dim=32,
                             pooled_projection_dim=64, out_channels=4).eval()
    _randomise_zero_layers(net)
    net.save_pretrained(folder, safe_serialization=True)
    return folder


def flux_controlnet(folder: Path, seed: int = 0) -> Path:
    from diffusers import FluxControlNetModel

    torch.manual_seed(seed)
    net = FluxControlNetModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
                              num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
                              axes_dims_rope=[4, 4, 8], guidance_embeds=True).eval()
    _randomise_zero_layers(net)
    net.save_pretrained(folder, safe_serialization=True)
    return folder


def clip_image_encoder(folder: Path, seed: int = 0) -> Path:
    """A CLIPModel folder (text and vision towers, image processor, tokenizer) for the analyze nodes."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tower = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)
    config = CLIPConfig(
        text_config=dict(vocab_size=1024, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1,
                         **tower),
        vision_config=dict(image_size=32, patch_size=8, **tower), projection_dim=16)
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(folder, safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    write_clip_tokenizer(folder)
    return folder


def clip_vision_encoder(folder: Path, seed: int = 0, projection: int = 16) -> Path:
    """A CLIPVisionModelWithProjection folder with its image processor (IP-Adapter's image encoder)."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                              image_size=32, patch_size=8, projection_dim=projection)
    CLIPVisionModelWithProjection(config).save_pretrained(folder, safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def ip_adapter(path: Path, unet, image_embed_dim: int = 16, seed: int = 0) -> Path:
    """An IP-Adapter file in diffusers' layout for ``unet``: an image projection to 4 tokens, and
    to_k_ip / to_v_ip for every cross-attention layer (numbered 1, 3, 5, ... in processor order)."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    cad = unet.config.cross_attention_dim
    state = {"image_proj.proj.weight": torch.randn(cad * 4, image_embed_dim, generator=g) * 0.3,
             "image_proj.proj.bias": torch.zeros(cad * 4),
             "image_proj.norm.weight": torch.ones(cad), "image_proj.norm.bias": torch.zeros(cad)}
    key_id = 1
    channels = unet.config.block_out_channels
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name[len("up_blocks.")])]
        else:
            hidden = channels[int(name[len("down_blocks.")])]
        for kind in ("to_k_ip", "to_v_ip"):
            state[f"ip_adapter.{key_id}.{kind}.weight"] = torch.randn(hidden, cad, generator=g) * 0.3
        key_id += 2
    save_file(state, str(path))
    return path


def depth_anything(folder: Path, seed: int = 0) -> Path:
    """A tiny Depth Anything folder (a 4-layer DINOv2 backbone) with the DPT image processor it ships with."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37,
                            image_size=56, patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                                 fusion_hidden_size=16, head_hidden_size=8, patch_size=14)
    torch.manual_seed(seed)
    DepthAnythingForDepthEstimation(config).save_pretrained(folder, safe_serialization=True)
    DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
                      do_pad=False).save_pretrained(folder)
    return folder


QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                "<|video_pad|>"]


def write_qwen_tokenizer(folder: Path) -> None:
    """A Qwen2 tokenizer (vocab.json + merges.txt): a byte-level BPE over the 256 byte symbols with merges for the
    caption words, and the chat and vision special tokens the Qwen-Image prompt templates use."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import Qwen2Tokenizer

    vocab = {symbol: i for i, symbol in enumerate(sorted(ByteLevel.alphabet()))}
    merges = []
    for word in CLIP_WORDS:
        piece = "\u0120" + word[0]  # "Ġ": a space before the word, in byte-level spelling
        vocab.setdefault(piece, len(vocab))
        merges.append(("\u0120", word[0]))
        for ch in word[1:]:
            if (piece, ch) not in merges:
                merges.append((piece, ch))
            piece += ch
            vocab.setdefault(piece, len(vocab))
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL[1:]})
    tokenizer.save_pretrained(folder)


def qwen_vl_text_encoder(seed: int, tokenizer, hidden: int = 16):
    """A two-layer Qwen2.5-VL (vision tower included) whose special-token ids are the tokenizer's."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}
    config = Qwen2_5_VLConfig(
        text_config={"hidden_size": hidden, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "num_key_value_heads": 2, "vocab_size": len(tokenizer), "max_position_embeddings": 2048,
                     "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
                     "rope_theta": 1000000.0, "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"]},
        vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": hidden,
                       "fullatt_block_indexes": [1], "window_size": 56},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def qwen_image_vae(seed: int):
    """A tiny AutoencoderKLQwenImage (a causal video VAE used on one-frame clips): 8x smaller, 4 channels,
    with per-channel latent mean and std as the real one has."""
    from diffusers import AutoencoderKLQwenImage

    torch.manual_seed(seed)
    return AutoencoderKLQwenImage(base_dim=8, z_dim=4, dim_mult=[1, 1, 2, 2], num_res_blocks=1,
                                  temperal_downsample=[False, True, True], latents_mean=[0.1, -0.2, 0.05, 0.0],
                                  latents_std=[1.5, 0.8, 1.2, 1.0]).eval()


def qwen_image_pipeline(folder: Path, seed: int = 0, edit: bool = False) -> Path:
    """A Qwen-Image pipeline folder (Qwen2.5-VL text encoder, MMDiT transformer on 2x2-packed latents, the Qwen
    video VAE); ``edit``: a QwenImageEditPipeline, with the Qwen2-VL processor that shows the encoder a picture."""
    from diffusers import (FlowMatchEulerDiscreteScheduler, QwenImageEditPipeline, QwenImagePipeline,
                           QwenImageTransformer2DModel)
    from transformers import Qwen2Tokenizer, Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    write_qwen_tokenizer(folder / "_qwen")
    tokenizer = Qwen2Tokenizer.from_pretrained(folder / "_qwen")
    torch.manual_seed(seed + 3)
    transformer = QwenImageTransformer2DModel(patch_size=2, in_channels=16, out_channels=4, num_layers=2,
                                              attention_head_dim=16, num_attention_heads=3, joint_attention_dim=16,
                                              guidance_embeds=False, axes_dims_rope=(8, 4, 4)).eval()
    parts = dict(transformer=transformer, vae=qwen_image_vae(seed + 1), text_encoder=qwen_vl_text_encoder(seed + 2, tokenizer),
                 tokenizer=tokenizer,
                 scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9,
                                                           max_image_seq_len=8192, shift_terminal=0.02,
                                                           time_shift_type="exponential"))
    if edit:  # few pixels for the vision tower: the picture becomes a handful of image tokens
        image_processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=56 * 56, patch_size=14, merge_size=2)
        parts["processor"] = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                              video_processor=Qwen2VLVideoProcessor())
    pipe = (QwenImageEditPipeline if edit else QwenImagePipeline)(**parts)
    pipe.save_pretrained(folder, safe_serialization=True)
    _remove(folder / "_qwen")
    return folder
