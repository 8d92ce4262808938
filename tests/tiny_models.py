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


def sam(folder: Path, seed: int = 0, hq: bool = False) -> Path:
    """A tiny SAM folder (SAM-HQ with ``hq``): a 2-layer ViT on 64 px pictures (8 px patches), with the processor
    set to 64 px."""
    import transformers

    name = "SamHQ" if hq else "Sam"
    config, vision, prompt, decoder, model, processor = (getattr(transformers, name + part) for part in (
        "Config", "VisionConfig", "PromptEncoderConfig", "MaskDecoderConfig", "Model", "Processor"))
    vision = vision(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_dim=37, image_size=64, patch_size=8,
                    output_channels=16, window_size=4, global_attn_indexes=[1], num_pos_feats=8, initializer_range=0.02)
    prompt = prompt(image_size=64, patch_size=8, hidden_size=16, mask_input_channels=4)
    decoder = decoder(hidden_size=16, mlp_dim=32, num_attention_heads=2, iou_head_hidden_dim=16,
                      **({"vit_dim": 32} if hq else {}))
    torch.manual_seed(seed)
    model(config(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)).save_pretrained(
        folder, safe_serialization=True)
    image_processor = transformers.SamImageProcessor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64})
    processor(image_processor).save_pretrained(folder)
    return folder


def sam_hq(folder: Path, seed: int = 0) -> Path:
    return sam(folder, seed, hq=True)


def sam2(folder: Path, seed: int = 0) -> Path:
    """A tiny SAM 2 folder: a 5-block Hiera backbone on 64 px pictures, with the Sam2Processor set to 64 px."""
    from transformers import (Sam2Config, Sam2HieraDetConfig, Sam2ImageProcessor, Sam2MaskDecoderConfig, Sam2Model,
                              Sam2Processor, Sam2PromptEncoderConfig, Sam2VisionConfig)

    backbone = Sam2HieraDetConfig(hidden_size=8, image_size=64, blocks_per_stage=[1, 1, 2, 1],
                                  embed_dim_per_stage=[8, 16, 32, 64], num_attention_heads_per_stage=[1, 1, 2, 2],
                                  window_size_per_stage=[4, 4, 2, 2], global_attention_blocks=[3],
                                  window_positional_embedding_background_size=[4, 4])
    vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[64, 32, 16, 8],
                              backbone_feature_sizes=[[16, 16], [8, 8], [4, 4]], fpn_hidden_size=16)
    prompt = Sam2PromptEncoderConfig(image_size=64, patch_size=16, hidden_size=16, mask_input_channels=4)
    decoder = Sam2MaskDecoderConfig(hidden_size=16, mlp_dim=32, num_attention_heads=2, iou_head_hidden_dim=16)
    torch.manual_seed(seed)
    config = Sam2Config(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)
    Sam2Model(config).save_pretrained(folder, safe_serialization=True)
    Sam2Processor(Sam2ImageProcessor(size={"height": 64, "width": 64}, mask_size={"height": 16, "width": 16})
                  ).save_pretrained(folder)
    return folder


def sam3_tracker(folder: Path, seed: int = 0) -> Path:
    """A tiny SAM 3 tracker folder (points and boxes prompts): a 2-layer ViT on 56 px pictures (14 px patches)."""
    from transformers import (Sam3ImageProcessor, Sam3TrackerConfig, Sam3TrackerMaskDecoderConfig, Sam3TrackerModel,
                              Sam3TrackerProcessor, Sam3TrackerPromptEncoderConfig, Sam3VisionConfig, Sam3ViTConfig)

    backbone = Sam3ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                             image_size=56, patch_size=14, window_size=2, global_attn_indexes=[1],
                             pretrain_image_size=56)
    vision = Sam3VisionConfig(backbone_config=backbone, fpn_hidden_size=16, scale_factors=[4.0, 2.0, 1.0],
                              backbone_feature_sizes=[[16, 16], [8, 8], [4, 4]])
    prompt = Sam3TrackerPromptEncoderConfig(image_size=56, patch_size=14, hidden_size=16, mask_input_channels=4)
    decoder = Sam3TrackerMaskDecoderConfig(hidden_size=16, mlp_dim=32, num_attention_heads=2, iou_head_hidden_dim=16)
    torch.manual_seed(seed)
    Sam3TrackerModel(Sam3TrackerConfig(vision_config=vision, prompt_encoder_config=prompt,
                                       mask_decoder_config=decoder)).save_pretrained(folder, safe_serialization=True)
    Sam3TrackerProcessor(Sam3ImageProcessor(size={"height": 56, "width": 56}, mask_size={"height": 16, "width": 16})
                         ).save_pretrained(folder)
    return folder


def write_owl_tokenizer(folder: Path, max_length: int = 16) -> None:
    """The CLIP tokenizer of :func:`write_clip_tokenizer`, numbered the way OWL-ViT's real one is: "!" (its pad
    token) first and the start/end tokens last, since OWL-ViT reads a query whose first token id is 0 as padding."""
    import json
    import tempfile

    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        write_clip_tokenizer(Path(tmp), max_length)
        vocab = json.loads((Path(tmp) / "vocab.json").read_text())
        merges = (Path(tmp) / "merges.txt").read_text()
    specials = ["<|startoftext|>", "<|endoftext|>"]
    words = [w for w in vocab if w not in specials] + specials
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({w: i for i, w in enumerate(words)}))
    (folder / "merges.txt").write_text(merges)
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=max_length,
                  bos_token=specials[0], eos_token=specials[1], pad_token="!", unk_token=specials[1]).save_pretrained(folder)


def _owl_config(config_class, vocab_size: int):
    tower = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)
    text = dict(vocab_size=vocab_size, max_position_embeddings=16, pad_token_id=0, bos_token_id=vocab_size - 2,
                eos_token_id=vocab_size - 1, **tower)
    # the class head compares image embeddings with text embeddings: projection_dim is the text width
    return config_class(text_config=text, vision_config=dict(image_size=32, patch_size=8, **tower), projection_dim=32)


def owlvit(folder: Path, seed: int = 0, version: int = 1) -> Path:
    """A tiny OWL-ViT (or with ``version=2`` OWLv2) detector folder with its processor and CLIP tokenizer."""
    from transformers import (CLIPTokenizer, Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor,
                              OwlViTConfig, OwlViTForObjectDetection, OwlViTImageProcessor, OwlViTProcessor)

    write_owl_tokenizer(folder)
    tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    torch.manual_seed(seed)
    if version == 1:
        OwlViTForObjectDetection(_owl_config(OwlViTConfig, len(tokenizer))).save_pretrained(folder, safe_serialization=True)
        images = OwlViTImageProcessor(size={"height": 32, "width": 32}, crop_size={"height": 32, "width": 32})
        OwlViTProcessor(images, tokenizer).save_pretrained(folder)
    else:
        Owlv2ForObjectDetection(_owl_config(Owlv2Config, len(tokenizer))).save_pretrained(folder, safe_serialization=True)
        Owlv2Processor(Owlv2ImageProcessor(size={"height": 32, "width": 32}), tokenizer).save_pretrained(folder)
    return folder


def owlv2(folder: Path, seed: int = 0) -> Path:
    return owlvit(folder, seed, version=2)


BERT_WORDS = ["a", "cat", "dog", "tree", "building", "the", "red", "circle", "square"]


def write_bert_tokenizer(folder: Path, max_length: int = 32) -> None:
    """A BertTokenizer folder from a small vocab.txt: the special tokens, marks, a few whole words, and single
    letters (with their ## continuations) so any word is spelled."""
    import string

    from transformers import BertTokenizer

    letters = list(string.ascii_lowercase)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *BERT_WORDS]
    words += [c for c in letters if c not in words] + ["##" + c for c in letters]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizer(str(folder / "vocab.txt"), do_lower_case=True, model_max_length=max_length).save_pretrained(folder)


def grounding_dino(folder: Path, seed: int = 0) -> Path:
    """A tiny Grounding DINO folder (a 4-stage Swin backbone, a 1-layer BERT) with its processor and tokenizer."""
    from transformers import (BertConfig, BertTokenizer, GroundingDinoConfig, GroundingDinoForObjectDetection,
                              GroundingDinoImageProcessor, GroundingDinoProcessor, SwinConfig)

    write_bert_tokenizer(folder)
    tokenizer = BertTokenizer.from_pretrained(folder, local_files_only=True)
    backbone = SwinConfig(embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4, image_size=64,
                          patch_size=4, out_features=["stage2", "stage3", "stage4"])
    text = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=37, max_position_embeddings=64)
    # two decoder layers at least: the box heads of the layers after the first are tied to the first one's
    config = GroundingDinoConfig(backbone_config=backbone, text_config=text, d_model=32, encoder_layers=1,
                                 decoder_layers=2, encoder_ffn_dim=37, decoder_ffn_dim=37, encoder_attention_heads=2,
                                 decoder_attention_heads=2, num_queries=20, max_text_len=32, encoder_n_points=2,
                                 decoder_n_points=2)
    torch.manual_seed(seed)
    GroundingDinoForObjectDetection(config).save_pretrained(folder, safe_serialization=True)
    images = GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})
    GroundingDinoProcessor(images, tokenizer).save_pretrained(folder)
    return folder


def clipseg(folder: Path, seed: int = 0) -> Path:
    """A tiny CLIPSeg folder (2-layer CLIP towers, a decoder reading both vision layers) with the ViT image
    processor and CLIP tokenizer it ships with."""
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation, CLIPSegProcessor, CLIPTokenizer, ViTImageProcessor

    write_clip_tokenizer(folder)
    tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    tower = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)
    config = CLIPSegConfig(
        text_config=dict(vocab_size=1024, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1,
                         **tower),
        vision_config=dict(image_size=32, patch_size=8, **tower), projection_dim=16, extract_layers=[0, 1],
        reduce_dim=16, decoder_num_attention_heads=2, decoder_intermediate_size=37)
    torch.manual_seed(seed)
    CLIPSegForImageSegmentation(config).save_pretrained(folder, safe_serialization=True)
    images = ViTImageProcessor(size={"height": 32, "width": 32}, resample=2)  # bilinear, as CLIPSeg's own
    CLIPSegProcessor(images, tokenizer).save_pretrained(folder)
    return folder


#: what Florence2Processor's answer parser reads per kind of answer (florence-community's processors ship this)
FLORENCE_POST_PROCESSOR = {"ocr": {}, "phrase_grounding": {"banned_grounding_tokens": ["the image"]}, "pure_text": {},
                           "description_with_bboxes": {}, "description_with_polygons": {}, "polygons": {},
                           "bboxes": {}, "description_with_bboxes_or_polygons": {}}


def florence2(folder: Path, seed: int = 0) -> Path:
    """A tiny Florence-2 folder: a 4-stage DaViT of 1 block each (8 -> 32 channels) on 64x64 pictures, so 2x2+1
    image tokens, and a 1-layer BART; its processor with a byte-level BART tokenizer that adds Florence's
    <image> token, the 1000 <loc_N> location tokens and the region tags. Weights drawn wider than the
    default init (std 0.5), so greedy answers mix words and boxes instead of repeating one token."""
    from transformers import (BartConfig, BartTokenizer, CLIPImageProcessor, Florence2Config,
                              Florence2ForConditionalGeneration, Florence2Processor, Florence2VisionConfig)
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for symbol in bytes_to_unicode().values():
        vocab.setdefault(symbol, len(vocab))
    vocab["<mask>"] = len(vocab)
    tokenizer = BartTokenizer(vocab=vocab, merges=[], extra_special_tokens={"image_token": "<image>"})
    tokenizer.add_tokens([f"<loc_{i}>" for i in range(1000)] + ["<od>", "</od>", "<ocr>", "</ocr>"])
    images = CLIPImageProcessor(size={"height": 64, "width": 64}, do_center_crop=False, image_seq_length=5)
    Florence2Processor(image_processor=images, tokenizer=tokenizer,
                       post_processor_config=FLORENCE_POST_PROCESSOR).save_pretrained(folder)
    vision = Florence2VisionConfig(depths=(1, 1, 1, 1), embed_dim=(8, 16, 16, 32), num_heads=(1, 2, 2, 2),
                                   num_groups=(1, 2, 2, 2), window_size=2, projection_dim=32, drop_path_rate=0.0,
                                   max_position_embeddings=8, max_temporal_embeddings=4, initializer_range=0.5)
    text = BartConfig(vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1,
                      encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=37, decoder_ffn_dim=37,
                      max_position_embeddings=1026, bos_token_id=0, pad_token_id=1, eos_token_id=2,
                      decoder_start_token_id=2, forced_bos_token_id=0, init_std=0.5)
    torch.manual_seed(seed)
    Florence2ForConditionalGeneration(Florence2Config(vision_config=vision, text_config=text,
                                                      image_token_id=tokenizer.image_token_id)).save_pretrained(folder)
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


def tiny_vae(folder: Path, seed: int = 0, latent_channels: int = 4) -> Path:
    """A tiny AutoencoderTiny (TAESD's architecture, 8x down, 8 channels a block) saved as diffusers saves it."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                    num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1),
                    latent_channels=latent_channels).save_pretrained(folder, safe_serialization=True)
    return folder
