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
    flow = False  # flow matching (SD3, Flux, Sana) rather than noise prediction
    schedulers: tuple[str, ...] = UNET_SCHEDULERS
    text_components: tuple[str, ...] = ()

    def encode(self, te: TextEncoders, prompt: str, negative: str, device) -> Conditioning:
        raise NotImplementedError

    def check(self, model: DiffusionModel, cond: Conditioning) -> None:
        """Refuse, in words, conditioning this model cannot use."""
        if cond.family != model.family:
            raise NodeUserError(
                f"the conditioning was made by a {FAMILIES[cond.family].title} text encoder but the model is "
                f"{self.title}; connect the text encoder loaded with this model"
            )

    def embeds(self, model: DiffusionModel, cond: Conditioning, latent) -> tuple[dict, dict]:
        """Positive and negative denoiser inputs by name, before batching (a family may add its own)."""
        return dict(cond.positive), dict(cond.negative)

    def predict(self, model: DiffusionModel, x, t, embeds: dict[str, Any]):
        raise NotImplementedError


def _text_pipeline(class_name: str, te: TextEncoders, **kwargs):
    """A diffusers pipeline holding only the text components, to call its own encode_prompt."""
    import diffusers

    cls = getattr(diffusers, class_name)
    return cls(vae=None, unet=None, scheduler=None, **te.components, **kwargs)


class StableDiffusion(Family):
    """SD 1.x and 2.x: one CLIP text encoder, a UNet predicting noise (epsilon) or velocity (v)."""

    id = "sd"
    title = "Stable Diffusion 1.x/2.x"
    text_components = ("text_encoder", "tokenizer")

    def encode(self, te, prompt, negative, device):
        pipe = _text_pipeline("StableDiffusionPipeline", te, safety_checker=None, feature_extractor=None,
                              requires_safety_checker=False)
        positive, negative_embeds = pipe.encode_prompt(prompt, device, 1, True, negative_prompt=negative or None)
        return Conditioning(self.id, {"prompt_embeds": positive}, {"prompt_embeds": negative_embeds}, prompt)

    def check(self, model, cond):
        super().check(model, cond)
        width, want = cond.positive["prompt_embeds"].shape[-1], model.denoiser.config.cross_attention_dim
        if width != want:
            raise NodeUserError(
                f"the conditioning is {width} wide but this UNet expects {want} (an SD 1.x text encoder with an "
                f"SD 2.x model, or the reverse?)"
            )

    def predict(self, model, x, t, embeds):
        return model.denoiser(
            x, t, encoder_hidden_states=embeds["prompt_embeds"], timestep_cond=embeds.get("timestep_cond"),
            return_dict=False,
        )[0]


class StableDiffusionXL(StableDiffusion):
    """SDXL: two CLIP text encoders (one pooled), and the picture's size as extra conditioning."""

    id = "sdxl"
    title = "Stable Diffusion XL"
    text_components = ("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")

    def encode(self, te, prompt, negative, device):
        pipe = _text_pipeline("StableDiffusionXLPipeline", te,
                              force_zeros_for_empty_prompt=te.options.get("force_zeros_for_empty_prompt", True))
        embeds, negative_embeds, pooled, negative_pooled = pipe.encode_prompt(
            prompt, device=device, num_images_per_prompt=1, do_classifier_free_guidance=True,
            negative_prompt=negative or None)
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

    def predict(self, model, x, t, embeds):
        added = {"text_embeds": embeds["text_embeds"], "time_ids": embeds["time_ids"]}
        return model.denoiser(
            x, t, encoder_hidden_states=embeds["prompt_embeds"], timestep_cond=embeds.get("timestep_cond"),
            added_cond_kwargs=added, return_dict=False,
        )[0]


FAMILIES: dict[str, Family] = {f.id: f for f in (StableDiffusion(), StableDiffusionXL())}

PIPELINE_FAMILIES = {
    "StableDiffusionPipeline": "sd",
    "StableDiffusionImg2ImgPipeline": "sd",
    "StableDiffusionInpaintPipeline": "sd",
    "StableDiffusionXLPipeline": "sdxl",
    "StableDiffusionXLImg2ImgPipeline": "sdxl",
    "StableDiffusionXLInpaintPipeline": "sdxl",
}


def family_of_pipeline(class_name: str, source: str) -> Family:
    try:
        return FAMILIES[PIPELINE_FAMILIES[class_name]]
    except KeyError:
        known = ", ".join(sorted(PIPELINE_FAMILIES))
        raise NodeUserError(f"{source}: a {class_name} is not a supported model family yet (supported: {known})") from None
