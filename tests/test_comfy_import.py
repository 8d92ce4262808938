"""ComfyUI files as a user brings them: the API format, the editor's UI format (0.4 and 1, with reroutes,
primitives, groups, notes, subgraphs), a PNG ComfyUI saved. Each converts node for node, keeps its layout,
runs on the bundled demo model to the same picture as our own txt2img example, and goes through the CLI.

The files in tests/comfy_files/ are written in the shapes of the ComfyUI frontend's workflow schema
(src/platform/workflow/validation/schemas/workflowSchema.ts), its test assets (browser_tests/assets/) and
ComfyUI's script_examples/basic_api_example.py. PNGs are made here, as ComfyUI's Save Image writes them:
a ``prompt`` and a ``workflow`` text chunk holding JSON.
"""

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

import nodegraph
from nodegraph.comfy.table import BUILT, TABLE
from nodegraph.document import from_document
from nodegraph.schema import workflow_schema_path

from conftest import REPO

FILES = Path(__file__).parent / "comfy_files"
NODEGRAPH = os.path.join(os.path.dirname(sys.executable), "nodegraph")
FIXTURES = ["api_txt2img", "ui_txt2img_v04", "ui_txt2img_v1", "ui_subgraph", "ui_subgraph_nested", "api_every_class"]
FRONTEND_ONLY = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}  # the editor's own nodes: never in an API file

# what the txt2img fixtures ask for
PROMPT, NEGATIVE = "a green square in the middle, yellow background", "blurry, watermark"
SEED, STEPS, CFG, SIZE = 901234567, 4, 4.0, 64


@pytest.fixture(scope="module", autouse=True)
def _no_comfyui_install():
    """A ComfyUI install named in the environment would turn the fixtures' picture names into its files."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("NODEGRAPH_COMFYUI", raising=False)
        mp.delenv("NODEGRAPH_COMFYUI_EXTRA_PATHS", raising=False)
        yield


def raw(name: str) -> dict:
    return json.loads((FILES / f"{name}.json").read_text(encoding="utf-8"))


def load(name: str, strict: bool = True) -> nodegraph.Workflow:
    return nodegraph.load(FILES / f"{name}.json", strict=strict)


def links_of(wf: nodegraph.Workflow) -> set[str]:
    return {str(link) for link in wf.links}


def via_of(wf: nodegraph.Workflow, target: str, port: str):
    (link,) = [l for l in wf.links if (l.target, l.input) == (target, port)]
    return [list(p) for p in link.via]


def comfy_png(path: Path, prompt: dict | None = None, workflow: dict | None = None, size=(64, 64)) -> Path:
    """A PNG as ComfyUI's Save Image writes it: ``prompt`` then each extra_pnginfo key, JSON in tEXt chunks."""
    info = PngInfo()
    if prompt is not None:
        info.add_text("prompt", json.dumps(prompt))
    if workflow is not None:
        info.add_text("workflow", json.dumps(workflow))
    Image.new("RGB", size, (30, 160, 40)).save(path, pnginfo=info)
    return path


def cli(*args, timeout=180):
    done = subprocess.run([NODEGRAPH, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


# ----- every fixture converts, and converts completely ------------------------------------------------

@pytest.mark.parametrize("name", FIXTURES)
def test_each_file_converts_and_saves_canonically(name, tmp_path):
    wf = load(name, strict=False)
    report = wf.imported
    assert report is not None and report.format == ("api" if name.startswith("api") else "ui")
    unmapped = {(u["id"], u["class_type"]) for u in report.unmapped}
    if name == "api_every_class":
        assert unmapped == {("150", "LoadAudio"), ("151", "SaveAudio"), ("152", "SaveAnimatedWEBP")}
    else:
        assert unmapped == set() and wf.problems == []
    assert report.mapped == report.nodes - len(unmapped)
    text = wf.dumps()
    if name != "api_every_class":  # see test_a_document_with_placeholders_matches_the_schema
        jsonschema.validate(json.loads(text), json.loads(workflow_schema_path().read_text()))
    nodegraph.save(wf, tmp_path / "ours.json")
    assert nodegraph.load(tmp_path / "ours.json", strict=False).dumps() == text  # ours now, byte for byte
    assert nodegraph.load(tmp_path / "ours.json", strict=False).imported is None


def test_the_fixtures_use_every_class_the_table_maps():
    api_classes = {n["class_type"] for name in ("api_every_class", "api_flux_custom_sampling")
                   for n in raw(name).values()}
    assert set(TABLE) | set(BUILT) <= api_classes | FRONTEND_ONLY
    assert not api_classes & FRONTEND_ONLY  # the frontend leaves its own nodes out of the API format
    ui_classes = set()
    for name in ("ui_txt2img_v04", "ui_txt2img_v1", "ui_subgraph"):
        ui_classes |= {n["type"] for n in raw(name)["nodes"]}
    assert FRONTEND_ONLY <= ui_classes


def test_unmapped_nodes_stay_as_placeholders_that_fail_validation_by_name():
    wf = load("api_every_class", strict=False)
    for node_id, cls in (("150", "LoadAudio"), ("151", "SaveAudio"), ("152", "SaveAnimatedWEBP")):
        node = wf.nodes[node_id]
        assert node.type == f"comfyui:{cls}" and node.params["why"] == "no counterpart here yet"
        (problem,) = [p for p in wf.problems if p.node == node_id]
        assert f"ComfyUI node {cls!r} was not converted" in problem.message
    assert wf.nodes["150"].params["inputs"] == {"audio": "narration.wav"}
    assert {"150.output_0 -> 151.audio", "121.image -> 152.images"} <= links_of(wf)
    assert {p.node for p in wf.problems} == {"150", "151", "152"}  # nothing else in the file is wrong
    with pytest.raises(nodegraph.WorkflowInvalid) as e:
        load("api_every_class")
    assert {p.node for p in e.value.problems} == {"150", "151", "152"}


def test_a_document_with_placeholders_matches_the_schema():
    text = load("api_every_class", strict=False).dumps()
    jsonschema.validate(json.loads(text), json.loads(workflow_schema_path().read_text()))


# ----- the API format ---------------------------------------------------------------------------------

def test_api_txt2img_maps_each_node_under_its_own_id():
    wf = load("api_txt2img")
    types = {n.id: n.type for n in wf.nodes.values()}
    assert types == {"3": "sampling.sampler", "4": "model.checkpoint", "5": "latent.empty", "6": "cond.text",
                     "7": "cond.text", "8": "vae.decode", "9": "image.save"}
    assert wf.nodes["4"].params["model"] == "demo-sd"
    assert wf.nodes["6"].params["prompt"] == PROMPT and wf.nodes["7"].params["prompt"] == NEGATIVE
    assert {k: wf.nodes["3"].params[k] for k in ("seed", "steps", "cfg", "scheduler", "denoise")} == {
        "seed": SEED, "steps": STEPS, "cfg": CFG, "scheduler": "euler_ancestral", "denoise": 1.0}
    assert {k: wf.nodes["5"].params[k] for k in ("width", "height", "batch_size")} == {
        "width": SIZE, "height": SIZE, "batch_size": 1}
    assert links_of(wf) == {
        "4.model -> 3.model", "6.conditioning -> 3.conditioning", "7.conditioning -> 3.negative",
        "5.latent -> 3.latent", "4.text_encoder -> 6.text_encoder", "4.text_encoder -> 7.text_encoder",
        "3.latent -> 8.latent", "4.vae -> 8.vae", "8.image -> 9.image", "4.vae -> 5.vae"}
    assert wf.nodes["4"].title is None  # _meta.title "Load Checkpoint" is only ComfyUI's default title
    assert wf.nodes["3"].title is None  # a title that is only the class name is not kept
    columns = {n.id: n.position[0] for n in wf.nodes.values()}  # no positions in the file: laid out by depth
    assert columns["4"] < columns["6"] < columns["3"] < columns["8"] < columns["9"]


def test_the_prompt_body_posted_to_the_server_converts_too():
    body = {"prompt": raw("api_txt2img"), "client_id": "5b0e3c5e6f0a4a8c9d1e2f3a4b5c6d7e"}
    wf = from_document(body)
    assert wf.imported.format == "api" and wf.nodes["3"].params["seed"] == SEED


def test_api_ids_of_nodes_inside_subgraphs_become_valid_ids():
    """The frontend writes a subgraph's inner nodes as "instance:inner" in the API format."""
    prompt = raw("api_txt2img")
    renamed = {"3": "30:1", "8": "30:2"}
    doc = {}
    for node_id, node in prompt.items():
        node = copy.deepcopy(node)
        for name, value in node["inputs"].items():
            if isinstance(value, list):
                value[0] = renamed.get(value[0], value[0])
        doc[renamed.get(node_id, node_id)] = node
    wf = from_document(doc)
    assert {"30-1", "30-2"} <= set(wf.nodes) and wf.nodes["30-1"].type == "sampling.sampler"
    assert {"30-1.latent -> 30-2.latent", "30-2.image -> 9.image", "4.vae -> 5.vae"} <= links_of(wf)


# ----- every class, one by one ------------------------------------------------------------------------

EVERY = {  # ComfyUI id: (class, our type, parameters that must be so)
    "1": ("CheckpointLoaderSimple", "model.checkpoint", {"model": "v1-5-pruned-emaonly.safetensors"}),
    "2": ("LoraLoader", "model.lora", {"lora": "pixel-art-xl-v1.1.safetensors", "strength": 0.8, "text_strength": 0.6}),
    "3": ("CLIPSetLastLayer", "cond.clip_skip", {"skip": 1}),
    "4": ("CLIPTextEncode", "cond.text", {"prompt": "a lighthouse on a cliff at dusk, oil painting"}),
    "5": ("CLIPTextEncode", "cond.text", {"prompt": "lowres, jpeg artifacts, text"}),
    "6": ("VAELoader", "model.vae", {"model": "vae-ft-mse-840000-ema-pruned.safetensors"}),
    "7": ("EmptyLatentImage", "latent.empty", {"width": 512, "height": 768, "batch_size": 2}),
    "8": ("KSampler", "sampling.sampler", {"seed": 1082937847692839, "steps": 24, "cfg": 7.5,
                                           "scheduler": "dpmpp_2m_karras", "denoise": 1.0}),
    "9": ("LatentUpscaleBy", "latent.scale", {"factor": 1.5, "method": "nearest"}),
    "10": ("KSampler", "sampling.sampler", {"seed": 424243, "steps": 12, "cfg": 7.0, "scheduler": "euler",
                                            "denoise": 0.5}),
    "11": ("VAEDecode", "vae.decode", {"tiled": False}),
    "12": ("SaveImage", "image.save", {"filename_prefix": "hires/lighthouse"}),
    "13": ("LatentUpscale", "latent.resize", {"width": 1024, "height": 1536, "method": "bilinear"}),
    "14": ("VAEDecodeTiled", "vae.decode", {"tiled": True, "tile_size": 512}),
    "15": ("PreviewImage", "image.preview", {}),
    "20": ("LoadImage", "image.load", {"path": "portrait.png"}),
    "21": ("ImageScale", "image.resize", {"width": 512, "height": 512, "mode": "fill", "resample": "lanczos"}),
    "22": ("VAEEncode", "vae.encode", {}),
    "23": ("KSampler", "sampling.sampler", {"seed": 7, "denoise": 0.65, "scheduler": "unipc"}),
    "24": ("VAEDecode", "vae.decode", {}),
    "25": ("ImageSharpen", "image.sharpen", {"factor": 1.5}),
    "26": ("SaveImage", "image.save", {"filename_prefix": "img2img/portrait"}),
    "30": ("LoadImage", "image.load", {"path": "room.png"}),
    "31": ("GrowMask", "mask.grow", {"pixels": 8}),
    "32": ("FeatherMask", "mask.feather", {"radius": 6.0}),
    "33": ("VAEEncodeForInpaint", "latent.inpaint_encode", {}),
    "34": ("KSampler", "sampling.sampler", {"seed": 99, "scheduler": "euler_ancestral"}),
    "35": ("VAEDecode", "vae.decode", {}),
    "36": ("SaveImage", "image.save", {"filename_prefix": "inpaint/room"}),
    "40": ("CheckpointLoaderSimple", "model.checkpoint", {"model": "512-inpainting-ema.safetensors"}),
    "41": ("LoadImageMask", "image.load", {"path": "portrait_mask.png"}),
    "42": ("InvertMask", "mask.invert", {}),
    "43": ("CLIPTextEncode", "cond.text", {"prompt": "a green armchair by the window"}),
    "44": ("CLIPTextEncode", "cond.text", {"prompt": "deformed, blurry"}),
    "45": ("InpaintModelConditioning", "latent.inpaint_encode", {}),
    "46": ("KSampler", "sampling.sampler", {"seed": 1001, "steps": 25, "cfg": 8.0, "scheduler": "ddim"}),
    "47": ("VAEDecode", "vae.decode", {}),
    "48": ("ImageBlend", "image.blend", {"factor": 0.35}),
    "49": ("SaveImage", "image.save", {"filename_prefix": "inpaint/armchair"}),
    "50": ("LoadImageMask", "image.load", {"path": "room_stencil.png"}),
    "51": ("SetLatentNoiseMask", "latent.set_mask", {}),
    "52": ("SetLatentNoiseMask", "latent.set_mask", {}),
    "55": ("LoadImage", "image.load", {"path": "beach.png"}),
    "56": ("ImagePadForOutpaint", "image.pad", {"left": 128, "top": 0, "right": 128, "bottom": 64, "feather": 40}),
    "57": ("VAEEncodeForInpaint", "latent.inpaint_encode", {}),
    "58": ("KSampler", "sampling.sampler", {"seed": 5150, "steps": 30, "scheduler": "dpmpp_2m"}),
    "59": ("VAEDecode", "vae.decode", {}),
    "60": ("ImageCrop", "image.crop", {"width": 768, "height": 512, "x": 64, "y": 0}),
    "61": ("SaveImage", "image.save", {"filename_prefix": "outpaint/beach"}),
    "62": ("ImageScale", "image.resize", {"width": 16384, "height": 512, "mode": "fit", "resample": "bicubic"}),
    "65": ("ControlNetLoader", "model.controlnet", {"model": "control_v11p_sd15_canny.pth"}),
    "66": ("LoadImage", "image.load", {"path": "edges.png"}),
    "67": ("ImageInvert", "image.invert", {}),
    "68": ("ImageBlur", "image.blur", {"radius": 1.5}),
    "69": ("ControlNetApply", "control.apply", {"strength": 0.9, "start": 0.0, "end": 1.0}),
    "70": ("ControlNetApplyAdvanced", "control.apply", {"strength": 0.6, "start": 0.1, "end": 0.8}),
    "71": ("KSampler", "sampling.sampler", {"seed": 31337, "scheduler": "euler"}),
    "72": ("VAEDecode", "vae.decode", {}),
    "73": ("ImageScaleBy", "image.scale", {"factor": 2.0, "resample": "bicubic"}),
    "74": ("SaveImage", "image.save", {"filename_prefix": "controlnet/edges"}),
    "75": ("ImageToMask", "mask.from_channel", {"channel": "red"}),
    "80": ("UNETLoader", "model.denoiser", {"model": "flux1-dev.safetensors", "dtype": "auto"}),
    "81": ("DualCLIPLoader", "model.text_encoder", {"model": "t5xxl_fp16.safetensors", "model_2": "clip_l.safetensors",
                                                    "family": "flux"}),
    "82": ("VAELoader", "model.vae", {"model": "ae.safetensors"}),
    "83": ("LoraLoaderModelOnly", "model.lora", {"lora": "flux-film-grain.safetensors", "strength": 0.7}),
    "84": ("PrimitiveStringMultiline", "value.string", {"value": "a red fox in fresh snow,\nmorning light, 35mm film"}),
    "85": ("CLIPTextEncode", "cond.text", {"prompt": "a red fox in fresh snow,\nmorning light, 35mm film"}),
    "86": ("PrimitiveFloat", "value.float", {"value": 3.5}),
    "87": ("FluxGuidance", "cond.guidance", {"guidance": 3.5}),
    "88": ("ConditioningZeroOut", "cond.zero_out", {}),
    "89": ("EmptySD3LatentImage", "latent.empty", {"width": 1024, "height": 1024, "batch_size": 1}),
    "90": ("PrimitiveInt", "value.seed", {"seed": 1234}),
    "91": ("KSamplerAdvanced", "sampling.sampler", {"seed": 1234, "steps": 20, "cfg": 1.0, "scheduler": "euler", "start_step": 0,
                                                    "end_step": 10}),
    "92": ("KSamplerAdvanced", "sampling.sampler", {"seed": 1234, "steps": 20, "scheduler": "euler", "start_step": 10,
                                                    "end_step": -1}),
    "93": ("VAEDecode", "vae.decode", {}),
    "94": ("SaveImage", "image.save", {"filename_prefix": "flux/fox"}),
    "100": ("TripleCLIPLoader", "model.text_encoder", {"model": "clip_l.safetensors", "model_2": "clip_g.safetensors",
                                                       "model_3": "t5xxl_fp8_e4m3fn.safetensors", "family": "sd3"}),
    "101": ("CLIPLoader", "model.text_encoder", {"model": "t5xxl_fp8_e4m3fn.safetensors", "family": "sd3"}),
    "102": ("CLIPTextEncode", "cond.text", {"prompt": "a cat in a spacesuit"}),
    "103": ("PrimitiveString", "value.string", {"value": "a cat in a spacesuit"}),
    "104": ("CLIPTextEncode", "cond.text", {"prompt": "a starry sky"}),
    "105": ("ConditioningCombine", "cond.combine_list", {}),
    "106": ("CheckpointLoaderSimple", "model.checkpoint", {"model": "sd3.5_medium.safetensors"}),
    "107": ("EmptySD3LatentImage", "latent.empty", {"width": 1024, "height": 1024}),
    "108": ("ConditioningZeroOut", "cond.zero_out", {}),
    "109": ("KSampler", "sampling.sampler", {"seed": 8, "steps": 28, "cfg": 4.5, "scheduler": "dpmpp_2m"}),
    "110": ("VAEDecode", "vae.decode", {}),
    "111": ("PreviewImage", "image.preview", {}),
    "112": ("PrimitiveBoolean", "value.bool", {"value": True}),
    "120": ("UpscaleModelLoader", "model.upscale", {"model": "4x-UltraSharp.pth", "dtype": "auto"}),
    "121": ("ImageUpscaleWithModel", "image.upscale_model", {"tile": 512, "overlap": 32}),
    "122": ("SaveImage", "image.save", {"filename_prefix": "hires/lighthouse-4x"}),
    "130": ("CheckpointLoader", "model.checkpoint", {"model": "dreamshaper_8.safetensors"}),
    "131": ("LoadImage", "image.load", {"path": "sketch.png"}),
    "132": ("Canny", "image.canny", {"low_threshold": 102, "high_threshold": 204}),
    "133": ("ImageColorToMask", "mask.from_color", {"color": "#ff0000", "tolerance": 0}),
    "134": ("MaskToImage", "mask.to_image", {}),
    "135": ("VAEEncodeTiled", "vae.encode", {"tiled": True, "tile_size": 512}),
    "136": ("ConditioningAverage", "cond.combine", {"weight": 0.25}),
    "137": ("PreviewImage", "image.preview", {}),
    "138": ("ConditioningConcat", "cond.concat", {}),
    "139": ("FreeU", "model.freeu", {"b1": 1.3, "b2": 1.4, "s1": 0.9, "s2": 0.2}),
    "140": ("GetImageSize", "image.size", {}),
    "141": ("ImageBatch", "image.batch", {"resize": "fill"}),
    "142": ("ImageFromBatch", "image.select", {"index": 1, "length": 1}),
    "143": ("StringConcatenate", "string.concat", {"a": "sketches", "b": "second", "separator": "/"}),
    "144": ("StringReplace", "string.replace", {"find": "second", "replace": "portrait", "regex": False}),
    "145": ("ImageCrop", "image.crop", {"x": 0, "y": 0}),
    "146": ("SaveImage", "image.save", {}),
    "147": ("ModelMergeSimple", "model.merge", {"ratio": 0.25}),  # ComfyUI weighs model1, we weigh b
    "148": ("CheckpointSave", "model.save", {"filename_prefix": "checkpoints/dreamshaper-merge"}),
    "160": ("CLIPTextEncode", "cond.text", {"prompt": "a red barn"}),
    "161": ("ConditioningSetArea", "cond.set_area", {"width": 256, "height": 768, "x": 0, "y": 0, "strength": 1.0}),
    "162": ("ConditioningSetArea", "cond.set_area", {"width": 320, "height": 768, "x": 192, "y": 0, "strength": 0.8}),
    "163": ("ConditioningCombine", "cond.combine_list", {}),
    "164": ("ConditioningSetMask", "cond.set_mask", {"strength": 0.9, "set_cond_area": "mask bounds"}),
    "165": ("ConditioningSetTimestepRange", "cond.timestep_range", {"start": 0.0, "end": 0.6}),
    "166": ("ConditioningCombine", "cond.combine_list", {}),
    "167": ("KSampler", "sampling.sampler", {"seed": 5, "steps": 20, "cfg": 7.0, "scheduler": "euler"}),
    "180": ("LoadImage", "image.load", {"path": "fox_photo.png"}),
    "181": ("FluxKontextImageScale", "image.kontext_scale", {}),
    "182": ("VAEEncode", "vae.encode", {}),
    "183": ("CLIPTextEncode", "cond.text", {"prompt": "give the fox a red scarf"}),
    "184": ("ReferenceLatent", "cond.reference_latent", {"enable": True}),
    "185": ("FluxGuidance", "cond.guidance", {"guidance": 2.5}),
    "186": ("ConditioningZeroOut", "cond.zero_out", {}),
    "187": ("KSampler", "sampling.sampler", {"seed": 2025, "steps": 20, "cfg": 1.0, "scheduler": "euler", "denoise": 1.0}),
    "188": ("VAEDecode", "vae.decode", {}),
    "189": ("SaveImage", "image.save", {"filename_prefix": "kontext/fox"}),
    "150": ("LoadAudio", "comfyui:LoadAudio", {}),
    "151": ("SaveAudio", "comfyui:SaveAudio", {}),
    "152": ("SaveAnimatedWEBP", "comfyui:SaveAnimatedWEBP", {}),
    "170": ("PerturbedAttentionGuidance", "model.pag", {"scale": 2.5, "layers": "default"}),
    "171": ("DifferentialDiffusion", "model.differential_diffusion", {"strength": 0.75}),
}


@pytest.fixture(scope="module")
def every():
    return load("api_every_class", strict=False)


def test_the_every_class_table_here_lists_the_whole_file():
    assert {k: v["class_type"] for k, v in raw("api_every_class").items()} == {k: v[0] for k, v in EVERY.items()}


@pytest.mark.parametrize("node_id", list(EVERY), ids=lambda i: f"{i}-{EVERY[i][0]}")
def test_every_class_converts_to_its_node_type_and_values(every, node_id):
    _, type_id, params = EVERY[node_id]
    node = every.nodes[node_id]
    assert node.type == type_id
    assert {k: node.params[k] for k in params} == params


def test_every_class_links(every):
    links = links_of(every)
    expected = {
        # LoRA on model and CLIP, then CLIP skip
        "1.model -> 2.model", "1.text_encoder -> 2.text_encoder", "2.text_encoder -> 3.text_encoder",
        "3.text_encoder -> 4.text_encoder", "2.model -> 8.model", "5.conditioning -> 8.negative",
        # hires: upscale the latent, mask it, sample again, decode with the separate VAE
        "8.latent -> 9.latent", "9.latent -> 52.latent", "75.mask -> 52.mask", "52.latent -> 10.latent",
        "6.vae -> 11.vae", "8.latent -> 13.latent", "13.latent -> 14.latent",
        # img2img with a noise mask from a red channel
        "20.image -> 21.image", "21.image -> 22.image", "22.latent -> 51.latent", "41-mask.mask -> 51.mask",
        "51.latent -> 23.latent",
        # outpaint: the pad's mask goes straight in (grow_mask_by 0)
        "55.image -> 62.image", "62.image -> 56.image", "56.image -> 57.image", "56.mask -> 57.mask",
        "59.image -> 60.image",
        # ControlNet: the old node on the positive only, the advanced one passes the negative through
        "4.conditioning -> 69.conditioning", "65.controlnet -> 69.controlnet", "68.image -> 69.image",
        "69.conditioning -> 70.conditioning", "1.vae -> 70.vae", "70.conditioning -> 71.conditioning",
        "5.conditioning -> 71.negative", "72.image -> 73.image",
        # Flux: guidance and zero-out from one prompt, the primitive seed, two passes
        "80.model -> 83.model", "81.text_encoder -> 85.text_encoder", "84.value -> 85.prompt",
        "85.conditioning -> 87.conditioning", "86.value -> 87.guidance", "85.conditioning -> 88.conditioning",
        "87.conditioning -> 91.conditioning", "88.conditioning -> 91.negative", "89.latent -> 91.latent",
        "90.seed -> 91.seed", "91.latent -> 92.latent", "82.vae -> 93.vae",
        # SD3: combined conditioning
        "100.text_encoder -> 102.text_encoder", "103.value -> 102.prompt", "101.text_encoder -> 104.text_encoder",
        "102.conditioning -> 105.a", "104.conditioning -> 105.b", "105.conditioning -> 109.conditioning",
        "108.conditioning -> 109.negative",
        # an Empty Latent's VAE is the one that decodes what grows from it
        "1.vae -> 7.vae", "82.vae -> 89.vae", "106.vae -> 107.vae",
        # utilities: batch two pictures, take the second, crop it to the first's size, name the file from text
        "131.image -> 140.image", "131.image -> 141.image_a", "20.image -> 141.image_b", "141.image -> 142.image",
        "143.text -> 144.text", "140.width -> 145.width", "140.height -> 145.height", "142.image -> 145.image",
        "144.text -> 146.filename_prefix", "145.image -> 146.image",
        # regional prompts: two areas combined, for the first 60% of the steps, with a masked prompt
        "4.conditioning -> 161.conditioning", "3.text_encoder -> 160.text_encoder",
        "160.conditioning -> 162.conditioning",
        "161.conditioning -> 163.a", "162.conditioning -> 163.b", "160.conditioning -> 164.conditioning",
        "75.mask -> 164.mask", "163.conditioning -> 165.conditioning", "165.conditioning -> 166.a",
        "164.conditioning -> 166.b", "166.conditioning -> 167.conditioning", "5.conditioning -> 167.negative",
        # two prompts' tokens joined
        "4.conditioning -> 138.a", "5.conditioning -> 138.b",
        # Flux Kontext: the scaled reference picture's latents on the prompt, zeroed negative from the bare prompt
        "180.image -> 181.image", "181.image -> 182.image", "82.vae -> 182.vae", "183.conditioning -> 184.conditioning",
        "182.latent -> 184.latent", "184.conditioning -> 185.conditioning", "183.conditioning -> 186.conditioning",
        "185.conditioning -> 187.conditioning", "186.conditioning -> 187.negative", "182.latent -> 187.latent",
        # the decoded hires picture through an upscale model
        "120.upscale_model -> 121.upscale_model", "11.image -> 121.image", "121.image -> 122.image",
        # model patches
        "1.model -> 170.model", "170.model -> 171.model",
    }
    assert expected <= links, expected - links


def test_load_image_mask_is_inverted_to_comfyui_meaning(every):
    """ComfyUI's LoadImage mask is 1 where the picture is transparent: ours is its alpha, so it goes through an
    Invert Mask made for it; a mask nobody uses gets none."""
    assert every.nodes["30-mask"].type == "mask.invert"
    assert {"30.mask -> 30-mask.mask", "30-mask.mask -> 31.mask", "31.mask -> 32.mask"} <= links_of(every)
    assert "20-mask" not in every.nodes and "55-mask" not in every.nodes
    # Load Image (as Mask): alpha is inverted the same way, a colour channel is read as it is
    assert every.nodes["50-mask"].type == "mask.invert" and "50.mask -> 50-mask.mask" in links_of(every)
    assert "50-mask.mask -> 42.mask" in links_of(every) and "42.mask -> 45.mask" in links_of(every)
    assert every.nodes["41-mask"].type == "mask.from_channel" and every.nodes["41-mask"].params["channel"] == "red"
    assert "41.image -> 41-mask.image" in links_of(every)


def test_vae_encode_for_inpaint_grows_its_mask_first(every):
    assert every.nodes["33-grow"].type == "mask.grow" and every.nodes["33-grow"].params["pixels"] == 6
    assert {"32.mask -> 33-grow.mask", "33-grow.mask -> 33.mask", "30.image -> 33.image", "1.vae -> 33.vae",
            "33.latent -> 34.latent"} <= links_of(every)
    assert "57-grow" not in every.nodes  # grow_mask_by 0


def test_inpaint_model_conditioning_passes_the_prompts_through(every):
    assert {"43.conditioning -> 46.conditioning", "44.conditioning -> 46.negative", "45.latent -> 46.latent",
            "40.vae -> 45.vae", "30.image -> 45.image", "47.image -> 48.image_a", "30.image -> 48.image_b"} \
        <= links_of(every)
    notes = every.imported.notes
    assert any("node 45" in n and "noise_mask" in n for n in notes)  # the linked Boolean has nowhere to go


def test_inexact_conversions_are_noted(every):
    notes = "\n".join(every.imported.notes)
    assert "weight_dtype 'fp8_e4m3fn'" in notes  # UNETLoader
    assert "node 46 (KSampler): scheduler 'ddim_uniform'" in notes
    assert "node 71 (KSampler): scheduler 'karras' with 'euler'" in notes
    assert "node 68 (ImageBlur)" in notes and "node 25 (ImageSharpen)" in notes
    assert "node 8 " not in notes  # dpmpp_2m + karras has an exact twin
    assert "node 139 (FreeU): ComfyUI's FreeU picks the up-blocks by channel count" in notes
    assert "node 148 (CheckpointSave): writes a diffusers folder" in notes
    assert "node 170 (PerturbedAttentionGuidance): PerturbedAttentionGuidance: ComfyUI perturbs the self-attention " \
           "of the UNet's middle block, which is 'mid'" in notes


def test_titles_from_meta(every):
    assert every.nodes["10"].title == "KSampler (hires)"
    assert every.nodes["91"].title == "KSampler (Advanced) first half"
    assert every.nodes["8"].title is None  # "KSampler": only the class name


# ----- the UI format, 0.4 -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def v04():
    return load("ui_txt2img_v04")


def test_v04_nodes_keep_ids_positions_and_titles(v04):
    assert v04.imported.nodes == 9 and v04.imported.mapped == 9 and v04.imported.notes == []
    assert {n.id: n.type for n in v04.nodes.values()} == {
        "3": "sampling.sampler", "4": "model.checkpoint", "5": "latent.empty", "6": "cond.text", "7": "cond.text",
        "8": "vae.decode", "9": "image.save", "12": "value.seed", "14": "doc.note"}  # the Reroute (13) is gone
    assert v04.nodes["3"].position == (900, 180) and v04.nodes["4"].position == (40, 420)
    assert v04.nodes["14"].position == pytest.approx((36.5, 96.25), abs=0.1)
    assert {i: v04.nodes[i].title for i in ("3", "4", "6", "7", "12", "8")} == {
        "3": "Sampler (4 steps)", "4": "Demo checkpoint", "6": "Positive prompt", "7": "Negative prompt",
        "12": "Seed", "8": None}
    assert all(n.mode == "active" for n in v04.nodes.values())


def test_v04_positional_widgets_are_named(v04):
    sampler = v04.nodes["3"].params
    assert (sampler["steps"], sampler["cfg"], sampler["scheduler"], sampler["denoise"]) == (
        STEPS, CFG, "euler_ancestral", 1.0)  # the "randomize" after the seed is skipped
    assert v04.nodes["5"].params == {"width": SIZE, "height": SIZE, "batch_size": 1}
    assert v04.nodes["6"].params["prompt"] == PROMPT and v04.nodes["7"].params["prompt"] == NEGATIVE
    assert v04.nodes["9"].params["filename_prefix"] == "demo/square"
    assert v04.nodes["14"].params["text"].startswith("The bundled demo model draws 64x64 pictures")


def test_v04_primitive_node_drives_the_seed(v04):
    """The PrimitiveNode's value wins over the stale one the KSampler kept in its own widget (55512: the seed
    of the last run, before "randomize" moved the primitive on)."""
    assert v04.nodes["12"].params["seed"] == SEED
    assert "12.seed -> 3.seed" in links_of(v04)
    assert v04.nodes["3"].params["seed"] == SEED  # the linked parameter shows what it is sent


def test_v04_legacy_reroute_node_becomes_a_route(v04):
    assert "13" not in v04.nodes
    assert via_of(v04, "8", "vae") == [[1010, 560]]
    assert "4.vae -> 8.vae" in links_of(v04) and "4.vae -> 5.vae" in links_of(v04)
    assert links_of(v04) == {
        "4.model -> 3.model", "6.conditioning -> 3.conditioning", "7.conditioning -> 3.negative",
        "5.latent -> 3.latent", "12.seed -> 3.seed", "4.text_encoder -> 6.text_encoder",
        "4.text_encoder -> 7.text_encoder", "3.latent -> 8.latent", "4.vae -> 8.vae", "8.image -> 9.image",
        "4.vae -> 5.vae"}


def test_v04_groups_keep_their_members(v04):
    groups = {g.title: g for g in v04.groups.values()}
    assert sorted(groups["Prompts"].nodes) == ["6", "7"] and groups["Prompts"].color == "#3f789e"
    assert sorted(groups["Decode and save"].nodes) == ["8", "9"]


def test_a_chain_of_legacy_reroutes_is_one_route():
    doc = raw("ui_txt2img_v04")
    doc["nodes"].append({"id": 15, "type": "Reroute", "pos": [760, 600], "size": [75, 26], "flags": {}, "order": 7,
                         "mode": 0, "inputs": [{"name": "", "type": "*", "link": 10}],
                         "outputs": [{"name": "", "type": "VAE", "links": [12], "slot_index": 0}],
                         "properties": {"showOutputText": False, "horizontal": False}})
    (reroute,) = [n for n in doc["nodes"] if n["id"] == 13]
    reroute["inputs"][0]["link"] = 12
    doc["links"] = [l for l in doc["links"] if l[0] != 10] + [[10, 4, 2, 15, 0, "VAE"], [12, 15, 0, 13, 0, "VAE"]]
    wf = from_document(doc)
    assert via_of(wf, "8", "vae") == [[760, 600], [1010, 560]]
    assert "4.vae -> 8.vae" in links_of(wf)


def test_v04_native_reroutes_in_extra_route_the_link():
    doc = raw("ui_txt2img_v04")
    doc["extra"]["reroutes"] = [{"id": 1, "pos": [250, 360], "linkIds": [5]},
                                {"id": 2, "parentId": 1, "pos": [330, 470], "linkIds": [5]}]
    doc["extra"]["linkExtensions"] = [{"id": 5, "parentId": 2}]
    wf = from_document(doc)
    assert via_of(wf, "7", "text_encoder") == [[250, 360], [330, 470]]


def test_v04_slot_indexes_written_as_strings():
    doc = raw("ui_txt2img_v04")
    doc["links"] = [[l[0], l[1], str(l[2]), l[3], str(l[4]), l[5]] for l in doc["links"]]
    wf = from_document(doc, strict=False)
    assert {"4.text_encoder -> 6.text_encoder", "4.vae -> 8.vae"} <= links_of(wf)


# ----- the UI format, 1 ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def v1():
    return load("ui_txt2img_v1")


def test_v1_link_objects_and_native_reroutes(v1):
    assert v1.imported.nodes == 10 and v1.imported.mapped == 10
    assert {"10.model -> 14.model", "11.conditioning -> 14.conditioning", "12.conditioning -> 14.negative",
            "13.latent -> 14.latent", "14.latent -> 15.latent", "15.image -> 16.image", "16.image -> 17.image",
            "15.image -> 18.image", "10.vae -> 13.vae"} <= links_of(v1)
    assert via_of(v1, "12", "text_encoder") == [[230, 420]]
    assert via_of(v1, "15", "vae") == [[640, 720], [1050, 640]]  # reroute 3's parent 2 comes first
    assert via_of(v1, "11", "text_encoder") == []


def test_v1_modes_titles_notes_and_groups(v1):
    assert v1.nodes["16"].mode == "bypassed" and v1.nodes["16"].type == "image.invert"
    assert v1.nodes["18"].mode == "muted" and v1.nodes["18"].title == "Preview (muted)"
    assert {n.id for n in v1.nodes.values() if n.mode == "active"} == {"10", "11", "12", "13", "14", "15", "17", "21"}
    assert v1.nodes["21"].type == "doc.note" and v1.nodes["21"].title == "About"
    assert v1.nodes["21"].params["text"].startswith("## Demo\n\nThe **invert** is bypassed")
    assert v1.nodes["11"].title == "CLIP Text Encode (Positive)"
    assert v1.nodes["14"].params["seed"] == SEED and v1.nodes["14"].position == (760, 120)
    (group,) = v1.groups.values()
    assert group.title == "Sampling" and sorted(group.nodes) == ["14", "15"] and group.color == "#b58b2a"


# ----- subgraphs ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sub():
    return load("ui_subgraph")


def test_a_subgraph_instance_becomes_one_of_ours(sub):
    assert (sub.imported.nodes, sub.imported.mapped, sub.imported.subgraphs) == (7, 7, 1)
    instance = sub.nodes["30"]
    assert instance.type == "subgraph:sample_and_decode" and instance.position == (860, 200)
    assert instance.title is None  # its ComfyUI title is the definition's name
    assert instance.params == {"seed": SEED, "steps": STEPS}  # its promoted widgets (properties.proxyWidgets)
    definition = sub.subgraphs["sample_and_decode"]
    assert definition.title == "Sample and decode"
    inner = definition.body.nodes
    assert sorted(inner) == ["1", "2"]  # inner node 1 of instance 30 is node 1 inside it
    assert inner["1"].type == "sampling.sampler" and inner["1"].title == "Inner sampler"
    assert inner["2"].type == "vae.decode"
    assert inner["1"].params["seed"] == SEED and inner["1"].params["steps"] == STEPS
    assert inner["1"].position == (200, 120) and inner["2"].position == (560, 160)  # the definition's layout
    assert [p.name for p in definition.params] == ["seed", "steps"]
    assert [(p.to, p.default) for p in definition.params] == [([("1", "seed")], SEED), ([("1", "steps")], STEPS)]


def test_subgraph_inputs_and_outputs_are_wired_through(sub):
    definition = sub.subgraphs["sample_and_decode"]
    assert [(s.name, str(s.type), s.to) for s in definition.inputs] == [  # ComfyUI's names, in its order
        ("model", "MODEL", [("1", "model")]), ("positive", "CONDITIONING", [("1", "conditioning")]),
        ("negative", "CONDITIONING", [("1", "negative")]), ("latent_image", "LATENT", [("1", "latent")]),
        ("vae", "VAE", [("2", "vae")])]
    assert [(s.name, s.source) for s in definition.outputs] == [("IMAGE", ("2", "image"))]
    assert {str(l) for l in definition.body.links} == {"1.latent -> 2.latent"}
    assert links_of(sub) == {
        "24.model -> 30.model", "26.conditioning -> 30.positive", "27.conditioning -> 30.negative",
        "25.latent -> 30.latent_image", "24.vae -> 30.vae", "30.IMAGE -> 29.image",
        "24.text_encoder -> 26.text_encoder", "24.text_encoder -> 27.text_encoder", "24.vae -> 25.vae"}


def test_a_04_root_with_subgraph_definitions_mixes_link_shapes():
    """The frontend also writes a 0.4 root (link arrays) whose definitions.subgraphs use link objects
    (browser_tests/assets/subgraphs/*.json)."""
    doc = raw("ui_subgraph")
    doc["links"] = [[l["id"], l["origin_id"], l["origin_slot"], l["target_id"], l["target_slot"], l["type"]]
                    for l in doc["links"]]
    del doc["state"], doc["version"]
    doc.update(last_node_id=30, last_link_id=38, version=0.4)
    assert {str(l) for l in from_document(doc).links} == links_of(load("ui_subgraph"))


def with_second_instance(doc: dict, widgets_values: list) -> dict:
    """ui_subgraph with a second instance (40) of its definition feeding a Preview Image (41)."""
    (first,) = [n for n in doc["nodes"] if n["id"] == 30]
    second = copy.deepcopy(first)
    second.update(id=40, pos=[860, 700], widgets_values=widgets_values)
    del second["title"]
    for port in second["inputs"]:
        port["link"] += 100
    second["outputs"][0]["links"] = [136]
    doc["nodes"].append(second)
    doc["nodes"].append({"id": 41, "type": "PreviewImage", "pos": [1160, 700], "size": [300, 300], "flags": {},
                         "order": 6, "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": 136}],
                         "outputs": [], "properties": {}})
    doc["links"] += [dict(l, id=l["id"] + 100, target_id=40) for l in doc["links"] if l["target_id"] == 30]
    doc["links"].append({"id": 136, "origin_id": 40, "origin_slot": 0, "target_id": 41, "target_slot": 0,
                         "type": "IMAGE"})
    return doc


def test_two_instances_of_one_subgraph_share_its_definition_with_their_own_promoted_values():
    wf = from_document(with_second_instance(raw("ui_subgraph"), [7, 2]))  # proxyWidgets seed, steps
    assert list(wf.subgraphs) == ["sample_and_decode"] and wf.imported.subgraphs == 1
    first, second = wf.nodes["30"], wf.nodes["40"]
    assert first.type == second.type == "subgraph:sample_and_decode"
    assert first.params == {"seed": SEED, "steps": STEPS} and second.params == {"seed": 7, "steps": 2}
    assert first.overrides == second.overrides == {}  # ComfyUI's instances share every other value
    assert {"24.model -> 40.model", "25.latent -> 40.latent_image", "24.vae -> 40.vae", "40.IMAGE -> 41.image",
            "30.IMAGE -> 29.image"} <= links_of(wf)
    assert second.position == (860, 700)


def test_a_promoted_widget_with_no_parameter_here_becomes_an_override():
    """sampler_name goes into our scheduler with the scheduler widget: no one parameter to promote."""
    doc = with_second_instance(raw("ui_subgraph"), [901234567, 4, "euler"])
    doc["nodes"][-2]["properties"] = {"proxyWidgets": [["1", "seed"], ["1", "steps"], ["1", "sampler_name"]]}
    wf = from_document(doc)
    second = wf.nodes["40"]
    assert second.type == "subgraph:sample_and_decode" and second.overrides == {"1": {"scheduler": "euler"}}
    assert wf.subgraphs["sample_and_decode"].body.nodes["1"].params["scheduler"] == "euler_ancestral"
    assert any(n.startswith("subgraph instance 40 (Sample and decode): its promoted widget 'sampler_name' has no "
                            "parameter of its own here") for n in wf.imported.notes)


@pytest.mark.parametrize("mode, ours", [(2, "muted"), (4, "bypassed")])
def test_a_muted_or_bypassed_subgraph_instance_stays_one_instance_in_that_mode(mode, ours):
    doc = raw("ui_subgraph")
    (instance,) = [n for n in doc["nodes"] if n["id"] == 30]
    instance["mode"] = mode
    wf = from_document(doc, strict=False)
    assert wf.nodes["30"].mode == ours and wf.nodes["29"].mode == "active"
    inner = wf.subgraphs["sample_and_decode"].body.nodes
    assert inner["1"].mode == inner["2"].mode == "active"  # each keeps its own


# ----- end to end on the bundled demo model ---------------------------------------------------------------

@pytest.fixture(scope="module")
def reference_picture():
    """workflows/txt2img.json with the fixtures' seed, steps, cfg, size, batch and prompts."""
    wf = nodegraph.load(os.path.join(REPO, "workflows", "txt2img.json"))
    for name, value in (("seed", SEED), ("steps", STEPS), ("cfg", CFG)):
        wf.set_param("sampler", name, value)
    for name, value in (("width", SIZE), ("height", SIZE), ("batch_size", 1)):
        wf.set_param("size", name, value)
    wf.set_param("prompt", "prompt", PROMPT)
    wf.set_param("prompt", "negative", NEGATIVE)
    return nodegraph.Engine(device="cpu").run(wf, targets=["decode"]).outputs["decode"]["image"]


@pytest.mark.parametrize("name, decode", [("api_txt2img", "8"), ("ui_txt2img_v04", "8"), ("ui_txt2img_v1", "15"),
                                          ("ui_subgraph", "30/2")])
def test_comfyui_txt2img_draws_the_same_picture_as_ours(name, decode, reference_picture):
    wf = load(name)
    engine = nodegraph.Engine(device="cpu")  # its own: a shared cache would hand back the first file's picture
    result = engine.run(wf, targets=[decode])
    assert result.cached == [] and decode in result.executed
    picture = result.outputs[decode]["image"]
    assert picture.shape == (1, 3, SIZE, SIZE)
    assert torch.equal(picture, reference_picture)


def test_v1_bypassed_invert_and_muted_preview_leave_the_saved_picture_alone(tmp_path, reference_picture):
    result = nodegraph.Engine(device="cpu").run(load("ui_txt2img_v1"), output_dir=tmp_path)
    assert result.bypassed == ["16"] and "18" not in result.executed  # a muted output node does not run
    (saved,) = result.files
    assert os.path.basename(saved) == "ComfyUI_00001.png"
    pixels = torch.from_numpy(np.array(Image.open(saved).convert("RGB"))).permute(2, 0, 1)
    expected = (reference_picture[0].clamp(0, 1) * 255).round().to(torch.uint8)
    assert (pixels.int() - expected.int()).abs().max() <= 1  # not inverted


# ----- the command line ----------------------------------------------------------------------------------

def test_cli_import_writes_our_workflow_and_prints_the_report(tmp_path):
    out = tmp_path / "converted.json"
    done = cli("import", FILES / "ui_txt2img_v04.json", "-o", out, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {"nodes", "mapped", "unmapped", "output", "notes", "format"} <= set(report)
    assert (report["nodes"], report["mapped"], report["unmapped"], report["format"]) == (9, 9, [], "ui")
    assert report["output"] == str(out)
    wf = nodegraph.load(out)
    assert wf.imported is None and wf.nodes["12"].params["seed"] == SEED and via_of(wf, "8", "vae") == [[1010, 560]]


def test_cli_import_strict_fails_on_unmapped_nodes(tmp_path):
    done = cli("import", FILES / "api_every_class.json", "-o", tmp_path / "every.json", "--strict")
    assert done.returncode == 1
    assert "131 of 134 ComfyUI nodes converted" in done.stderr
    assert "not converted: node 150 (LoadAudio)" in done.stderr
    assert "not converted: node 152 (SaveAnimatedWEBP)" in done.stderr
    assert (tmp_path / "every.json").is_file()  # written all the same, placeholders and all
    done = cli("import", FILES / "api_every_class.json", "-o", tmp_path / "every.json", "--json")
    assert done.returncode == 0
    report = json.loads(done.stdout)
    assert [(u["id"], u["class_type"]) for u in report["unmapped"]] == [
        ("150", "LoadAudio"), ("151", "SaveAudio"), ("152", "SaveAnimatedWEBP")]
    assert cli("import", FILES / "api_txt2img.json", "-o", tmp_path / "t.json", "--strict").returncode == 0


def test_cli_validate_reads_comfyui_files(tmp_path):
    done = cli("validate", FILES / "api_txt2img.json")
    assert done.returncode == 0 and "ok (7 nodes, 10 links)" in done.stdout
    assert cli("validate", FILES / "ui_subgraph.json").returncode == 0
    done = cli("validate", FILES / "api_every_class.json", "--json")
    assert done.returncode == 1
    problems = json.loads(done.stdout)["problems"]
    by_node = {p["node"]: p["message"] for p in problems if p["node"] in ("150", "151")}
    assert "'LoadAudio' was not converted" in by_node["150"]
    assert "'SaveAudio' was not converted" in by_node["151"]


def test_cli_runs_a_comfyui_api_file(tmp_path):
    done = cli("run", FILES / "api_txt2img.json", "--output-dir", tmp_path / "out", "--device", "cpu", timeout=300)
    assert done.returncode == 0, done.stderr
    saved = tmp_path / "out" / "ComfyUI_00001.png"
    assert done.stdout.strip() == str(saved)
    with Image.open(saved) as im:
        assert im.size == (SIZE, SIZE)
        embedded = json.loads(im.info["workflow"])
    assert embedded["format"] == "nodegraph-workflow"  # what ran is saved as ours


# ----- PNGs ComfyUI wrote -------------------------------------------------------------------------------

def _png_prompt():
    prompt = raw("api_txt2img")  # the API form of ui_txt2img_v04: the same ids, the primitive's seed applied
    prompt["9"]["inputs"]["filename_prefix"] = "demo/square"
    return prompt


def test_a_comfyui_png_converts_from_its_workflow_chunk(tmp_path):
    png = comfy_png(tmp_path / "ComfyUI_00007_.png", prompt=_png_prompt(), workflow=raw("ui_txt2img_v04"))
    wf = nodegraph.load(png)
    assert wf.imported.format == "ui"
    assert wf.nodes["3"].position == (900, 180) and wf.nodes["3"].title == "Sampler (4 steps)"  # the layout
    assert wf.nodes["12"].type == "value.seed" and via_of(wf, "8", "vae") == [[1010, 560]]
    assert wf.nodes["14"].type == "doc.note"
    assert wf.base_dir == tmp_path.resolve()


def test_a_comfyui_png_with_only_the_prompt_converts_from_it(tmp_path):
    png = comfy_png(tmp_path / "api_only.png", prompt=_png_prompt())
    wf = nodegraph.load(png)
    assert wf.imported.format == "api"
    assert wf.nodes["3"].params["seed"] == SEED and wf.nodes["9"].params["filename_prefix"] == "demo/square"
    assert "12" not in wf.nodes  # the API format has no primitives, notes or reroutes


def test_a_png_with_a_v1_subgraph_workflow(tmp_path):
    png = comfy_png(tmp_path / "sub.png", workflow=raw("ui_subgraph"))
    wf = nodegraph.load(png)
    assert wf.nodes["30"].type == "subgraph:sample_and_decode" and "30.IMAGE -> 29.image" in links_of(wf)


def test_a_png_without_any_workflow_says_so(tmp_path):
    png = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(png)
    with pytest.raises(nodegraph.WorkflowFileError, match="no embedded workflow"):
        nodegraph.load(png)


def test_a_png_whose_workflow_chunk_is_null_converts_from_the_prompt(tmp_path):
    # Save Image writes json.dumps(extra_pnginfo["workflow"]): "null" when an API client sent no workflow
    png = tmp_path / "api_client.png"
    info = PngInfo()
    info.add_text("prompt", json.dumps(_png_prompt()))
    info.add_text("workflow", "null")
    Image.new("RGB", (64, 64)).save(png, pnginfo=info)
    wf = nodegraph.load(png)
    assert wf.imported.format == "api" and wf.nodes["3"].params["seed"] == SEED


# ----- conversions that are not exact say so ----------------------------------------------------------------

def test_latent_upscale_with_crop_center_is_noted():
    prompt = raw("api_every_class")
    prompt["13"]["inputs"]["crop"] = "center"
    wf = from_document(prompt, strict=False)
    assert any(n.startswith("node 13 (LatentUpscale)") and "crop" in n for n in wf.imported.notes)


def test_a_timestep_range_says_it_counts_steps_where_comfyui_counts_noise_levels(every):
    assert any(n.startswith("node 165 (ConditioningSetTimestepRange)") and "fractions of the Sampler's steps" in n
               for n in every.imported.notes)


def test_a_class_name_with_its_old_trailing_space_still_maps(tmp_path):
    prompt = {"1": {"class_type": "ConditioningAverage ", "inputs": {"conditioning_to_strength": 0.6}}}
    (tmp_path / "avg.json").write_text(json.dumps(prompt))
    wf = nodegraph.load(tmp_path / "avg.json", strict=False)
    assert wf.imported.unmapped == []
    assert wf.nodes["1"].type == "cond.combine" and wf.nodes["1"].params["weight"] == 0.4


def test_the_docs_table_lists_every_class_and_what_it_becomes():
    text = open(os.path.join(REPO, "docs", "comfyui.md"), encoding="utf-8").read()
    rows = dict(re.findall(r"^\| `([^`]+)` \| (.+) \|$", text, flags=re.M))
    assert set(rows) == set(TABLE) | set(BUILT)
    for cls, spec in TABLE.items():
        assert f"(`{spec.type}`)" in rows[cls], cls


def test_a_position_json_reads_as_infinity_is_dropped_and_the_file_still_saves(tmp_path):
    text = json.dumps(raw("ui_txt2img_v04")).replace('"pos": [40, 420]', '"pos": [1e400, 420]')
    assert "1e400" in text
    (tmp_path / "far.json").write_text(text)
    wf = nodegraph.load(tmp_path / "far.json", strict=False)
    assert wf.nodes["4"].position == (0, 0) and wf.problems == []
    nodegraph.save(wf, tmp_path / "ours.json")  # no infinity reaches the file
