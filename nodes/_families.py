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

    def predict(self, model: DiffusionModel, x, t, embeds: dict[str, Any]):
        raise NotImplementedError


class StableDiffusion(Family):
    """SD 1.x and 2.x: one CLIP text encoder, a UNet predicting noise (epsilon) or velocity (v)."""

    id = "sd"
    title = "Stable Diffusion 1.x/2.x"
    text_components = ("text_encoder", "tokenizer")

    def encode(self, te, prompt, negative, device):
        from diffusers import StableDiffusionPipeline

        pipe = StableDiffusionPipeline(
            vae=None, unet=None, scheduler=None, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False, **{k: te.components[k] for k in self.text_components},
        )
        positive, negative_embeds = pipe.encode_prompt(prompt, device, 1, True, negative_prompt=negative)
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


FAMILIES: dict[str, Family] = {f.id: f for f in (StableDiffusion(),)}

PIPELINE_FAMILIES = {
    "StableDiffusionPipeline": "sd",
    "StableDiffusionImg2ImgPipeline": "sd",
    "StableDiffusionInpaintPipeline": "sd",
}


def family_of_pipeline(class_name: str, source: str) -> Family:
    try:
        return FAMILIES[PIPELINE_FAMILIES[class_name]]
    except KeyError:
        known = ", ".join(sorted(PIPELINE_FAMILIES))
        raise NodeUserError(f"{source}: a {class_name} is not a supported model family yet (supported: {known})") from None
