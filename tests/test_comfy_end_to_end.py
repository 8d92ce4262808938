"""A ComfyUI user's day, end to end: a ComfyUI install whose models/ holds lone files (models/unet, models/clip,
models/vae) in their original key layouts, a workflow in the API format as ComfyUI's "Export (API)" writes it,
naming those models by their ComfyUI names. It imports with every node mapped, runs in-process and through the
CLI, and draws exactly the picture the same tiny models draw from their diffusers folder through our own graph.

The tiny models do not fit the shipped real-size configs, so each loader's ``config`` is set to a folder holding
only the tiny model's configs (no weights, no T5 tokenizer: that one lies beside the T5 file, where ComfyUI users
put it), as a user with a non-standard model would.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nodegraph

import split_layouts as layouts
from test_diffusion_families import flux_folder, sdxl_folder  # noqa: F401 (fixtures)
from test_diffusion_sd import NEGATIVE, PROMPT

NODEGRAPH = os.path.join(os.path.dirname(sys.executable), "nodegraph")
SEED, STEPS, SIZE = 424242, 4, 32  # the tiny VAEs halve the size once: 32x32 pictures on 16x16 latents
FLUX_GUIDANCE = 3.5
SDXL_CFG = 5.0

# ----- the ComfyUI install ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def comfyui_root(tmp_path_factory):
    """An empty ComfyUI install (main.py, models/<kind>/); the families' fixtures below fill its models/."""
    root = tmp_path_factory.mktemp("comfy-day") / "ComfyUI"
    (root / "models").mkdir(parents=True)
    (root / "main.py").write_text("")
    for kind in ("checkpoints", "unet", "diffusion_models", "clip", "text_encoders", "vae", "loras"):
        (root / "models" / kind).mkdir()
    return root


@pytest.fixture
def comfyui(comfyui_root, monkeypatch):
    """The install, named the way a user names it; offline, as every test here must be."""
    monkeypatch.setenv("NODEGRAPH_COMFYUI", str(comfyui_root))
    monkeypatch.delenv("NODEGRAPH_COMFYUI_EXTRA_PATHS", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # conftest sets it too; the CLI's subprocess inherits it from here
    return comfyui_root


def pipeline(folder):
    from diffusers import DiffusionPipeline

    return DiffusionPipeline.from_pretrained(folder, local_files_only=True)


def configs_only(folder: Path, dest: Path, leave_out: tuple[str, ...] = ()) -> Path:
    """A diffusers folder's configs and tokenizers without its weights (and without the ``leave_out`` parts):
    what a user points a lone file's ``config`` at."""
    for item in folder.rglob("*"):
        rel = item.relative_to(folder)
        if item.is_file() and rel.parts[0] not in leave_out and not item.name.endswith(".safetensors"):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(item, dest / rel)
    return dest


@pytest.fixture(scope="module")
def flux_install(comfyui_root, flux_folder, tmp_path_factory):  # noqa: F811
    """The tiny Flux as ComfyUI users have Flux: BFL's transformer in models/unet (in a subfolder), CLIP-L and T5
    in models/clip with T5's tokenizer beside it, Flux's ae in models/vae; and its configs for the loaders."""
    pipe, models = pipeline(flux_folder), comfyui_root / "models"
    (models / "unet" / "FLUX").mkdir(exist_ok=True)
    layouts.save(layouts.flux_keys(pipe.transformer.state_dict()), models / "unet" / "FLUX" / "flux-tiny.safetensors")
    layouts.save(layouts.clip_keys(pipe.text_encoder), models / "clip" / "clip_l.safetensors")
    layouts.save(layouts.t5_keys(pipe.text_encoder_2), models / "clip" / "t5xxl_fp16.safetensors")
    shutil.copytree(flux_folder / "tokenizer_2", models / "clip" / "t5xxl_fp16.tokenizer")  # "<file stem>.tokenizer"
    layouts.save(layouts.vae_keys(pipe.vae), models / "vae" / "ae.safetensors")
    return configs_only(flux_folder, tmp_path_factory.mktemp("configs") / "tiny-flux", leave_out=("tokenizer_2",))


@pytest.fixture(scope="module")
def sdxl_install(comfyui_root, sdxl_folder, tmp_path_factory):  # noqa: F811
    """The tiny SDXL split into ComfyUI's folders: its UNet in the LDM layout (bare keys, as ComfyUI saves a lone
    UNet), CLIP-L and CLIP-G in transformers' layout, its VAE in the LDM layout."""
    pipe, models = pipeline(sdxl_folder), comfyui_root / "models"
    for kind in ("unet", "clip"):
        (models / kind / "SDXL").mkdir(exist_ok=True)
    layouts.save(layouts.unet_keys(pipe.unet, prefix=""), models / "unet" / "SDXL" / "sdxl-tiny.safetensors")
    layouts.save(layouts.clip_keys(pipe.text_encoder), models / "clip" / "SDXL" / "clip_l.safetensors")
    layouts.save(layouts.clip_keys(pipe.text_encoder_2), models / "clip" / "SDXL" / "clip_g.safetensors")
    layouts.save(layouts.vae_keys(pipe.vae), models / "vae" / "sdxl_vae.safetensors")
    return configs_only(sdxl_folder, tmp_path_factory.mktemp("configs") / "tiny-sdxl")


# ----- the workflows, as ComfyUI exports them ------------------------------------------------------------------


def node(class_type: str, title: str, **inputs) -> dict:
    return {"inputs": inputs, "class_type": class_type, "_meta": {"title": title}}


def flux_api() -> dict:
    """ComfyUI's Flux dev txt2img with a KSampler (its ids and titles), the models under their ComfyUI names."""
    return {
        "3": node("KSampler", "KSampler", seed=SEED, steps=STEPS, cfg=1, sampler_name="euler", scheduler="simple",
                  denoise=1, model=["12", 0], positive=["35", 0], negative=["33", 0], latent_image=["27", 0]),
        "6": node("CLIPTextEncode", "CLIP Text Encode (Positive Prompt)", text=PROMPT, clip=["11", 0]),
        "8": node("VAEDecode", "VAE Decode", samples=["3", 0], vae=["10", 0]),
        "9": node("SaveImage", "Save Image", filename_prefix="ComfyUI", images=["8", 0]),
        "10": node("VAELoader", "Load VAE", vae_name="ae.safetensors"),
        "11": node("DualCLIPLoader", "DualCLIPLoader", clip_name1="clip_l.safetensors",
                   clip_name2="t5xxl_fp16.safetensors", type="flux", device="default"),
        "12": node("UNETLoader", "Load Diffusion Model", unet_name="FLUX/flux-tiny.safetensors",
                   weight_dtype="default"),
        "27": node("EmptySD3LatentImage", "EmptySD3LatentImage", width=SIZE, height=SIZE, batch_size=1),
        "33": node("ConditioningZeroOut", "ConditioningZeroOut", conditioning=["6", 0]),
        "35": node("FluxGuidance", "FluxGuidance", guidance=FLUX_GUIDANCE, conditioning=["6", 0]),
    }


def sdxl_api() -> dict:
    """ComfyUI's default txt2img graph with the checkpoint loader split into UNET / DualCLIP / VAE loaders."""
    return {
        "3": node("KSampler", "KSampler", seed=SEED, steps=STEPS, cfg=SDXL_CFG, sampler_name="dpmpp_2m",
                  scheduler="karras", denoise=1, model=["10", 0], positive=["6", 0], negative=["7", 0],
                  latent_image=["5", 0]),
        "5": node("EmptyLatentImage", "Empty Latent Image", width=SIZE, height=SIZE, batch_size=1),
        "6": node("CLIPTextEncode", "CLIP Text Encode (Prompt)", text=PROMPT, clip=["11", 0]),
        "7": node("CLIPTextEncode", "CLIP Text Encode (Prompt)", text=NEGATIVE, clip=["11", 0]),
        "8": node("VAEDecode", "VAE Decode", samples=["3", 0], vae=["12", 0]),
        "9": node("SaveImage", "Save Image", filename_prefix="sdxl/ComfyUI", images=["8", 0]),
        "10": node("UNETLoader", "Load Diffusion Model", unet_name="SDXL/sdxl-tiny.safetensors",
                   weight_dtype="default"),
        "11": node("DualCLIPLoader", "DualCLIPLoader", clip_name1="SDXL/clip_l.safetensors",
                   clip_name2="SDXL/clip_g.safetensors", type="sdxl", device="default"),
        "12": node("VAELoader", "Load VAE", vae_name="sdxl_vae.safetensors"),
    }


def write_api(prompt: dict, path: Path) -> Path:
    path.write_text(json.dumps(prompt, indent=2), encoding="utf-8")  # the frontend's JSON.stringify(p, null, 2)
    return path


FLUX_LOADERS = {"12": "model.denoiser", "11": "model.text_encoder", "10": "model.vae"}
SDXL_LOADERS = {"10": "model.denoiser", "11": "model.text_encoder", "12": "model.vae"}


def imported(path: Path, loaders: dict) -> nodegraph.Workflow:
    wf = nodegraph.load(path, strict=False)
    report = wf.imported
    assert report is not None and report.format == "api"
    assert (report.nodes, report.mapped, report.unmapped) == (len(json.loads(path.read_text())),) * 2 + ([],)
    assert report.notes == [] and wf.problems == []
    for node_id, type_id in loaders.items():
        assert wf.nodes[node_id].type == type_id and wf.nodes[node_id].params.get("config", "") == ""
    return wf


def with_configs(wf: nodegraph.Workflow, loaders: dict, config: Path) -> nodegraph.Workflow:
    for node_id in loaders:
        wf.set_param(node_id, "config", str(config))
    return wf


def cli(*args, timeout=240):
    done = subprocess.run([NODEGRAPH, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def as_saved(image: torch.Tensor) -> np.ndarray:
    """An IMAGE tensor (1, 3, H, W) as the 8-bit RGB a PNG holds."""
    return image[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()


# ----- our own graphs on the diffusers folders: the references -----------------------------------------------


def our_txt2img(folder: Path, cfg: float, scheduler: str, negative: str = "") -> nodegraph.Workflow:
    """Load Checkpoint (the diffusers folder) -> Text Condition -> Sampler -> VAE Decode."""
    wf = nodegraph.Workflow()
    wf.add_node("model.checkpoint", "ckpt", params={"model": str(folder)})
    wf.add_node("cond.text", "text", params={"prompt": PROMPT, "negative": negative})
    wf.add_node("latent.empty", "empty", params={"width": SIZE, "height": SIZE, "batch_size": 1})
    wf.add_node("sampling.sampler", "sampler",
                params={"seed": SEED, "steps": STEPS, "cfg": cfg, "scheduler": scheduler})
    wf.add_node("vae.decode", "decode")
    for src, out, dst, inp in [("ckpt", "text_encoder", "text", "text_encoder"), ("ckpt", "vae", "empty", "vae"),
                               ("ckpt", "model", "sampler", "model"),
                               ("text", "conditioning", "sampler", "conditioning"),
                               ("empty", "latent", "sampler", "latent"), ("ckpt", "vae", "decode", "vae"),
                               ("sampler", "latent", "decode", "latent")]:
        wf.connect(src, out, dst, inp)
    return wf


@pytest.fixture(scope="module")
def flux_reference(flux_folder):  # noqa: F811
    """Flux is guidance-distilled, not CFG-guided: ComfyUI's cfg 1 + FluxGuidance 3.5 (and its zeroed negative) is
    our Sampler with cfg 3.5 and no Flux Guidance node, the negative prompt left empty (it is never used)."""
    wf = our_txt2img(flux_folder, cfg=FLUX_GUIDANCE, scheduler="euler")
    result = nodegraph.Engine(device="cpu").run(wf, targets=["decode"])
    assert result.outputs["ckpt"]["model"].family == "flux"
    return result.outputs["decode"]["image"]


@pytest.fixture(scope="module")
def sdxl_reference(sdxl_folder):  # noqa: F811
    """The negative prompt as ComfyUI wires it (a conditioning of its own into the Sampler's 'negative'), checked
    against the same prompt given as Text Condition's own negative: both are the one SDXL picture."""
    wf = our_txt2img(sdxl_folder, cfg=SDXL_CFG, scheduler="dpmpp_2m_karras")
    wf.add_node("cond.text", "neg", params={"prompt": NEGATIVE})
    wf.connect("ckpt", "text_encoder", "neg", "text_encoder")
    wf.connect("neg", "conditioning", "sampler", "negative")
    wf.add_node("cond.text", "text_with_negative", params={"prompt": PROMPT, "negative": NEGATIVE})
    wf.add_node("sampling.sampler", "sampler_2",
                params={"seed": SEED, "steps": STEPS, "cfg": SDXL_CFG, "scheduler": "dpmpp_2m_karras"})
    wf.add_node("vae.decode", "decode_2")
    for src, out, dst, inp in [("ckpt", "text_encoder", "text_with_negative", "text_encoder"),
                               ("ckpt", "model", "sampler_2", "model"),
                               ("text_with_negative", "conditioning", "sampler_2", "conditioning"),
                               ("empty", "latent", "sampler_2", "latent"), ("ckpt", "vae", "decode_2", "vae"),
                               ("sampler_2", "latent", "decode_2", "latent")]:
        wf.connect(src, out, dst, inp)
    result = nodegraph.Engine(device="cpu").run(wf, targets=["decode", "decode_2"])
    assert result.outputs["ckpt"]["model"].family == "sdxl"
    picture = result.outputs["decode"]["image"]
    torch.testing.assert_close(result.outputs["decode_2"]["image"], picture, rtol=1e-5, atol=1e-5)
    return picture


# ----- the tests ---------------------------------------------------------------------------------------------


def test_comfyui_flux_workflow_on_lone_files_draws_our_flux_folders_picture(comfyui, flux_install, flux_reference,
                                                                             tmp_path):
    wf = imported(write_api(flux_api(), tmp_path / "flux_dev_api.json"), FLUX_LOADERS)
    assert wf.nodes["12"].params["model"] == "FLUX/flux-tiny.safetensors"  # the ComfyUI names, kept as written
    assert (wf.nodes["11"].params["model"], wf.nodes["11"].params["model_2"], wf.nodes["11"].params["family"]) == \
        ("clip_l.safetensors", "t5xxl_fp16.safetensors", "flux")
    assert wf.nodes["35"].type == "cond.guidance" and wf.nodes["35"].params["guidance"] == FLUX_GUIDANCE
    assert wf.nodes["33"].type == "cond.zero_out" and wf.nodes["3"].params["cfg"] == 1
    assert wf.nodes["3"].params["scheduler"] == "euler"
    with pytest.raises(nodegraph.NodeFailed, match="cannot load flux-tiny.safetensors as a FluxTransformer2DModel"):
        nodegraph.Engine(device="cpu").run(wf, targets=["12"])  # the shipped real-size config cannot take it

    out = tmp_path / "output"
    result = nodegraph.Engine(device="cpu").run(with_configs(wf, FLUX_LOADERS, flux_install), output_dir=out)
    text = result.outputs["11"]["text_encoder"]
    assert result.outputs["12"]["model"].family == "flux" and text.family == "flux"
    t5_tokenizer = comfyui / "models" / "clip" / "t5xxl_fp16.tokenizer"  # the config folder has none
    assert Path(text.components["tokenizer_2"].name_or_path) == t5_tokenizer
    image = result.outputs["8"]["image"]
    assert image.shape == (1, 3, SIZE, SIZE)
    torch.testing.assert_close(image, flux_reference, rtol=1e-5, atol=1e-5)
    assert [Path(f) for f in result.files] == [out / "ComfyUI_00001.png"]


def test_cli_runs_the_comfyui_flux_workflow_with_the_configs_set(comfyui, flux_install, flux_reference, tmp_path):
    path = write_api(flux_api(), tmp_path / "flux_dev_api.json")
    sets = [a for node_id in FLUX_LOADERS for a in ("--set", f"{node_id}.config={flux_install}")]
    done = cli("run", path, "--output-dir", tmp_path / "out", "--device", "cpu", *sets)
    assert done.returncode == 0, done.stderr
    saved = tmp_path / "out" / "ComfyUI_00001.png"
    assert done.stdout.strip() == str(saved)
    with Image.open(saved) as im:
        assert im.size == (SIZE, SIZE)
        pixels = np.asarray(im.convert("RGB"))
        embedded = json.loads(im.info["workflow"])
    assert embedded["format"] == "nodegraph-workflow"  # what ran is saved as ours, the configs set
    assert {n["id"]: n["params"].get("config") for n in embedded["nodes"] if n["id"] in FLUX_LOADERS} == \
        dict.fromkeys(FLUX_LOADERS, str(flux_install))
    assert np.abs(pixels.astype(int) - as_saved(flux_reference).astype(int)).max() <= 1  # rounding, nothing more


def test_comfyui_sdxl_workflow_on_lone_files_draws_our_sdxl_folders_picture(comfyui, sdxl_install, sdxl_reference,
                                                                             tmp_path):
    wf = imported(write_api(sdxl_api(), tmp_path / "sdxl_api.json"), SDXL_LOADERS)
    assert (wf.nodes["11"].params["model"], wf.nodes["11"].params["model_2"], wf.nodes["11"].params["family"]) == \
        ("SDXL/clip_l.safetensors", "SDXL/clip_g.safetensors", "sdxl")
    assert (wf.nodes["3"].params["scheduler"], wf.nodes["3"].params["cfg"]) == ("dpmpp_2m_karras", SDXL_CFG)
    assert {str(link) for link in wf.links} >= {"7.conditioning -> 3.negative", "6.conditioning -> 3.conditioning"}

    out = tmp_path / "output"
    result = nodegraph.Engine(device="cpu").run(with_configs(wf, SDXL_LOADERS, sdxl_install), output_dir=out)
    assert result.outputs["10"]["model"].family == "sdxl" and result.outputs["11"]["text_encoder"].family == "sdxl"
    torch.testing.assert_close(result.outputs["8"]["image"], sdxl_reference, rtol=1e-5, atol=1e-5)
    assert [Path(f) for f in result.files] == [out / "sdxl" / "ComfyUI_00001.png"]
