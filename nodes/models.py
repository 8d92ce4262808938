"""Model loaders: a diffusers pipeline folder, or a VAE on its own, from disk or the Hugging Face cache.

The loaded modules are node outputs, so they live in the engine's cache under its byte budget and
stay on the device between runs. Loading is offline (``local_files_only=True``); diffusers reads
weights with safetensors, or with ``torch.load(weights_only=True)`` for ``.bin`` files.
"""

from __future__ import annotations

import json

from nodegraph import Input, NodeUserError, Output, Param, PortType as T, node

from . import _model_files as files
from ._diffusion_types import DiffusionModel, TextEncoders, Vae
from ._families import family_of_pipeline

DTYPES = ("auto", "float32", "float16", "bfloat16")
TEXT_FAMILIES = ("auto", "sd", "sdxl", "sd3", "flux")  # the families whose text encoders ship as lone files
VAE_FAMILIES = ("auto", "sd", "sdxl", "sd3", "flux")
TEXT_ENCODER_NAMES = {"text_encoder", "text_encoder_2", "text_encoder_3"}
from nodegraph.models import MODEL_HINT  # noqa: E402  (the editor offers files.list_models() for these)


def _identity(kind: str):
    """A loader's fingerprint data: each file it reads (the model found in ``kind``'s ComfyUI folders too)."""
    def identity(params, ctx):
        ident = files.identity(params["model"], ctx, kind)
        for name in ("model_2", "model_3", "config"):  # the other files a loader may read
            if params.get(name):
                ident[name] = files.identity(params[name], ctx, kind if name != "config" else None)
        return ident
    return identity


def _config_param(what: str) -> Param:
    return Param("config", T.STRING, "", hint=MODEL_HINT,
                 description=f"lone files only: a diffusers folder (or its {what} folder) whose config to use "
                             f"instead of the shipped one")


@node(
    "model.checkpoint",
    title="Load Checkpoint",
    category="generate/models",
    params=[
        Param("model", T.STRING, "", hint=MODEL_HINT, kind="checkpoints",
              description="a diffusers pipeline folder: a path, a name in the model folders, or hf:org/name"),
        Param("dtype", T.ENUM, "auto", choices=DTYPES, description="auto: float16 on a GPU, float32 on the CPU"),
        Param("config", T.STRING, "", hint="model",
              description="single files only: a diffusers folder whose configs to use instead of the shipped ones"),
    ],
    outputs=[Output("model", T.MODEL), Output("text_encoder", T.TEXT_ENCODER), Output("vae", T.VAE)],
    identity=_identity("checkpoints"),
)
def load_checkpoint(ctx, model, dtype, config):
    """Load a whole pipeline (a diffusers folder or a single .safetensors file) and split it into its
    denoiser, text encoder(s) and VAE."""
    from diffusers import DiffusionPipeline

    from . import _single_file

    path = files.resolve(model, ctx, "checkpoints")
    torch_dtype = files.torch_dtype(dtype, ctx.device)
    if path.is_file():
        pipe = _single_file.load(path, files.resolve(config, ctx) if config else None, torch_dtype)
    else:
        index = path / "model_index.json"
        if not index.is_file():
            raise NodeUserError(f"{path} is not a diffusers pipeline folder (it has no model_index.json)")
        try:
            json.loads(index.read_text())["_class_name"]
        except (ValueError, KeyError) as e:
            raise NodeUserError(f"{index}: unreadable ({e})") from None
        try:
            pipe = DiffusionPipeline.from_pretrained(path, torch_dtype=torch_dtype, local_files_only=True)
        except (OSError, ValueError) as e:
            raise NodeUserError(f"cannot load {path}: {e}") from None
    family = family_of_pipeline(type(pipe).__name__, str(path))
    pipe.to(ctx.device)
    components = pipe.components
    denoiser = components.get("unet") or components.get("transformer")
    text = {k: components[k] for k in family.text_components if k in components}  # an edit pipeline adds some
    return {
        "model": DiffusionModel(family.id, denoiser.eval(), scheduler_config(pipe.scheduler), str(path)),
        "text_encoder": TextEncoders(family.id, text, str(path), _pipeline_options(pipe)),
        "vae": make_vae(components["vae"]),
    }


def scheduler_config(scheduler) -> dict:
    """A scheduler's settings with its class name, so Sampler's "default" can rebuild it."""
    return {**scheduler.config, "_class_name": type(scheduler).__name__}


def _pipeline_options(pipe) -> dict:
    """Pipeline settings that change how prompts are encoded."""
    options = {}
    if "force_zeros_for_empty_prompt" in pipe.config:
        options["force_zeros_for_empty_prompt"] = bool(pipe.config.force_zeros_for_empty_prompt)
    return options


def make_vae(module) -> Vae:
    """Wrap an AutoencoderKL, AutoencoderDC, AutoencoderTiny or AutoencoderKLQwenImage with the scaling its
    latents use (a tiny VAE's scaling_factor is 1: it reads and writes the denoiser's latents as they are)."""
    config = module.config
    if type(module).__name__ == "AutoencoderKLQwenImage":  # its pipelines' vae_scale_factor and normalisation
        return Vae("qwen", module.eval(), 1.0, 0.0, 2 ** len(module.temperal_downsample),
                   tuple(config.latents_mean), tuple(config.latents_std))
    kind = {"AutoencoderDC": "dc", "AutoencoderTiny": "tiny"}.get(type(module).__name__, "kl")
    if kind in ("kl", "tiny"):  # a tiny VAE (TAESD) registers its decoder's block_out_channels too
        downscale = 2 ** (len(config.block_out_channels) - 1)
    else:
        downscale = 2 ** (len(config.encoder_block_out_channels) - 1)
    return Vae(kind, module.eval(), float(config.scaling_factor or 1.0),
               float(getattr(config, "shift_factor", None) or 0.0), downscale)


@node(
    "model.vae",
    title="Load VAE",
    category="generate/models",
    params=[
        Param("model", T.STRING, "", hint=MODEL_HINT, kind="vae",
              description="a VAE folder (config.json and weights), a pipeline folder whose vae/ to use, or a lone "
                          ".safetensors VAE (sdxl_vae, Flux's ae); a tiny VAE folder (AutoencoderTiny: TAESD, "
                          "TAESDXL, TAEF1) decodes in a fraction of the time, for previews and live mode"),
        Param("dtype", T.ENUM, "auto", choices=DTYPES),
        _config_param("vae"),
        Param("family", T.ENUM, "auto", choices=VAE_FAMILIES,
              description="lone files only: whose latent scaling to use; auto: 16 latent channels are Flux's "
                          "unless the name says sd3, 4 are SD's unless the name says xl"),
    ],
    outputs=[Output("vae", T.VAE)],
    identity=_identity("vae"),
)
def load_vae(ctx, model, dtype, config, family):
    """Load an AutoencoderKL, AutoencoderDC (DC-AE) or AutoencoderTiny on its own, to swap a pipeline's VAE."""
    import diffusers

    from . import _split_files

    path = files.resolve(model, ctx, "vae")
    torch_dtype = files.torch_dtype(dtype, ctx.device)
    if path.is_file():
        module = _split_files.load_vae(path, files.resolve(config, ctx) if config else None, family, torch_dtype)
        return {"vae": make_vae(module.to(ctx.device))}
    if (path / "model_index.json").is_file():
        path = path / "vae"
    class_name = files.config_class(path, "a VAE folder")
    if class_name not in ("AutoencoderKL", "AutoencoderDC", "AutoencoderTiny", "AutoencoderKLQwenImage"):
        raise NodeUserError(f"{path} holds a {class_name}, not an AutoencoderKL, AutoencoderDC, AutoencoderTiny or "
                            f"AutoencoderKLQwenImage")
    cls = getattr(diffusers, class_name)
    try:
        module = cls.from_pretrained(path, torch_dtype=torch_dtype, local_files_only=True)
    except (OSError, ValueError) as e:
        raise NodeUserError(f"cannot load {path}: {e}") from None
    return {"vae": make_vae(module.to(ctx.device))}


DENOISER_CLASSES = {  # a bare component folder's class -> family (UNets are told apart by their config)
    "SD3Transformer2DModel": "sd3",
    "FluxTransformer2DModel": "flux",
    "SanaTransformer2DModel": "sana",
}
DEFAULT_SCHEDULERS = {  # the scheduler a family's pipelines usually ship, for a bare UNet or transformer
    "sd": {"_class_name": "EulerDiscreteScheduler", "beta_start": 0.00085, "beta_end": 0.012,
           "beta_schedule": "scaled_linear", "steps_offset": 1, "timestep_spacing": "leading"},
    "sdxl": {"_class_name": "EulerDiscreteScheduler", "beta_start": 0.00085, "beta_end": 0.012,
             "beta_schedule": "scaled_linear", "steps_offset": 1, "timestep_spacing": "leading"},
    "sd3": {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 3.0},
    "flux": {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 3.0, "use_dynamic_shifting": True,
             "base_shift": 0.5, "max_shift": 1.15, "base_image_seq_len": 256, "max_image_seq_len": 4096},
    "sana": {"_class_name": "DPMSolverMultistepScheduler", "flow_shift": 3.0, "use_flow_sigmas": True,
             "prediction_type": "flow_prediction"},
}


SCHNELL_SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 1.0, "use_dynamic_shifting": False,
                     "base_shift": 0.5, "max_shift": 1.15, "base_image_seq_len": 256, "max_image_seq_len": 4096}


def default_scheduler(family: str, module) -> dict:
    """The scheduler settings a bare denoiser samples with: its family's usual ones (FLUX.1-schnell's, a Flux
    without the guidance embedding, are a plain shift of 1)."""
    if family == "flux" and not module.config.guidance_embeds:
        return dict(SCHNELL_SCHEDULER)
    return dict(DEFAULT_SCHEDULERS[family])


def _pipeline_parts(path, wanted: set[str], torch_dtype):
    """Load only some components of a pipeline folder (the others are passed as None, so never read)."""
    from diffusers import DiffusionPipeline

    index = json.loads((path / "model_index.json").read_text())
    skip = {k: None for k, v in index.items() if not k.startswith("_") and isinstance(v, list) and k not in wanted}
    try:
        return DiffusionPipeline.from_pretrained(path, torch_dtype=torch_dtype, local_files_only=True, **skip)
    except (OSError, ValueError, TypeError) as e:
        raise NodeUserError(f"cannot load {path}: {e}") from None


@node(
    "model.denoiser",
    title="Load Diffusion Model",
    category="generate/models",
    params=[
        Param("model", T.STRING, "", hint=MODEL_HINT, kind="diffusion_models",
              description="a UNet or transformer folder (config.json and weights), a pipeline folder, or a lone "
                          ".safetensors UNet/transformer (SD 1.x, SDXL, SD3, Flux, Sana)"),
        Param("dtype", T.ENUM, "auto", choices=DTYPES),
        _config_param("unet or transformer"),
    ],
    outputs=[Output("model", T.MODEL)],
    identity=_identity("diffusion_models"),
)
def load_denoiser(ctx, model, dtype, config):
    """Load only the UNet or transformer, e.g. a fine-tune shared without the rest of its pipeline."""
    import diffusers

    from . import _split_files

    path = files.resolve(model, ctx, "diffusion_models")
    torch_dtype = files.torch_dtype(dtype, ctx.device)
    if path.is_file():
        family, module = _split_files.load_denoiser(path, files.resolve(config, ctx) if config else None, torch_dtype)
        return {"model": DiffusionModel(family, module.to(ctx.device), default_scheduler(family, module), str(path))}
    if (path / "model_index.json").is_file():
        pipe = _pipeline_parts(path, {"unet", "transformer", "scheduler"}, torch_dtype)
        family = family_of_pipeline(type(pipe).__name__, str(path))
        denoiser = pipe.components.get("unet") or pipe.components.get("transformer")
        return {"model": DiffusionModel(family.id, denoiser.to(ctx.device).eval(), scheduler_config(pipe.scheduler),
                                        str(path))}
    class_name = files.config_class(path, "a pipeline or a model folder")
    config = json.loads((path / "config.json").read_text())
    if class_name == "UNet2DConditionModel":
        family = "sdxl" if config.get("addition_embed_type") == "text_time" else "sd"
    elif class_name in DENOISER_CLASSES:
        family = DENOISER_CLASSES[class_name]
    else:
        raise NodeUserError(f"{path} holds a {class_name}, not a UNet or transformer this program can sample with")
    try:
        module = getattr(diffusers, class_name).from_pretrained(path, torch_dtype=torch_dtype, local_files_only=True)
    except (OSError, ValueError) as e:
        raise NodeUserError(f"cannot load {path}: {e}") from None
    return {"model": DiffusionModel(family, module.to(ctx.device).eval(), default_scheduler(family, module), str(path))}


@node(
    "model.text_encoder",
    title="Load Text Encoder",
    category="generate/models",
    params=[
        Param("model", T.STRING, "", hint=MODEL_HINT, kind="text_encoders",
              description="a pipeline folder whose text encoder(s) to load, or a lone .safetensors text encoder "
                          "(clip_l, clip_g, t5xxl)"),
        Param("dtype", T.ENUM, "auto", choices=DTYPES),
        Param("model_2", T.STRING, "", hint=MODEL_HINT, kind="text_encoders",
              description="lone files: the second text encoder file"),
        Param("model_3", T.STRING, "", hint=MODEL_HINT, kind="text_encoders",
              description="lone files: the third text encoder file"),
        Param("family", T.ENUM, "auto", choices=TEXT_FAMILIES,
              description="lone files: sd = CLIP-L; sdxl = CLIP-L + CLIP-G; sd3 = CLIP-L + CLIP-G + T5; "
                          "flux = CLIP-L + T5; auto: from which files are given"),
        _config_param("pipeline"),
    ],
    outputs=[Output("text_encoder", T.TEXT_ENCODER)],
    identity=_identity("text_encoders"),
)
def load_text_encoder(ctx, model, dtype, model_2, model_3, family, config):
    """Load only a pipeline's text encoder(s) and tokenizer(s), e.g. to pair them with another denoiser, or a
    family's text encoders from lone files (ComfyUI's models/clip)."""
    from . import _split_files

    path = files.resolve(model, ctx, "text_encoders")
    if path.is_file():
        paths = [path] + [files.resolve(ref, ctx, "text_encoders") for ref in (model_2, model_3) if ref]
        family, text, options = _split_files.load_text_encoders(
            paths, family, files.resolve(config, ctx) if config else None, files.torch_dtype(dtype, ctx.device))
        for name in TEXT_ENCODER_NAMES & set(text):
            text[name].to(ctx.device)
        return {"text_encoder": TextEncoders(family, text, " + ".join(str(p) for p in paths), options)}
    if not (path / "model_index.json").is_file():
        raise NodeUserError(f"{path} is not a pipeline folder: text encoders load with their tokenizers from one")
    index = json.loads((path / "model_index.json").read_text())
    family = family_of_pipeline(index.get("_class_name", "?"), str(path))
    pipe = _pipeline_parts(path, set(family.text_components), files.torch_dtype(dtype, ctx.device))
    pipe.to(ctx.device)
    text = {k: pipe.components[k] for k in family.text_components if k in pipe.components}
    return {"text_encoder": TextEncoders(family.id, text, str(path), _pipeline_options(pipe))}


@node(
    "model.shift",
    title="Sampling Shift",
    category="generate/models",
    inputs=[Input("model", T.MODEL)],
    params=[Param("shift", T.FLOAT, 3.0, min=0.01, max=100.0, step=0.05,
                  description="how far a flow model's schedule leans towards the noisy end (SD3's 3.0); "
                              "replaces a resolution-dependent shift")],
    outputs=[Output("model", T.MODEL)],
)
def sampling_shift(ctx, model, shift):
    """Set the timestep shift of a flow-matching model's scheduler (ComfyUI's ModelSamplingSD3)."""
    import dataclasses

    config = dict(model.scheduler_config)
    keys = [k for k in ("shift", "flow_shift") if k in config]
    if not keys:
        raise NodeUserError(f"this {model.family} model's scheduler has no shift: Sampling Shift is for flow models")
    config.update({k: shift for k in keys}, use_dynamic_shifting=False)
    return {"model": dataclasses.replace(model, scheduler_config=config)}
