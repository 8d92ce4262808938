"""Family adapters: what differs between model families, so the Sampler stays one loop.

A family knows which diffusers pipeline encodes its prompts (we call that pipeline's own
``encode_prompt``, so our conditioning is the pipeline's to the bit), which conditioning its
denoiser accepts, how to call the denoiser, and which schedulers fit it.
"""

from __future__ import annotations

from typing import Any

from nodegraph import NodeUserError

from ._diffusion_types import Conditioning, DiffusionModel, TextEncoders

UNET_SCHEDULERS = ("default", "euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_karras", "ddim", "unipc", "lcm")


class Family:
    id = ""
    title = ""
    pipeline = ""  # the diffusers pipeline class whose encode_prompt and LoRA loading we reuse
    denoiser_name = "unet"
    flow = False  # flow matching (SD3, Flux, Sana) rather than noise prediction
    schedulers: tuple[str, ...] = UNET_SCHEDULERS
    text_components: tuple[str, ...] = ()
    takes_references = False  # whether its denoiser sees reference latents (Reference Latent), as edit models do

    def encode(self, te: TextEncoders, prompt: str, negative: str, device) -> Conditioning:
        raise NotImplementedError

    def check(self, model: DiffusionModel, cond: Conditioning) -> None:
        """Refuse, in words, conditioning (or a ControlNet) this model cannot use."""
        if cond.family != model.family:
            raise NodeUserError(
                f"the conditioning was made by a {FAMILIES[cond.family].title} text encoder but the model is "
                f"{self.title}; connect the text encoder loaded with this model"
            )
        for control in cond.controls:
            if model.family not in control.net.families:
                names = " or ".join(FAMILIES[f].title for f in control.net.families)
                raise NodeUserError(f"the ControlNet {control.net.source} is for {names} models, not {self.title}")
        if cond.references and not self.takes_references:
            raise NodeUserError(f"{self.title} models do not take reference latents: Reference Latent is for edit "
                                f"models (Flux Kontext)")

    # ----- the loop's hooks; the defaults are the UNet (noise prediction) pipelines' behaviour -----
    def guided(self, model: DiffusionModel, cfg: float) -> bool:
        """Whether classifier-free guidance runs (a negative half in every batch)."""
        return cfg > 1.0 and getattr(model.denoiser.config, "time_cond_proj_dim", None) is None

    def timestep_kwargs(self, sched, model: DiffusionModel, latents, steps: int) -> dict:
        """Extra arguments for ``retrieve_timesteps`` (custom sigmas, a resolution-dependent shift)."""
        return {}

    def img2img_begin(self, steps: int, denoise: float) -> int:
        """Index of the first step an img2img run keeps, as the family's img2img pipeline computes it."""
        return max(steps - min(int(steps * denoise), steps), 0)

    def scale_input(self, sched, x, t):
        return sched.scale_model_input(x, t)

    def noised(self, sched, clean, noise, t):
        """``clean`` latents noised to timestep(s) ``t``."""
        return sched.add_noise(clean, noise, t)

    def start(self, sched, noise):
        """Latents at the start of text-to-image sampling."""
        return noise * sched.init_noise_sigma

    def latent_dtype(self, model: DiffusionModel):
        """The dtype the loop keeps latents in."""
        return model.denoiser.dtype

    def input_channels(self, model: DiffusionModel) -> int:
        """Latent channels the denoiser takes (more than the VAE's for inpainting models)."""
        return model.denoiser.config.in_channels

    def extra_inputs(self, model: DiffusionModel, cfg: float, batch: int, device, dtype) -> dict:
        """Denoiser inputs that depend on the guidance scale: LCM's guidance embedding by default."""
        dim = getattr(model.denoiser.config, "time_cond_proj_dim", None)
        if dim is None:
            return {}
        import torch
        from diffusers import StableDiffusionPipeline

        w = torch.tensor(cfg - 1.0).repeat(batch)
        embedding = StableDiffusionPipeline.get_guidance_scale_embedding(None, w, embedding_dim=dim)
        return {"timestep_cond": embedding.to(device=device, dtype=dtype)}

    def embeds(self, model: DiffusionModel, cond: Conditioning, latent) -> tuple[dict, dict]:
        """Positive and negative denoiser inputs by name, before batching (a family may add its own)."""
        return dict(cond.positive), dict(cond.negative)

    def predict(self, model: DiffusionModel, x, t, embeds: dict[str, Any], controls=()):
        """The denoiser's prediction for batch ``x`` at ``t``; ``controls`` are (ControlNet module,
        prepared control picture, scale) for the ControlNets active at this step."""
        raise NotImplementedError


def _text_pipeline(class_name: str, te: TextEncoders, **kwargs):
    """A diffusers pipeline holding only the text components, to call its own encode_prompt."""
    return partial_pipeline(class_name, {**te.components, **kwargs})


def partial_pipeline(class_name: str, given: dict):
    """A diffusers pipeline object holding only the components given (the others None)."""
    import inspect

    import diffusers

    cls = getattr(diffusers, class_name)
    others = {name: None for name, p in inspect.signature(cls.__init__).parameters.items()
              if name != "self" and name not in given and p.default is inspect.Parameter.empty}
    return cls(**others, **given)


def _clip_skipped(te: TextEncoders, prompt: str, skip: int, device):
    """The prompt's CLIP embeddings from ``skip`` layers before the last, through the final layer norm, as
    diffusers' ``clip_skip`` defines them (its own code reaches for ``text_model``, which transformers 5
    no longer has)."""
    tokenizer, encoder = te.components["tokenizer"], te.components["text_encoder"]
    ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(device)
    hidden = encoder(ids, output_hidden_states=True).hidden_states[-(skip + 1)]
    norm = getattr(encoder, "final_layer_norm", None) or encoder.text_model.final_layer_norm
    return norm(hidden).to(dtype=encoder.dtype, device=device)


class StableDiffusion(Family):
    """SD 1.x and 2.x: one CLIP text encoder, a UNet predicting noise (epsilon) or velocity (v)."""

    id = "sd"
    title = "Stable Diffusion 1.x/2.x"
    pipeline = "StableDiffusionPipeline"
    denoiser_name = "unet"
    text_components = ("text_encoder", "tokenizer")

    def encode(self, te, prompt, negative, device):
        pipe = _text_pipeline(self.pipeline, te, safety_checker=None, feature_extractor=None,
                              requires_safety_checker=False)
        skip = te.options.get("clip_skip")
        given = {}
        if skip:  # tokenized here, so a multi-vector embedding's token is spelled out here too, as diffusers does
            given["prompt_embeds"] = _clip_skipped(te, pipe.maybe_convert_prompt(prompt, pipe.tokenizer), skip, device)
        positive, negative_embeds = pipe.encode_prompt(prompt if not skip else None, device, 1, True,
                                                       negative_prompt=negative or None, **given)
        return Conditioning(self.id, {"prompt_embeds": positive}, {"prompt_embeds": negative_embeds}, prompt)

    def check(self, model, cond):
        super().check(model, cond)
        width, want = cond.positive["prompt_embeds"].shape[-1], model.denoiser.config.cross_attention_dim
        if width != want:
            raise NodeUserError(
                f"the conditioning is {width} wide but this UNet expects {want} (an SD 1.x text encoder with an "
                f"SD 2.x model, or the reverse?)"
            )

    def added_cond(self, embeds) -> dict | None:
        return None

    def predict(self, model, x, t, embeds, controls=()):
        added = self.added_cond(embeds)
        down, mid = _unet_control_residuals(x, t, embeds, added, controls)
        if "image_embeds" in embeds:  # an IP-Adapter is installed for this run
            added = {**(added or {}), "image_embeds": embeds["image_embeds"]}
        return model.denoiser(
            x, t, encoder_hidden_states=embeds["prompt_embeds"], timestep_cond=embeds.get("timestep_cond"),
            added_cond_kwargs=added, down_block_additional_residuals=down, mid_block_additional_residual=mid,
            return_dict=False,
        )[0]


def _unet_control_residuals(x, t, embeds, added, controls):
    """Sum the residuals of every active ControlNet, as diffusers' MultiControlNetModel does."""
    down = mid = None
    for module, image, scale in controls:
        extra = {"added_cond_kwargs": added} if added is not None else {}
        d, m = module(x, t, encoder_hidden_states=embeds["prompt_embeds"], controlnet_cond=image,
                      conditioning_scale=scale, guess_mode=False, return_dict=False, **extra)
        down = d if down is None else [a + b for a, b in zip(down, d)]
        mid = m if mid is None else mid + m
    return down, mid


class StableDiffusionXL(StableDiffusion):
    """SDXL: two CLIP text encoders (one pooled), and the picture's size as extra conditioning."""

    id = "sdxl"
    title = "Stable Diffusion XL"
    pipeline = "StableDiffusionXLPipeline"
    denoiser_name = "unet"
    text_components = ("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")

    def encode(self, te, prompt, negative, device):
        pipe = _text_pipeline(self.pipeline, te,
                              force_zeros_for_empty_prompt=te.options.get("force_zeros_for_empty_prompt", True))
        embeds, negative_embeds, pooled, negative_pooled = pipe.encode_prompt(
            prompt, device=device, num_images_per_prompt=1, do_classifier_free_guidance=True,
            negative_prompt=negative or None, clip_skip=te.options.get("clip_skip"))
        return Conditioning(self.id, {"prompt_embeds": embeds, "text_embeds": pooled},
                            {"prompt_embeds": negative_embeds, "text_embeds": negative_pooled}, prompt)

    def embeds(self, model, cond, latent):
        """Size conditioning as diffusers' default: original = target = the picture's size, no crop."""
        import torch

        height, width = latent.meta["pixel_size"]
        dtype = cond.positive["prompt_embeds"].dtype
        time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=dtype)
        positive, negative = super().embeds(model, cond, latent)
        return {**positive, "time_ids": time_ids}, {**negative, "time_ids": time_ids}

    def added_cond(self, embeds):
        return {"text_embeds": embeds["text_embeds"], "time_ids": embeds["time_ids"]}


class FlowMatching(Family):
    """What flow-matching transformers share: sigmas from 1 to 0, no input scaling, noise by interpolation."""

    flow = True
    schedulers = ("default", "flow_euler", "euler")

    def guided(self, model, cfg):
        return cfg > 1.0

    def timestep_kwargs(self, sched, model, latents, steps):
        if not sched.config.get("use_dynamic_shifting"):
            return {}
        from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import calculate_shift

        patch = model.denoiser.config.patch_size
        seq_len = (latents.shape[-2] // patch) * (latents.shape[-1] // patch)
        c = sched.config
        mu = calculate_shift(seq_len, c.get("base_image_seq_len", 256), c.get("max_image_seq_len", 4096),
                             c.get("base_shift", 0.5), c.get("max_shift", 1.16))
        return {"mu": mu}

    def img2img_begin(self, steps, denoise):
        return int(max(steps - min(steps * denoise, steps), 0))

    def scale_input(self, sched, x, t):
        return x

    def noised(self, sched, clean, noise, t):
        return sched.scale_noise(clean, t, noise)

    def start(self, sched, noise):
        return noise


class StableDiffusion3(FlowMatching):
    """SD3 and 3.5: CLIP-L, CLIP-G and T5 text encoders, a joint-attention (MMDiT) transformer."""

    id = "sd3"
    title = "Stable Diffusion 3"
    pipeline = "StableDiffusion3Pipeline"
    denoiser_name = "transformer"
    text_components = ("text_encoder", "text_encoder_2", "text_encoder_3", "tokenizer", "tokenizer_2", "tokenizer_3")

    def encode(self, te, prompt, negative, device):
        pipe = _text_pipeline(self.pipeline, te)
        embeds, negative_embeds, pooled, negative_pooled = pipe.encode_prompt(
            prompt, None, None, device=device, num_images_per_prompt=1, do_classifier_free_guidance=True,
            negative_prompt=negative or None, clip_skip=te.options.get("clip_skip"))
        return Conditioning(self.id, {"prompt_embeds": embeds, "pooled_projections": pooled},
                            {"prompt_embeds": negative_embeds, "pooled_projections": negative_pooled}, prompt)

    def predict(self, model, x, t, embeds, controls=()):
        timestep = t.expand(x.shape[0])
        blocks = None
        for module, image, scale in controls:  # several SD3 ControlNets add up, as SD3MultiControlNetModel does
            pooled = embeds["pooled_projections"]
            if module.config.force_zeros_for_pooled_projection:
                pooled = pooled.new_zeros(pooled.shape)
            text = embeds["prompt_embeds"] if module.config.joint_attention_dim is not None else None
            samples = module(hidden_states=x, timestep=timestep, encoder_hidden_states=text, pooled_projections=pooled,
                             controlnet_cond=image, conditioning_scale=scale, return_dict=False)[0]
            blocks = samples if blocks is None else [a + b for a, b in zip(blocks, samples)]
        return model.denoiser(
            hidden_states=x, timestep=timestep, encoder_hidden_states=embeds["prompt_embeds"],
            pooled_projections=embeds["pooled_projections"], block_controlnet_hidden_states=blocks,
            return_dict=False,
        )[0]


class Flux(FlowMatching):
    """Flux: CLIP (pooled) + T5, a guidance-distilled transformer on 2x2-packed latents.

    The guidance scale is an input of the model, not a second batch; ``cfg`` is that scale. Packing
    happens around the transformer call: the scheduler step is elementwise, so the loop can keep
    ordinary (batch, channels, height, width) latents.
    """

    id = "flux"
    title = "Flux"
    pipeline = "FluxPipeline"
    denoiser_name = "transformer"
    text_components = ("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")

    def encode(self, te, prompt, negative, device):
        pipe = _text_pipeline(self.pipeline, te)
        embeds, pooled, _ = pipe.encode_prompt(prompt, None, device=device, num_images_per_prompt=1)
        negative_embeds, negative_pooled, _ = pipe.encode_prompt(negative or "", None, device=device,
                                                                 num_images_per_prompt=1)
        return Conditioning(self.id, {"prompt_embeds": embeds, "pooled_projections": pooled},
                            {"prompt_embeds": negative_embeds, "pooled_projections": negative_pooled}, prompt)

    def guided(self, model, cfg):
        return False

    def input_channels(self, model):
        return model.denoiser.config.in_channels // 4

    def extra_inputs(self, model, cfg, batch, device, dtype):
        import torch

        if not model.denoiser.config.guidance_embeds:
            return {}
        return {"guidance": torch.full([1], cfg, device=device, dtype=torch.float32).expand(batch)}

    def timestep_kwargs(self, sched, model, latents, steps):
        import numpy as np
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift

        c = sched.config
        seq_len = (latents.shape[-2] // 2) * (latents.shape[-1] // 2)
        mu = calculate_shift(seq_len, c.get("base_image_seq_len", 256), c.get("max_image_seq_len", 4096),
                             c.get("base_shift", 0.5), c.get("max_shift", 1.15))
        sigmas = None if c.get("use_flow_sigmas") else np.linspace(1.0, 1 / steps, steps)
        return {"sigmas": sigmas, "mu": mu}

    takes_references = True  # FLUX.1 Kontext: the reference picture's tokens follow the noisy latents'

    def check(self, model, cond):
        super().check(model, cond)
        if cond.references and cond.controls:
            raise NodeUserError("a Flux ControlNet and Reference Latent cannot be used together yet")
        want = self.input_channels(model)
        for ref in cond.references:
            if ref.shape[1] != want:
                raise NodeUserError(f"the reference latent has {ref.shape[1]} channels but this {self.title} model "
                                    f"takes {want}: encode the reference with the model's own VAE")
            if ref.shape[-2] % 2 or ref.shape[-1] % 2:
                raise NodeUserError(f"the reference latent is {ref.shape[-1]}x{ref.shape[-2]}; {self.title} packs "
                                    f"latents 2x2, so its sides must be even (picture sides a multiple of 16)")

    def embeds(self, model, cond, latent):
        """The reference latents, packed into tokens with their own image ids, as FluxKontextPipeline prepares
        its one reference (ids with 1 in the first axis); further references sit beside or below the ones
        before them, as ComfyUI places them (its "offset" method)."""
        positive, negative = super().embeds(model, cond, latent)
        if cond.references:
            tokens, ids = _flux_reference_tokens(cond.references, latent.samples.shape[0])
            positive.update(reference_latents=tokens, reference_ids=ids)
            negative.update(reference_latents=tokens, reference_ids=ids)
        return positive, negative

    def predict(self, model, x, t, embeds, controls=()):
        from diffusers import FluxPipeline

        import torch

        b, c, h, w = x.shape
        packed = FluxPipeline._pack_latents(x, b, c, h, w)
        image_ids = FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, x.device, x.dtype)
        noise_tokens = packed.shape[1]
        hidden, ids = packed, image_ids
        if "reference_latents" in embeds:  # Kontext: the noisy tokens, then the reference's
            hidden = torch.cat([packed, embeds["reference_latents"].to(x.dtype)], dim=1)
            ids = torch.cat([image_ids, embeds["reference_ids"][0].to(x.dtype)])
        text = embeds["prompt_embeds"]
        text_ids = torch.zeros(text.shape[1], 3, device=x.device, dtype=text.dtype)
        timestep = t.expand(b).to(x.dtype) / 1000
        blocks = singles = None
        for module, image, scale in controls:  # Flux ControlNets add up, as FluxMultiControlNetModel does
            cond = FluxPipeline._pack_latents(image, *image.shape)
            guidance = embeds.get("guidance") if module.config.guidance_embeds else None
            d, s = module(hidden_states=packed, controlnet_cond=cond, conditioning_scale=scale, timestep=timestep,
                          guidance=guidance, pooled_projections=embeds["pooled_projections"],
                          encoder_hidden_states=text, txt_ids=text_ids, img_ids=image_ids, return_dict=False)
            blocks = d if blocks is None else [a + c for a, c in zip(blocks, d)]
            singles = s if singles is None else [a + c for a, c in zip(singles, s)]
        out = model.denoiser(
            hidden_states=hidden, timestep=timestep, guidance=embeds.get("guidance"),
            pooled_projections=embeds["pooled_projections"], encoder_hidden_states=text, txt_ids=text_ids,
            img_ids=ids, controlnet_block_samples=blocks, controlnet_single_block_samples=singles,
            return_dict=False,
        )[0][:, :noise_tokens]  # the prediction for the noisy tokens only
        return out.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def _flux_reference_tokens(references, batch: int):
    """Reference latents -> (packed tokens (batch, n, 4c), image ids (batch, n, 3)); a reference of batch 1
    serves every picture of the batch, as diffusers repeats it."""
    from diffusers import FluxPipeline

    import torch

    tokens, ids = [], []
    h_extent = w_extent = 0
    for ref in references:
        if ref.shape[0] != batch:
            if batch % ref.shape[0]:
                raise NodeUserError(f"a batch of {ref.shape[0]} reference latents cannot serve a batch of {batch}")
            ref = torch.cat([ref] * (batch // ref.shape[0]))
        b, c, h, w = ref.shape
        h_off = w_off = 0
        if h + h_extent > w + w_extent:
            w_off = w_extent
        else:
            h_off = h_extent
        h_extent, w_extent = max(h_extent, h + h_off), max(w_extent, w + w_off)
        tokens.append(FluxPipeline._pack_latents(ref, b, c, h, w))
        ref_ids = FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, ref.device, ref.dtype)
        ref_ids[..., 0] = 1
        ref_ids[..., 1] += (h_off + 1) // 2
        ref_ids[..., 2] += (w_off + 1) // 2
        ids.append(ref_ids)
    ids = torch.cat(ids)
    return torch.cat(tokens, dim=1), ids.unsqueeze(0).expand(batch, *ids.shape)


class QwenImage(Flux):
    """Qwen-Image and Qwen-Image-Edit: a Qwen2.5-VL text encoder (through the pipeline's prompt template), an
    MMDiT on 2x2-packed latents of Qwen's video VAE, true classifier-free guidance with the prediction's
    norm kept.

    The positive and negative prompts differ in length, so guidance runs as two denoiser calls inside
    ``predict``, as in diffusers, rather than as one doubled batch; ``cfg`` is diffusers' ``true_cfg_scale``.
    An edit model's reference picture reaches it twice: through the text encoder (Edit Condition) and as
    reference latents whose tokens follow the noisy ones, with their own entry in ``img_shapes``.
    """

    id = "qwen_image"
    title = "Qwen-Image"
    pipeline = "QwenImagePipeline"
    edit_pipeline = "QwenImageEditPipeline"
    denoiser_name = "transformer"
    text_components = ("text_encoder", "tokenizer", "processor")  # the processor: Qwen-Image-Edit's only

    def encode(self, te, prompt, negative, device, image=None):
        """Both prompts through the pipeline's own encode_prompt; ``image`` (PIL, already at the size the edit
        pipeline gives it) makes it the edit pipeline's, which shows the encoder the picture."""
        import inspect

        import diffusers

        name = self.pipeline if image is None else self.edit_pipeline
        parts = {k: te.components[k] for k in ("text_encoder", "tokenizer")}
        if image is not None:
            if te.components.get("processor") is None:
                raise NodeUserError(f"{te.source} has no processor: showing a picture to the text encoder needs a "
                                    f"Qwen-Image-Edit pipeline folder")
            parts["processor"] = te.components["processor"]
        pipe = partial_pipeline(name, parts)
        length = inspect.signature(getattr(diffusers, name).__call__).parameters["max_sequence_length"].default
        extra = {} if image is None else {"image": image}
        given = {}
        for key, text in (("positive", prompt), ("negative", negative or "")):
            embeds, mask = pipe.encode_prompt(text, device=device, num_images_per_prompt=1,
                                              max_sequence_length=length, **extra)
            given[key] = {"prompt_embeds": embeds, **({"encoder_hidden_states_mask": mask} if mask is not None else {})}
        return Conditioning(self.id, given["positive"], given["negative"], prompt)

    def edit_picture(self, picture):
        """A PIL picture at the size QwenImageEditPipeline gives its reference: about a megapixel, sides a
        multiple of 32, resized with the pipeline's own image processor."""
        from diffusers.image_processor import VaeImageProcessor
        from diffusers.pipelines.qwenimage.pipeline_qwenimage_edit import calculate_dimensions

        width, height, _ = calculate_dimensions(1024 * 1024, picture.width / picture.height)
        return VaeImageProcessor().resize(picture, height, width)

    def extra_inputs(self, model, cfg, batch, device, dtype):
        import torch

        out = {"true_cfg_scale": torch.full([batch], float(cfg))}
        if model.denoiser.config.guidance_embeds:
            out["guidance"] = torch.full([batch], cfg, device=device, dtype=torch.float32)
        return out

    def embeds(self, model, cond, latent):
        """The negative prompt rides along with the positive (guidance runs inside ``predict``)."""
        positive = {**cond.positive, **{"negative_" + k: v for k, v in cond.negative.items()}}
        if cond.references:
            tokens, shapes = _qwen_reference_tokens(cond.references, latent.samples.shape[0])
            positive.update(reference_latents=tokens, reference_shapes=shapes)
        return positive, dict(positive)

    def predict(self, model, x, t, embeds, controls=()):
        from diffusers import QwenImagePipeline

        import torch

        b, c, h, w = x.shape
        packed = QwenImagePipeline._pack_latents(x, b, c, h, w)
        hidden, shapes = packed, [(1, h // 2, w // 2)]
        if "reference_latents" in embeds:
            hidden = torch.cat([packed, embeds["reference_latents"].to(x.dtype)], dim=1)
            shapes += [tuple(int(v) for v in row) for row in embeds["reference_shapes"][0]]
        timestep = t.expand(b).to(x.dtype) / 1000

        def run(prefix):
            return model.denoiser(
                hidden_states=hidden, timestep=timestep, guidance=embeds.get("guidance"),
                encoder_hidden_states_mask=embeds.get(prefix + "encoder_hidden_states_mask"),
                encoder_hidden_states=embeds[prefix + "prompt_embeds"], img_shapes=[shapes] * b, return_dict=False,
            )[0][:, :packed.shape[1]]

        out = run("")
        scale = float(embeds["true_cfg_scale"][0])
        if scale > 1:  # true guidance, rescaled to the conditional prediction's norm, as the pipelines do
            negative = run("negative_")
            combined = negative + scale * (out - negative)
            out = combined * (torch.norm(out, dim=-1, keepdim=True) / torch.norm(combined, dim=-1, keepdim=True))
        return out.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def _qwen_reference_tokens(references, batch: int):
    """Reference latents -> (packed tokens (batch, n, 4c), their (frames, rows, columns) (batch, k, 3))."""
    from diffusers import QwenImagePipeline

    import torch

    tokens, shapes = [], []
    for ref in references:
        if ref.shape[0] != batch:
            if batch % ref.shape[0]:
                raise NodeUserError(f"a batch of {ref.shape[0]} reference latents cannot serve a batch of {batch}")
            ref = torch.cat([ref] * (batch // ref.shape[0]))
        b, c, h, w = ref.shape
        tokens.append(QwenImagePipeline._pack_latents(ref, b, c, h, w))
        shapes.append((1, h // 2, w // 2))
    return torch.cat(tokens, dim=1), torch.tensor(shapes).unsqueeze(0).expand(batch, -1, -1)


class Sana(FlowMatching):
    """Sana: a Gemma text encoder (with the pipeline's default instruction), a linear DiT on DC-AE latents.

    Latents stay in float32 whatever the transformer's dtype, as in diffusers' Sana pipeline.
    """

    id = "sana"
    title = "Sana"
    pipeline = "SanaPipeline"
    denoiser_name = "transformer"
    text_components = ("text_encoder", "tokenizer")

    def encode(self, te, prompt, negative, device):
        import inspect

        from diffusers import SanaPipeline

        instruction = inspect.signature(SanaPipeline.__call__).parameters["complex_human_instruction"].default
        pipe = _text_pipeline(self.pipeline, te)
        embeds, mask, negative_embeds, negative_mask = pipe.encode_prompt(
            prompt, True, negative_prompt=negative, num_images_per_prompt=1, device=device,
            complex_human_instruction=instruction)
        return Conditioning(self.id, {"prompt_embeds": embeds, "encoder_attention_mask": mask},
                            {"prompt_embeds": negative_embeds, "encoder_attention_mask": negative_mask}, prompt)

    def latent_dtype(self, model):
        import torch

        return torch.float32

    def noised(self, sched, clean, noise, t):
        if hasattr(sched, "scale_noise"):
            return sched.scale_noise(clean, t, noise)
        return sched.add_noise(clean, noise, t)  # DPM-Solver with flow sigmas interpolates the same way

    def predict(self, model, x, t, embeds, controls=()):
        transformer = model.denoiser
        timestep = t.expand(x.shape[0]) * transformer.config.timestep_scale
        out = transformer(
            x.to(transformer.dtype), encoder_hidden_states=embeds["prompt_embeds"].to(transformer.dtype),
            encoder_attention_mask=embeds["encoder_attention_mask"], timestep=timestep, return_dict=False,
        )[0].float()
        if transformer.config.out_channels // 2 == x.shape[1]:  # a learned-sigma model: keep the prediction half
            out = out.chunk(2, dim=1)[0]
        return out


FAMILIES: dict[str, Family] = {
    f.id: f for f in (StableDiffusion(), StableDiffusionXL(), StableDiffusion3(), Flux(), Sana(), QwenImage())
}

PIPELINE_FAMILIES = {
    "StableDiffusionPipeline": "sd",
    "StableDiffusionImg2ImgPipeline": "sd",
    "StableDiffusionInpaintPipeline": "sd",
    "StableDiffusionXLPipeline": "sdxl",
    "StableDiffusionXLImg2ImgPipeline": "sdxl",
    "StableDiffusionXLInpaintPipeline": "sdxl",
    "StableDiffusion3Pipeline": "sd3",
    "StableDiffusion3Img2ImgPipeline": "sd3",
    "StableDiffusion3InpaintPipeline": "sd3",
    "FluxPipeline": "flux",
    "FluxImg2ImgPipeline": "flux",
    "FluxInpaintPipeline": "flux",
    "FluxKontextPipeline": "flux",  # FLUX.1 Kontext: a Flux model that also sees reference latents
    "SanaPipeline": "sana",
    "QwenImagePipeline": "qwen_image",
    "QwenImageEditPipeline": "qwen_image",  # Qwen-Image-Edit: also shows its text encoder the reference picture
}


def family_of_pipeline(class_name: str, source: str) -> Family:
    try:
        return FAMILIES[PIPELINE_FAMILIES[class_name]]
    except KeyError:
        known = ", ".join(sorted(PIPELINE_FAMILIES))
        raise NodeUserError(f"{source}: a {class_name} is not a supported model family yet (supported: {known})") from None
