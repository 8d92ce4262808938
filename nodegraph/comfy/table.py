"""The ComfyUI node classes we convert, as data: which of our node types each becomes, how its widgets,
inputs and outputs are named here, and the few conversions that need a line of code.

Widget orders are those of ComfyUI's ``INPUT_TYPES`` (a UI file stores widget values by position);
``CONTROL`` marks the frontend's ``control_after_generate`` value that follows a seed. An output written
``"=positive"`` passes through whatever fed the ComfyUI input ``positive`` (ComfyUI threads positive and
negative conditioning through nodes that only touch one of them here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from .graph import CONTROL_VALUES

CONTROL = "$control"  # the seed widget's control_after_generate slot in UI files


@dataclass(frozen=True)
class Spec:
    """One ComfyUI class -> one of our node types.

    ``params`` maps a ComfyUI widget to our parameter, either by name or as ``(name, convert)`` where
    ``convert(value, notes)`` returns our value; ``derive(values, notes)`` computes parameters from
    several widgets at once; ``fixed`` sets parameters ComfyUI has no widget for.
    """

    type: str
    widgets: tuple[str, ...] = ()
    inputs: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    outputs: tuple[str | None, ...] = ()
    derive: Callable[[dict, list], dict] | None = None
    fixed: dict[str, Any] = field(default_factory=dict)


# ----- value conversions ------------------------------------------------------------------------------

SAMPLERS = {  # ComfyUI sampler_name -> (our scheduler, exact?)
    "euler": ("euler", True), "euler_ancestral": ("euler_ancestral", True), "dpmpp_2m": ("dpmpp_2m", True),
    "ddim": ("ddim", True), "uni_pc": ("unipc", True), "uni_pc_bh2": ("unipc", False), "lcm": ("lcm", True),
    "euler_cfg_pp": ("euler", False), "euler_ancestral_cfg_pp": ("euler_ancestral", False),
    "heun": ("euler", False), "heunpp2": ("euler", False), "dpm_2": ("dpmpp_2m", False),
    "dpm_2_ancestral": ("euler_ancestral", False), "lms": ("euler", False), "dpm_fast": ("dpmpp_2m", False),
    "dpm_adaptive": ("dpmpp_2m", False), "dpmpp_2s_ancestral": ("euler_ancestral", False),
    "dpmpp_sde": ("dpmpp_2m", False), "dpmpp_sde_gpu": ("dpmpp_2m", False), "dpmpp_2m_cfg_pp": ("dpmpp_2m", False),
    "dpmpp_2m_sde": ("dpmpp_2m", False), "dpmpp_2m_sde_gpu": ("dpmpp_2m", False), "dpmpp_3m_sde": ("dpmpp_2m", False),
    "dpmpp_3m_sde_gpu": ("dpmpp_2m", False), "ipndm": ("euler", False), "ipndm_v": ("euler", False),
    "deis": ("unipc", False), "res_multistep": ("dpmpp_2m", False), "gradient_estimation": ("euler", False),
}
KARRAS = {"dpmpp_2m": "dpmpp_2m_karras"}  # our schedulers that have a Karras-sigma form
SCHEDULES = {"normal", "karras", "simple", "sgm_uniform", "exponential", "ddim_uniform", "beta",
             "linear_quadratic", "kl_optimal"}


def scheduler_for(sampler_name: str, schedule: str, notes: list) -> str:
    """ComfyUI's sampler and scheduler names -> our nearest diffusers scheduler."""
    ours, exact = SAMPLERS.get(sampler_name, ("euler", False))
    if not exact:
        notes.append(f"sampler {sampler_name!r} has no diffusers twin; using {ours!r}")
    if schedule == "karras":
        if ours in KARRAS:
            return KARRAS[ours]
        notes.append(f"scheduler 'karras' with {sampler_name!r}: diffusers' {ours!r} keeps its own sigmas")
    elif schedule not in ("normal", "simple", "sgm_uniform"):
        notes.append(f"scheduler {schedule!r} has no diffusers twin; the model's own spacing is used")
    return ours


def _sampler(values: dict, notes: list) -> dict:
    return {"scheduler": scheduler_for(str(values.get("sampler_name", "euler")),
                                       str(values.get("scheduler", "normal")), notes)}


def _sampler_advanced(values: dict, notes: list) -> dict:
    out = _sampler(values, notes)
    steps = int(values.get("steps", 20))
    start, end = int(values.get("start_at_step", 0)), int(values.get("end_at_step", 10000))
    out["start_step"] = min(start, steps)
    out["end_step"] = -1 if end >= steps else end
    if (values.get("add_noise", "enable") == "enable") != (start == 0):
        notes.append(f"add_noise {values.get('add_noise')!r} with start_at_step {start}: here a Sampler adds noise "
                     f"exactly when it starts at step 0")
    if end < steps and values.get("return_with_leftover_noise", "disable") == "disable":
        notes.append("return_with_leftover_noise 'disable' before the last step: here the latent keeps its "
                     "leftover noise")
    return out


WEIGHTED = re.compile(r"\([^()]*:\s*-?[0-9.]+\s*\)")  # ComfyUI's (words:1.2) emphasis


def _prompt_notes(values: dict, notes: list) -> dict:
    """The prompt goes across as written; say where ComfyUI would read more into it."""
    text = str(values.get("text", ""))
    if WEIGHTED.search(text):
        notes.append("the prompt's (words:weight) emphasis is read as plain text here")
    if "embedding:" in text:
        notes.append("the prompt names a textual-inversion embedding ('embedding:...'), read as plain text here")
    return {}


def _inpaint_notes(values: dict, notes: list) -> dict:
    if values.get("noise_mask", True) is False:
        notes.append("noise_mask off: here the Sampler still keeps the picture outside the mask")
    return {}


def _clip_layer(value: Any, notes: list) -> int:
    return max(0, -int(value) - 1)  # ComfyUI's -1 is the last layer (no skip), -2 skips one


def _weight_dtype(value: Any, notes: list) -> str:
    if value not in ("default", None):
        notes.append(f"weight_dtype {value!r}: the file's own storage type is kept")
    return "auto"


IMAGE_METHODS = {"nearest-exact": "nearest", "bilinear": "bilinear", "bicubic": "bicubic", "lanczos": "lanczos"}
LATENT_METHODS = {"nearest-exact": "nearest", "bilinear": "bilinear", "bicubic": "bicubic", "area": "area"}


def _method(methods: dict) -> Callable[[Any, list], str]:
    """ComfyUI's upscale_method -> ours from ``methods``, bilinear (noted) where there is no twin."""
    def convert(value: Any, notes: list) -> str:
        if value not in methods:
            notes.append(f"upscale_method {value!r}: using 'bilinear'")
        return methods.get(value, "bilinear")
    return convert


def _latent_crop(values: dict, notes: list) -> dict:
    if values.get("crop", "disabled") != "disabled":
        notes.append(f"crop {values['crop']!r}: the latent is stretched to the new size, not cropped to its aspect")
    return {}


def _grow_notes(values: dict, notes: list) -> dict:
    if values.get("tapered_corners", True) is False:
        notes.append("tapered_corners off: the mask grows with round corners here")
    return {}


def _complement(value: Any, notes: list) -> float:
    return round(1.0 - float(value), 6)  # ComfyUI weighs the first conditioning; our weight is the second's


def _range_notes(values: dict, notes: list) -> dict:
    if (float(values.get("start", 0.0)), float(values.get("end", 1.0))) != (0.0, 1.0):
        notes.append("start and end are fractions of the Sampler's steps here, of the model's noise levels in "
                     "ComfyUI (the same steps on an evenly spaced schedule)")
    return {}


def _freeu_notes(values: dict, notes: list) -> dict:
    notes.append("ComfyUI's FreeU picks the up-blocks by channel count (b1 where 4x the base channels, b2 at 2x); "
                 "diffusers' FreeU, used here, by up-block stage (b1 the first, b2 the second), so pictures differ")
    return {}


def _save_notes(values: dict, notes: list) -> dict:
    notes.append("writes a diffusers folder of safetensors files (loadable by Load Checkpoint) rather than "
                 "ComfyUI's single .safetensors file")
    return {}


def _int_color(value: Any, notes: list) -> str:
    return f"#{int(value) & 0xFFFFFF:06x}"


def _threshold(value: Any, notes: list) -> int:
    return max(0, min(255, round(float(value) * 255)))


def _canny_notes(values: dict, notes: list) -> dict:
    notes.append("Canny: OpenCV's edge detector with the thresholds scaled to 0-255 (ComfyUI's runs in kornia)")
    return {}


def _crop_mode(value: Any, notes: list) -> str:
    return "fill" if value == "center" else "exact"


def _text_family(value: Any, notes: list) -> str:
    families = {"stable_diffusion": "sd", "sdxl": "sdxl", "sd3": "sd3", "flux": "flux"}
    if value not in families:
        notes.append(f"text encoder type {value!r} is not one this program loads; the family is guessed from the files")
    return families.get(value, "auto")


def _blur_radius(values: dict, notes: list) -> dict:
    notes.append("Image Blur: Pillow's Gaussian blur with radius = sigma (ComfyUI also cuts the kernel at blur_radius)")
    return {"radius": float(values.get("sigma", 1.0))}


def _sharpen(values: dict, notes: list) -> dict:
    notes.append("Image Sharpen: Pillow's sharpness enhancement with factor 1 + alpha (ComfyUI sharpens with a kernel)")
    return {"factor": min(10.0, 1.0 + float(values.get("alpha", 1.0)))}


def _feather(values: dict, notes: list) -> dict:
    sides = [int(values.get(k, 0)) for k in ("left", "top", "right", "bottom")]
    if len(set(sides)) > 1:
        notes.append(f"Feather Mask feathers all sides by one radius here; sides {sides} become {max(sides)}")
    return {"radius": float(max(sides))}


def _batch_notes(values: dict, notes: list) -> dict:
    notes.append("Image Batch: a second picture of another size is fitted (centre crop) with Lanczos here, "
                 "with bilinear in ComfyUI")
    return {}


def _image_scale(values: dict, notes: list) -> dict:
    """A side of 0 keeps the aspect: fit inside the other side and the largest width (or height) allowed."""
    width, height = int(values.get("width", 512)), int(values.get("height", 512))
    if width == 0 and height == 0:
        notes.append("Upscale Image with both sides 0 leaves the picture as it is here only at 16384x16384")
    if width == 0 or height == 0:
        return {"width": width or 16384, "height": height or 16384, "mode": "fit"}
    return {}


def _pag_notes(values: dict, notes: list) -> dict:
    notes.append("PerturbedAttentionGuidance: ComfyUI perturbs the self-attention of the UNet's middle block, which "
                 "is 'mid', the default here for SD/SDXL; on SD3 (no middle block, where ComfyUI's patch finds no "
                 "layer) the default here is diffusers' 'blocks.1'")
    return {}


def _differential_strength(values: dict, notes: list) -> dict:
    if "strength" in values and not values["strength"]:  # ComfyUI: `if strength and strength < 1` -> full strength
        notes.append("DifferentialDiffusion strength 0 acts as 1 in ComfyUI; written as 1 here")
        return {"strength": 1.0}
    return {}


# ----- the table --------------------------------------------------------------------------------------

TABLE: dict[str, Spec] = {
    "CheckpointLoaderSimple": Spec("model.checkpoint", ("ckpt_name",), params={"ckpt_name": "model"},
                                   outputs=("model", "text_encoder", "vae")),
    "UNETLoader": Spec("model.denoiser", ("unet_name", "weight_dtype"),
                       params={"unet_name": "model", "weight_dtype": ("dtype", _weight_dtype)}, outputs=("model",)),
    "CLIPLoader": Spec("model.text_encoder", ("clip_name", "type", "device"),
                       params={"clip_name": "model", "type": ("family", _text_family)}, outputs=("text_encoder",)),
    "DualCLIPLoader": Spec("model.text_encoder", ("clip_name1", "clip_name2", "type", "device"),
                           params={"clip_name1": "model", "clip_name2": "model_2", "type": ("family", _text_family)},
                           outputs=("text_encoder",)),
    "TripleCLIPLoader": Spec("model.text_encoder", ("clip_name1", "clip_name2", "clip_name3"),
                             params={"clip_name1": "model", "clip_name2": "model_2", "clip_name3": "model_3"},
                             fixed={"family": "sd3"}, outputs=("text_encoder",)),
    "VAELoader": Spec("model.vae", ("vae_name",), params={"vae_name": "model"}, outputs=("vae",)),
    "LoraLoader": Spec("model.lora", ("lora_name", "strength_model", "strength_clip"),
                       inputs={"model": "model", "clip": "text_encoder"},
                       params={"lora_name": "lora", "strength_model": "strength", "strength_clip": "text_strength"},
                       outputs=("model", "text_encoder")),
    "LoraLoaderModelOnly": Spec("model.lora", ("lora_name", "strength_model"), inputs={"model": "model"},
                                params={"lora_name": "lora", "strength_model": "strength"}, outputs=("model",)),
    "ControlNetLoader": Spec("model.controlnet", ("control_net_name",), params={"control_net_name": "model"},
                             outputs=("controlnet",)),
    "UpscaleModelLoader": Spec("model.upscale", ("model_name",), params={"model_name": "model"},
                               outputs=("upscale_model",)),
    "FreeU": Spec("model.freeu", ("b1", "b2", "s1", "s2"), inputs={"model": "model"},
                  params={"b1": "b1", "b2": "b2", "s1": "s1", "s2": "s2"}, derive=_freeu_notes, outputs=("model",)),
    "ModelMergeSimple": Spec("model.merge", ("ratio",), inputs={"model1": "a", "model2": "b"},
                             params={"ratio": ("ratio", _complement)}, outputs=("model",)),
    "CheckpointSave": Spec("model.save", ("filename_prefix",),
                           inputs={"model": "model", "clip": "text_encoder", "vae": "vae"},
                           params={"filename_prefix": "filename_prefix"}, derive=_save_notes, outputs=()),
    "CLIPSetLastLayer": Spec("cond.clip_skip", ("stop_at_clip_layer",), inputs={"clip": "text_encoder"},
                             params={"stop_at_clip_layer": ("skip", _clip_layer)}, outputs=("text_encoder",)),
    "CLIPTextEncode": Spec("cond.text", ("text",), inputs={"clip": "text_encoder"}, params={"text": "prompt"},
                           derive=_prompt_notes,
                           outputs=("conditioning",)),
    "ConditioningZeroOut": Spec("cond.zero_out", inputs={"conditioning": "conditioning"}, outputs=("conditioning",)),
    "ConditioningCombine": Spec("cond.combine_list", inputs={"conditioning_1": "a", "conditioning_2": "b"},
                                outputs=("conditioning",)),
    "ConditioningSetArea": Spec("cond.set_area", ("width", "height", "x", "y", "strength"),
                                inputs={"conditioning": "conditioning"},
                                params={k: k for k in ("width", "height", "x", "y", "strength")},
                                outputs=("conditioning",)),
    "ConditioningSetMask": Spec("cond.set_mask", ("strength", "set_cond_area"),
                                inputs={"conditioning": "conditioning", "mask": "mask"},
                                params={"strength": "strength", "set_cond_area": "set_cond_area"},
                                outputs=("conditioning",)),
    "ConditioningSetTimestepRange": Spec("cond.timestep_range", ("start", "end"),
                                         inputs={"conditioning": "conditioning"},
                                         params={"start": "start", "end": "end"}, derive=_range_notes,
                                         outputs=("conditioning",)),
    "ConditioningConcat": Spec("cond.concat", inputs={"conditioning_to": "a", "conditioning_from": "b"},
                               outputs=("conditioning",)),
    "ConditioningAverage": Spec("cond.combine", ("conditioning_to_strength",),
                                inputs={"conditioning_to": "a", "conditioning_from": "b"},
                                params={"conditioning_to_strength": ("weight", _complement)},
                                outputs=("conditioning",)),
    "FluxGuidance": Spec("cond.guidance", ("guidance",), inputs={"conditioning": "conditioning"},
                         params={"guidance": "guidance"}, outputs=("conditioning",)),
    "ReferenceLatent": Spec("cond.reference_latent", ("enable",),
                            inputs={"conditioning": "conditioning", "latent": "latent"}, params={"enable": "enable"},
                            outputs=("conditioning",)),
    "FluxKontextImageScale": Spec("image.kontext_scale", inputs={"image": "image"}, outputs=("image",)),
    "ControlNetApply": Spec("control.apply", ("strength",),
                            inputs={"conditioning": "conditioning", "control_net": "controlnet", "image": "image"},
                            params={"strength": "strength"}, outputs=("conditioning",)),
    "ControlNetApplyAdvanced": Spec(
        "control.apply", ("strength", "start_percent", "end_percent"),
        inputs={"positive": "conditioning", "control_net": "controlnet", "image": "image", "vae": "vae"},
        params={"strength": "strength", "start_percent": "start", "end_percent": "end"},
        outputs=("conditioning", "=negative")),
    "KSampler": Spec("sampling.sampler", ("seed", CONTROL, "steps", "cfg", "sampler_name", "scheduler", "denoise"),
                     inputs={"model": "model", "positive": "conditioning", "negative": "negative",
                             "latent_image": "latent"},
                     params={"seed": "seed", "steps": "steps", "cfg": "cfg", "denoise": "denoise"},
                     derive=_sampler, outputs=("latent",)),
    "KSamplerAdvanced": Spec(
        "sampling.sampler", ("add_noise", "noise_seed", CONTROL, "steps", "cfg", "sampler_name", "scheduler",
                             "start_at_step", "end_at_step", "return_with_leftover_noise"),
        inputs={"model": "model", "positive": "conditioning", "negative": "negative", "latent_image": "latent"},
        params={"noise_seed": "seed", "steps": "steps", "cfg": "cfg"}, derive=_sampler_advanced, outputs=("latent",)),
    "VAEDecode": Spec("vae.decode", inputs={"samples": "latent", "vae": "vae"}, outputs=("image",)),
    "VAEDecodeTiled": Spec("vae.decode", ("tile_size", "overlap", "temporal_size", "temporal_overlap"),
                           inputs={"samples": "latent", "vae": "vae"}, params={"tile_size": "tile_size"},
                           fixed={"tiled": True}, outputs=("image",)),
    "VAEEncode": Spec("vae.encode", inputs={"pixels": "image", "vae": "vae"}, outputs=("latent",)),
    "InpaintModelConditioning": Spec("latent.inpaint_encode", ("noise_mask",),
                                     inputs={"vae": "vae", "pixels": "image", "mask": "mask"}, derive=_inpaint_notes,
                                     outputs=("=positive", "=negative", "latent")),
    "SetLatentNoiseMask": Spec("latent.set_mask", inputs={"samples": "latent", "mask": "mask"}, outputs=("latent",)),
    "LatentUpscale": Spec("latent.resize", ("upscale_method", "width", "height", "crop"), inputs={"samples": "latent"},
                          params={"upscale_method": ("method", _method(LATENT_METHODS)), "width": "width",
                                  "height": "height"},
                          derive=_latent_crop, outputs=("latent",)),
    "LatentUpscaleBy": Spec("latent.scale", ("upscale_method", "scale_by"), inputs={"samples": "latent"},
                            params={"upscale_method": ("method", _method(LATENT_METHODS)), "scale_by": "factor"},
                            outputs=("latent",)),
    "SaveImage": Spec("image.save", ("filename_prefix",), inputs={"images": "image"},
                      params={"filename_prefix": "filename_prefix"}, outputs=()),
    "PreviewImage": Spec("image.preview", inputs={"images": "image"}, outputs=()),
    "ImageScale": Spec("image.resize", ("upscale_method", "width", "height", "crop"), inputs={"image": "image"},
                       params={"upscale_method": ("resample", _method(IMAGE_METHODS)), "width": "width",
                               "height": "height",
                               "crop": ("mode", _crop_mode)}, derive=_image_scale, outputs=("image",)),
    "ImageScaleBy": Spec("image.scale", ("upscale_method", "scale_by"), inputs={"image": "image"},
                         params={"upscale_method": ("resample", _method(IMAGE_METHODS)), "scale_by": "factor"},
                         outputs=("image",)),
    # ComfyUI always tiles 512-pixel tiles overlapping by 32: Upscale Image's defaults
    "ImageUpscaleWithModel": Spec("image.upscale_model", inputs={"upscale_model": "upscale_model", "image": "image"},
                                  outputs=("image",)),
    "ImageInvert": Spec("image.invert", inputs={"image": "image"}, outputs=("image",)),
    "ImageBlur": Spec("image.blur", ("blur_radius", "sigma"), inputs={"image": "image"}, derive=_blur_radius,
                      outputs=("image",)),
    "ImageSharpen": Spec("image.sharpen", ("sharpen_radius", "sigma", "alpha"), inputs={"image": "image"},
                         derive=_sharpen, outputs=("image",)),
    "ImageCrop": Spec("image.crop", ("width", "height", "x", "y"), inputs={"image": "image"},
                      params={"width": "width", "height": "height", "x": "x", "y": "y"}, outputs=("image",)),
    "GetImageSize": Spec("image.size", inputs={"image": "image"}, outputs=("width", "height", "batch")),
    "ImageBatch": Spec("image.batch", inputs={"image1": "image_a", "image2": "image_b"}, fixed={"resize": "fill"},
                       derive=_batch_notes, outputs=("image",)),
    "ImageFromBatch": Spec("image.select", ("batch_index", "length"), inputs={"image": "image"},
                           params={"batch_index": "index", "length": "length"}, outputs=("image",)),
    "ImagePadForOutpaint": Spec("image.pad", ("left", "top", "right", "bottom", "feathering"),
                                inputs={"image": "image"},
                                params={"left": "left", "top": "top", "right": "right", "bottom": "bottom",
                                        "feathering": "feather"}, outputs=("image", "mask")),
    "GrowMask": Spec("mask.grow", ("expand", "tapered_corners"), inputs={"mask": "mask"}, params={"expand": "pixels"},
                     derive=_grow_notes, outputs=("mask",)),
    "FeatherMask": Spec("mask.feather", ("left", "top", "right", "bottom"), inputs={"mask": "mask"}, derive=_feather,
                        outputs=("mask",)),
    "InvertMask": Spec("mask.invert", inputs={"mask": "mask"}, outputs=("mask",)),
    "MaskToImage": Spec("mask.to_image", inputs={"mask": "mask"}, outputs=("image",)),
    "ImageColorToMask": Spec("mask.from_color", ("color",), inputs={"image": "image"},
                             params={"color": ("color", _int_color)}, outputs=("mask",)),
    "Canny": Spec("image.canny", ("low_threshold", "high_threshold"), inputs={"image": "image"},
                  params={"low_threshold": ("low_threshold", _threshold),
                          "high_threshold": ("high_threshold", _threshold)},
                  derive=_canny_notes, outputs=("image",)),
    "CheckpointLoader": Spec("model.checkpoint", ("config_name", "ckpt_name"), params={"ckpt_name": "model"},
                             outputs=("model", "text_encoder", "vae")),
    "VAEEncodeTiled": Spec("vae.encode", ("tile_size", "overlap", "temporal_size", "temporal_overlap"),
                           inputs={"pixels": "image", "vae": "vae"}, params={"tile_size": "tile_size"},
                           fixed={"tiled": True}, outputs=("latent",)),
    "ImageToMask": Spec("mask.from_channel", ("channel",), inputs={"image": "image"}, params={"channel": "channel"},
                        outputs=("mask",)),
    "PrimitiveFloat": Spec("value.float", ("value",), params={"value": "value"}, outputs=("value",)),
    "PrimitiveString": Spec("value.string", ("value",), params={"value": "value"}, outputs=("value",)),
    "PrimitiveStringMultiline": Spec("value.string", ("value",), params={"value": "value"}, outputs=("value",)),
    "PrimitiveBoolean": Spec("value.bool", ("value",), params={"value": "value"}, outputs=("value",)),
    "StringConcatenate": Spec("string.concat", ("string_a", "string_b", "delimiter"),
                              params={"string_a": "a", "string_b": "b", "delimiter": "separator"}, outputs=("text",)),
    "StringReplace": Spec("string.replace", ("string", "find", "replace"),
                          params={"string": "text", "find": "find", "replace": "replace"}, fixed={"regex": False},
                          outputs=("text",)),
    "ModelSamplingSD3": Spec("model.shift", ("shift",), inputs={"model": "model"}, params={"shift": "shift"},
                             outputs=("model",)),
    "ModelSamplingAuraFlow": Spec("model.shift", ("shift",), inputs={"model": "model"}, params={"shift": "shift"},
                                  outputs=("model",)),
    "PerturbedAttentionGuidance": Spec("model.pag", ("scale",), inputs={"model": "model"}, params={"scale": "scale"},
                                       derive=_pag_notes, outputs=("model",)),
    "DifferentialDiffusion": Spec("model.differential_diffusion", ("strength",), inputs={"model": "model"},
                                  params={"strength": "strength"}, derive=_differential_strength, outputs=("model",)),
    "Note": Spec("doc.note", ("text",), params={"text": "text"}),
    "MarkdownNote": Spec("doc.note", ("text",), params={"text": "text"}),
}
# Classes built by code in convert.py (they become two nodes, fold into another, or borrow a link):
BUILT = ("SamplerCustomAdvanced", "RandomNoise", "KSamplerSelect", "BasicScheduler", "BasicGuider", "CFGGuider",
         "ModelSamplingFlux", "PrimitiveInt", "EmptyLatentImage", "EmptySD3LatentImage", "LoadImage", "LoadImageMask",
         "VAEEncodeForInpaint", "ImageBlend", "PrimitiveNode", "Reroute")
WIDGETS = {  # their widget orders
    "EmptyLatentImage": ("width", "height", "batch_size"),
    "EmptySD3LatentImage": ("width", "height", "batch_size"),
    "LoadImage": ("image", "upload"),
    "LoadImageMask": ("image", "channel", "upload"),
    "VAEEncodeForInpaint": ("grow_mask_by",),
    "ImageBlend": ("blend_factor", "blend_mode"),
    "PrimitiveInt": ("value", CONTROL),
    "RandomNoise": ("noise_seed", CONTROL),
    "KSamplerSelect": ("sampler_name",),
    "BasicScheduler": ("scheduler", "steps", "denoise"),
    "CFGGuider": ("cfg",),
    "ModelSamplingFlux": ("max_shift", "base_shift", "width", "height"),
}
BUILT_WIDGETS = {  # their widgets that each land on one parameter of the node they become (promoted widgets)
    "EmptyLatentImage": {"width": "width", "height": "height", "batch_size": "batch_size"},
    "EmptySD3LatentImage": {"width": "width", "height": "height", "batch_size": "batch_size"},
    "LoadImage": {"image": "path"},
    "LoadImageMask": {"image": "path"},
    "ImageBlend": {"blend_factor": "factor"},
}
# ComfyUI's custom sampling splits a sampler into parts; SamplerCustomAdvanced's inputs -> the classes
# that may feed each, all folded into one Sampler here
SAMPLER_PARTS = {"noise": ("RandomNoise",), "guider": ("BasicGuider", "CFGGuider"), "sampler": ("KSamplerSelect",),
                 "sigmas": ("BasicScheduler",)}
DISPLAY = {  # ComfyUI's default node titles (an API file writes one for every node): not kept as titles here
    "KSamplerAdvanced": "KSampler (Advanced)", "CheckpointLoaderSimple": "Load Checkpoint", "VAELoader": "Load VAE",
    "LoraLoader": "Load LoRA", "CLIPLoader": "Load CLIP", "ControlNetLoader": "Load ControlNet Model",
    "UNETLoader": "Load Diffusion Model", "CLIPTextEncode": "CLIP Text Encode (Prompt)",
    "CLIPSetLastLayer": "CLIP Set Last Layer", "ConditioningCombine": "Conditioning (Combine)",
    "ConditioningSetArea": "Conditioning (Set Area)", "ConditioningSetMask": "Conditioning (Set Mask)",
    "ControlNetApply": "Apply ControlNet", "ControlNetApplyAdvanced": "Apply ControlNet (Advanced)",
    "VAEEncodeForInpaint": "VAE Encode (for Inpainting)", "SetLatentNoiseMask": "Set Latent Noise Mask",
    "VAEDecode": "VAE Decode", "VAEEncode": "VAE Encode", "VAEDecodeTiled": "VAE Decode (Tiled)",
    "EmptyLatentImage": "Empty Latent Image", "LatentUpscale": "Upscale Latent", "LatentUpscaleBy": "Upscale Latent By",
    "SaveImage": "Save Image", "PreviewImage": "Preview Image", "LoadImage": "Load Image",
    "LoadImageMask": "Load Image (as Mask)", "ImageScale": "Upscale Image", "ImageScaleBy": "Upscale Image By",
    "ImageInvert": "Invert Image", "ImagePadForOutpaint": "Pad Image for Outpainting",
    "UpscaleModelLoader": "Load Upscale Model", "FreeU": "FreeU", "ModelMergeSimple": "ModelMergeSimple",
    "CheckpointSave": "Save Checkpoint", "ImageUpscaleWithModel": "Upscale Image (using Model)",
}
PRIMITIVES = {"INT": "value.int", "FLOAT": "value.float", "STRING": "value.string", "BOOLEAN": "value.bool",
              "COMBO": "value.string"}
SEED_WIDGETS = {"seed", "noise_seed"}


def name_widgets(order: tuple[str, ...], values: list) -> dict:
    """Positional widget values -> by name, skipping the control_after_generate slot where it is present
    (files from older frontends lack it) and ignoring values past the known widgets."""
    named, i = {}, 0
    for name in order:
        if i >= len(values):
            break
        if name == CONTROL:
            if isinstance(values[i], str) and values[i] in CONTROL_VALUES:
                i += 1
            continue
        named[name] = values[i]
        i += 1
    return named
