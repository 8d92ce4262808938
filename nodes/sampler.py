"""The Sampler: one denoising loop for every family, on diffusers schedulers and models.

txt2img starts from noise (an Empty Latent), img2img from a latent and a denoise strength, inpainting
from an Inpaint Encode latent: a 9-channel inpainting model sees the mask and the masked picture, any
other model has the unmasked area blended back in at every step. The loop follows the diffusers
pipelines step for step, so the same components, seed and scheduler give the same picture.
"""

from __future__ import annotations

import dataclasses
import inspect
import weakref

from nodegraph import Input, NodeUserError, Output, Param, PortType as T, node

from . import _region_sampling as regions
from ._diffusion_types import Latent
from ._families import FAMILIES
from .ip_adapter import installed
from .lora import activate
from .model_patches import apply_freeu, step_mask
from .perturbed_attention import perturbed

SCHEDULERS = {
    "default": (None, {}),  # the scheduler the model was saved with
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_ancestral": ("EulerAncestralDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler",
                        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
    "ddim": ("DDIMScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "lcm": ("LCMScheduler", {}),
    "flow_euler": ("FlowMatchEulerDiscreteScheduler", {}),
}


def make_scheduler(name: str, model):
    """A fresh diffusers scheduler of the chosen kind, configured from the model's own settings."""
    import diffusers

    family = FAMILIES[model.family]
    if name not in family.schedulers:
        raise NodeUserError(f"scheduler {name!r} does not fit a {family.title} model; use one of "
                            f"{', '.join(family.schedulers)}")
    if family.flow and name == "euler":
        name = "flow_euler"  # Euler on a flow-matching model is the flow-matching Euler
    class_name, overrides = SCHEDULERS[name]
    class_name = class_name or model.scheduler_config["_class_name"]
    return getattr(diffusers, class_name).from_config(model.scheduler_config, **overrides)


def _step_kwargs(scheduler, generator) -> dict:
    accepted = set(inspect.signature(scheduler.step).parameters)
    kwargs = {"eta": 0.0} if "eta" in accepted else {}
    if "generator" in accepted:
        kwargs["generator"] = generator
    return kwargs


COMPILE_MODES = {"off": None, "compile": "default", "compile+cudagraphs": "reduce-overhead"}
_compiled: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # denoiser -> {mode: compiled module}


def compiled(model, mode: str):
    """The model with its denoiser wrapped in torch.compile (compiled once per module and mode)."""
    if COMPILE_MODES[mode] is None:
        return model
    import torch

    per_module = _compiled.setdefault(model.denoiser, {})
    if mode not in per_module:
        per_module[mode] = torch.compile(model.denoiser, mode=COMPILE_MODES[mode])
    return dataclasses.replace(model, denoiser=per_module[mode])


def latent_preview(latents):
    """A cheap look at the first picture of the batch: three latent channels stretched to [0, 1]."""
    x = latents[:1, :3].float()
    if x.shape[1] < 3:
        x = x[:, :1].expand(-1, 3, -1, -1)
    low = x.amin(dim=(2, 3), keepdim=True)
    high = x.amax(dim=(2, 3), keepdim=True)
    return ((x - low) / (high - low).clamp_min(1e-6)).cpu()


@node(
    "sampling.sampler",
    title="Sampler",
    category="generate/sampling",
    inputs=[
        Input("model", T.MODEL),
        Input("conditioning", T.CONDITIONING),
        Input("latent", T.LATENT, description="Empty Latent (txt2img), VAE Encode (img2img) or Inpaint Encode"),
        Input("negative", T.CONDITIONING, optional=True,
              description="a negative prompt as conditioning of its own (ComfyUI's way); when linked, its prompt "
                          "replaces the negative of 'conditioning'"),
    ],
    params=[
        Param("seed", T.SEED, 0),
        Param("steps", T.INT, 20, min=1, max=1000),
        Param("cfg", T.FLOAT, 7.0, min=0.0, max=50.0, step=0.5, description="classifier-free guidance scale"),
        Param("scheduler", T.ENUM, "default", choices=tuple(SCHEDULERS)),
        Param("denoise", T.FLOAT, 1.0, min=0.0, max=1.0, step=0.01,
              description="img2img strength: how much of the input latent is replaced"),
        Param("start_step", T.INT, 0, min=0, max=1000,
              description="continue a latent another Sampler stopped at this step (no noise is added)"),
        Param("end_step", T.INT, -1, min=-1, max=1000, description="stop here and keep the leftover noise; -1: all"),
        Param("compile", T.ENUM, "off", choices=tuple(COMPILE_MODES),
              description="torch.compile the denoiser on a GPU: the first run compiles (1-2 min); "
                          "compile+cudagraphs was 2.4-3.5x faster than off on an H100"),
    ],
    outputs=[Output("latent", T.LATENT)],
)
def sampler(ctx, model, conditioning, latent, seed, steps, cfg, scheduler, denoise, start_step, end_step, compile,
            negative=None):
    """Denoise a latent with a model and its conditioning, reporting progress and a preview every step."""
    import torch
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import retrieve_timesteps
    from diffusers.utils.torch_utils import randn_tensor

    family = FAMILIES[model.family]
    conditioning = regions.checked(family, model, conditioning, negative)
    device, dtype = ctx.device, family.latent_dtype(model)
    end_step = steps if end_step == -1 else end_step
    if not 0 <= start_step < end_step <= steps:
        raise NodeUserError(f"need 0 <= start_step < end_step <= steps, got {start_step}, {end_step}, {steps}")
    if denoise < 1.0 and (start_step, end_step) != (0, steps):
        raise NodeUserError("use either denoise (img2img) or start/end steps, not both")
    inpaint_channels = family.input_channels(model) != latent.channels
    if inpaint_channels and latent.masked is None:
        raise NodeUserError(f"this is an inpainting model ({family.input_channels(model)} input channels): "
                            f"feed it an Inpaint Encode latent")

    sched = make_scheduler(scheduler, model)
    generator = torch.Generator("cpu").manual_seed(seed)  # a CPU generator: the same picture on any device
    init = latent.samples.to(device=device, dtype=dtype)
    batch = init.shape[0]
    timesteps, _ = retrieve_timesteps(sched, steps, device, **family.timestep_kwargs(sched, model, init, steps))
    schedule, first = len(timesteps), 0  # where this run's steps lie in the whole schedule (timestep ranges)
    stop = timesteps[end_step * sched.order] if end_step < steps else None  # where the run stops (None: clean)
    from_noise = latent.meta.get("empty") or (latent.mask is not None and denoise >= 1.0)
    if denoise < 1.0:  # img2img: skip the first part of the schedule, as the family's img2img pipeline does
        begin = family.img2img_begin(steps, denoise) * sched.order
        timesteps, first = timesteps[begin:], begin
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(begin)
        if len(timesteps) == 0:
            return {"latent": latent}
    elif (start_step, end_step) != (0, steps):
        timesteps, first = timesteps[start_step * sched.order: end_step * sched.order], start_step * sched.order
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(start_step * sched.order)

    noise = randn_tensor(init.shape, generator=generator, device=device, dtype=dtype)
    if start_step > 0:
        latents = init  # already noised to this step by the Sampler that stopped there
    elif from_noise:
        latents = family.start(sched, noise)
    else:
        latents = family.noised(sched, init, noise, timesteps[:1].repeat(batch))

    guided = family.guided(model, cfg)
    guidance = cfg if conditioning.guidance is None else conditioning.guidance
    extra_inputs = family.extra_inputs(model, guidance, batch, device, dtype)
    positions = [(first + i) / schedule for i in range(len(timesteps))]
    entries = regions.entries(model, conditioning, latent, positions, device)  # each prompt's region and weight
    for entry in entries:
        entry.embeds = {**_batch_embeds(*family.embeds(model, entry.cond, latent), batch, guided, device),
                        **extra_inputs}
        entry.controls = _prepare_controls(entry.cond.controls, latent, batch, guided, device, dtype)
    mask = masked = None
    if latent.mask is not None:
        mask = latent.mask.to(device=device, dtype=dtype)
        masked = latent.masked.to(device=device, dtype=dtype) if latent.masked is not None else None
    extra = _step_kwargs(sched, generator)
    total = len(timesteps)
    activate(model.denoiser, model.loras)
    apply_freeu(model.denoiser, model.freeu)
    runner = compiled(model, compile)
    with torch.inference_mode(), installed(model.denoiser, regions.ip_adapters(conditioning), batch, guided, device,
                                          dtype) as image_embeds, perturbed(model, guided, cfg) as guide:
        for entry in entries if image_embeds is not None else ():
            entry.embeds["image_embeds"] = image_embeds
        for i, t in enumerate(timesteps):
            x = torch.cat([latents] * 2) if guided else latents
            x = family.scale_input(sched, x, t)
            if inpaint_channels:
                extra_in = torch.cat([mask, masked], dim=1)
                x = torch.cat([x, torch.cat([extra_in] * 2) if guided else extra_in], dim=1)
            guided_predict = lambda *args: guide(family.predict, *args)  # noqa: E731  (with CFG, and PAG)
            prediction = regions.predict(guided_predict, runner, x, t, entries, positions[i], i, total)
            latents = sched.step(prediction, t, latents, **extra, return_dict=False)[0]
            if mask is not None and not inpaint_channels:  # keep the unmasked area on the input's path
                known = init
                if i < total - 1:
                    known = family.noised(sched, init, noise, timesteps[i + 1: i + 2])
                step = step_mask(model, mask, timesteps, i, stop)  # Differential Diffusion: this step's mask
                latents = (1 - step) * known + step * latents
            ctx.progress((i + 1) / total, preview=lambda: latent_preview(latents))
    meta = {k: v for k, v in latent.meta.items() if k != "empty"}
    return {"latent": Latent(latents, latent.channels, latent.mask, latent.masked, latent.source_image,
                             latent.source_mask, meta)}


def _prepare_controls(applied, latent, batch: int, guided: bool, device, dtype) -> list:
    """Each ControlNet's picture sized, batched and doubled for guidance (and, for SD3 and Flux nets,
    encoded by the VAE), as diffusers' ControlNet pipelines prepare it."""
    import torch
    from diffusers.image_processor import VaeImageProcessor

    if not applied:
        return []
    height, width = latent.meta["pixel_size"]
    prepared = []
    for control in applied:
        to_latents = control.vae is not None
        processor = VaeImageProcessor(do_convert_rgb=True, do_normalize=to_latents)  # [-1, 1] for the VAE
        image = processor.preprocess(control.image.float().cpu(), height=height, width=width).to(torch.float32)
        image = image.repeat_interleave(batch if image.shape[0] == 1 else 1, dim=0).to(device=device, dtype=dtype)
        if guided:
            image = torch.cat([image] * 2)
        if to_latents:
            image = _control_latents(control, image)
        prepared.append((control.net.module, image, control.strength, control))
    return prepared


def _control_latents(control, image):
    """The control picture as scaled latents (the distribution's mean: the same picture, the same latents)."""
    import torch

    vae = control.vae
    module = control.net.module
    shift = 0.0 if getattr(module.config, "force_zeros_for_pooled_projection", False) else vae.shift_factor
    with torch.inference_mode():
        out = vae.module.encode(image.to(device=vae.module.device, dtype=vae.module.dtype))
    raw = out.latent_dist.mode() if hasattr(out, "latent_dist") else out.latent
    return ((raw - shift) * vae.scaling_factor).to(device=image.device, dtype=image.dtype)


def _batch_embeds(positives: dict, negatives: dict, batch: int, guided: bool, device) -> dict:
    """Repeat each input for the batch and, with guidance, put the negative half first (as diffusers does);
    everything goes to the sampling device (SDXL's size conditioning is made on the CPU)."""
    import torch

    out = {}
    for name, positive in positives.items():
        positive = positive.to(device)
        positive = positive.repeat_interleave(batch, dim=0) if positive.shape[0] != batch else positive
        if guided:
            negative = negatives[name].to(device)
            negative = negative.repeat_interleave(batch, dim=0) if negative.shape[0] != batch else negative
            positive = torch.cat([negative, positive])
        out[name] = positive
    return out
