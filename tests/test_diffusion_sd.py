"""Stable Diffusion 1.x/2.x through the graph: equal to diffusers' pipelines, offline, re-running only what changed."""

import shutil
import socket
import threading

import numpy as np
import pytest
import torch

import nodegraph

import tiny_models

PROMPT, NEGATIVE = "a red circle on the left", "blue"


@pytest.fixture(scope="session")
def sd_folder(tmp_path_factory):
    return tiny_models.sd_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def sd_inpaint_folder(tmp_path_factory):
    return tiny_models.sd_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd-inpaint", seed=10, inpaint=True)


def txt2img(model, steps=4, cfg=5.0, scheduler="default", seed=7, size=32, batch=1):
    wf = nodegraph.Workflow()
    wf.add_node("model.checkpoint", "ckpt", params={"model": str(model)})
    wf.add_node("cond.text", "text", params={"prompt": PROMPT, "negative": NEGATIVE})
    wf.add_node("latent.empty", "empty", params={"width": size, "height": size, "batch_size": batch})
    wf.add_node("sampling.sampler", "sampler", params={"seed": seed, "steps": steps, "cfg": cfg, "scheduler": scheduler})
    wf.add_node("vae.decode", "decode")
    wf.add_node("image.invert", "invert")
    for src, out, dst, inp in [("ckpt", "text_encoder", "text", "text_encoder"), ("ckpt", "vae", "empty", "vae"),
                               ("ckpt", "model", "sampler", "model"), ("text", "conditioning", "sampler", "conditioning"),
                               ("empty", "latent", "sampler", "latent"), ("ckpt", "vae", "decode", "vae"),
                               ("sampler", "latent", "decode", "latent"), ("decode", "image", "invert", "image")]:
        wf.connect(src, out, dst, inp)
    return wf


def diffusers_scheduler(pipe, name):
    from nodes.sampler import SCHEDULERS
    import diffusers

    class_name, overrides = SCHEDULERS[name]
    if class_name:
        pipe.scheduler = getattr(diffusers, class_name).from_config(pipe.scheduler.config, **overrides)


@pytest.mark.parametrize("scheduler", ["default", "euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_karras", "unipc"])
def test_txt2img_equals_the_diffusers_pipeline(sd_folder, scheduler):
    from diffusers import StableDiffusionPipeline

    result = nodegraph.Engine(device="cpu").run(txt2img(sd_folder, scheduler=scheduler, batch=2), targets=["decode"])
    ours = result.outputs["decode"]["image"]
    pipe = StableDiffusionPipeline.from_pretrained(sd_folder, local_files_only=True)
    diffusers_scheduler(pipe, scheduler)
    theirs = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=4, guidance_scale=5.0, height=32, width=32,
                  num_images_per_prompt=2, generator=torch.Generator("cpu").manual_seed(7), output_type="pt").images
    assert ours.shape == theirs.shape == (2, 3, 32, 32)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(ours[0], ours[1])  # a batch is two different pictures


def test_img2img_equals_the_diffusers_pipeline(sd_folder):
    from diffusers import StableDiffusionImg2ImgPipeline

    wf = txt2img(sd_folder)
    wf.add_node("image.load", "load", params={"path": str(sd_folder.parent / "in.png")})
    wf.add_node("vae.encode", "encode")
    wf.connect("ckpt", "vae", "encode", "vae")
    wf.connect("load", "image", "encode", "image")
    wf.connect("encode", "latent", "sampler", "latent")
    wf.set_param("sampler", "denoise", 0.6)
    wf.set_param("sampler", "steps", 10)
    _picture().save(sd_folder.parent / "in.png")
    result = nodegraph.Engine(device="cpu").run(wf, targets=["decode"])
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(sd_folder, local_files_only=True)
    theirs = pipe(PROMPT, image=result.outputs["encode"]["latent"].samples, strength=0.6, negative_prompt=NEGATIVE,
                  num_inference_steps=10, guidance_scale=5.0, generator=torch.Generator("cpu").manual_seed(7),
                  output_type="pt").images
    assert result.executed.count("sampler") == 1 and "empty" not in result.executed
    torch.testing.assert_close(result.outputs["decode"]["image"], theirs, rtol=1e-5, atol=1e-5)


def _picture(size=32):
    from PIL import Image

    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def _inpaint_workflow(model, tmp_path, pad=False):
    from PIL import Image

    _picture().save(tmp_path / "in.png")
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    wf = txt2img(model)
    wf.remove_node("empty")
    wf.add_node("image.load", "load", params={"path": str(tmp_path / "in.png")})
    wf.add_node("latent.inpaint_encode", "inpaint")
    wf.add_node("image.save", "save", params={"filename_prefix": "inpainted"})
    if pad:  # outpaint: 8 px of new canvas on every side, feathered into the picture
        wf.add_node("image.pad", "pad", params={"left": 8, "right": 8, "top": 8, "bottom": 8, "feather": 4})
        wf.connect("load", "image", "pad", "image")
        wf.connect("pad", "image", "inpaint", "image")
        wf.connect("pad", "mask", "inpaint", "mask")
        wf.set_param("load", "path", str(tmp_path / "small.png"))
        _picture(16).save(tmp_path / "small.png")
    else:
        mask.save(tmp_path / "mask.png")
        wf.add_node("image.load", "mask_file", params={"path": str(tmp_path / "mask.png")})
        wf.add_node("mask.from_channel", "to_mask", params={"channel": "red"})
        wf.connect("mask_file", "image", "to_mask", "image")
        wf.connect("load", "image", "inpaint", "image")
        wf.connect("to_mask", "mask", "inpaint", "mask")
    wf.connect("ckpt", "vae", "inpaint", "vae")
    wf.connect("inpaint", "latent", "sampler", "latent")
    wf.connect("decode", "image", "save", "image")
    return wf


@pytest.mark.parametrize("which", ["blend", "9-channel"])
def test_inpaint_keeps_unmasked_pixels_bit_identical(sd_folder, sd_inpaint_folder, tmp_path, which):
    from PIL import Image

    model = sd_folder if which == "blend" else sd_inpaint_folder
    result = nodegraph.Engine(device="cpu").run(_inpaint_workflow(model, tmp_path), output_dir=tmp_path / "out")
    [saved] = result.files
    before = np.asarray(Image.open(tmp_path / "in.png"))
    after = np.asarray(Image.open(saved))
    inside = np.zeros((32, 32), bool)
    inside[8:24, 8:24] = True
    assert np.array_equal(after[~inside], before[~inside])
    assert np.abs(after[inside].astype(int) - before[inside]).mean() > 10  # the masked square was repainted


def test_outpaint_keeps_the_original_and_fills_the_border(sd_folder, tmp_path):
    from PIL import Image

    result = nodegraph.Engine(device="cpu").run(_inpaint_workflow(sd_folder, tmp_path, pad=True), output_dir=tmp_path / "o")
    after = np.asarray(Image.open(result.files[0]))
    assert after.shape == (32, 32, 3)
    original = np.asarray(Image.open(tmp_path / "small.png"))
    assert np.array_equal(after[12:20, 12:20], original[4:12, 4:12])  # beyond the 4 px feather: untouched
    assert after[:8].std() > 5  # the new border was painted, not left flat


def test_tweaking_decode_or_a_pil_op_reruns_neither_sampler_nor_text_encoder(sd_folder):
    engine, wf = nodegraph.Engine(device="cpu"), txt2img(sd_folder)
    wf.add_node("image.preview", "look")
    wf.connect("invert", "image", "look", "image")
    first = engine.run(wf)
    assert first.executed == ["ckpt", "empty", "text", "sampler", "decode", "invert", "look"]
    wf.set_param("decode", "tiled", True)
    wf.set_param("decode", "tile_size", 64)
    assert engine.run(wf).executed == ["decode"]  # same pixels: invert is cut off
    wf.add_node("image.flip", "flip")
    wf.connect("invert", "image", "flip", "image")
    wf.add_node("image.preview", "show")
    wf.connect("flip", "image", "show", "image")
    assert engine.run(wf).executed == ["flip", "show"]
    wf.set_param("sampler", "cfg", 3.0)
    result = engine.run(wf)
    assert result.executed == ["sampler", "decode", "invert", "flip", "look", "show"]
    assert result.reasons["sampler"] == "parameter 'cfg' changed (5.0 -> 3.0)"


def test_same_seed_same_picture_other_seed_other_picture(sd_folder):
    images = []
    for seed in (1, 1, 2):
        result = nodegraph.Engine(device="cpu").run(txt2img(sd_folder, seed=seed), targets=["decode"])
        images.append(result.outputs["decode"]["image"])
    assert torch.equal(images[0], images[1]) and not torch.allclose(images[0], images[2])


def test_sampler_reports_every_step_with_a_preview_and_can_be_cancelled(sd_folder):
    events, cancel = [], threading.Event()
    engine, wf = nodegraph.Engine(device="cpu"), txt2img(sd_folder, steps=6)
    engine.run(wf, on_event=events.append, targets=["decode"])
    steps = [e for e in events if e.kind == "progress" and e.node == "sampler"]
    assert [round(e.fraction, 3) for e in steps] == [round((i + 1) / 6, 3) for i in range(6)]
    assert steps[0].preview.shape == (1, 3, 16, 16) and 0 <= float(steps[0].preview.min()) <= float(steps[0].preview.max()) <= 1

    def stop_at_half(event):
        if event.kind == "progress" and event.node == "sampler" and event.fraction >= 0.5:
            cancel.set()

    wf.set_param("sampler", "seed", 99)
    with pytest.raises(nodegraph.RunCancelled) as info:
        engine.run(wf, on_event=stop_at_half, cancel=cancel, targets=["decode"])
    assert info.value.node == "sampler"
    assert engine.dirty(wf, targets=["decode"]) == {"sampler", "decode"}  # the cache is consistent


def test_split_sampling_with_start_and_end_steps_continues_the_same_schedule(sd_folder):
    engine = nodegraph.Engine(device="cpu")
    whole = engine.run(txt2img(sd_folder, steps=6, scheduler="euler"), targets=["sampler"]).outputs["sampler"]["latent"]
    wf = txt2img(sd_folder, steps=6, scheduler="euler")
    wf.set_param("sampler", "end_step", 3)
    wf.add_node("sampling.sampler", "second", params={"seed": 7, "steps": 6, "cfg": 5.0, "scheduler": "euler",
                                                       "start_step": 3})
    wf.connect("ckpt", "model", "second", "model")
    wf.connect("text", "conditioning", "second", "conditioning")
    wf.connect("sampler", "latent", "second", "latent")
    split = engine.run(wf, targets=["second"]).outputs["second"]["latent"]
    torch.testing.assert_close(split.samples, whole.samples, rtol=1e-5, atol=1e-5)


def test_conditioning_of_the_wrong_width_is_refused_in_words(sd_folder, tmp_path):
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTokenizer

    other = tmp_path / "wide"
    tiny_models.write_clip_tokenizer(tmp_path / "tok")
    StableDiffusionPipeline(vae=tiny_models.kl_vae(1), text_encoder=tiny_models.clip_text_model(2, hidden=64),
                            tokenizer=CLIPTokenizer.from_pretrained(tmp_path / "tok"),
                            unet=tiny_models.sd_unet(3, cross_attention_dim=64),
                            scheduler=__import__("diffusers").DDIMScheduler(steps_offset=1), safety_checker=None,
                            feature_extractor=None, requires_safety_checker=False).save_pretrained(other)
    wf = txt2img(sd_folder)
    wf.add_node("model.checkpoint", "other", params={"model": str(other)})
    wf.connect("other", "text_encoder", "text", "text_encoder")
    with pytest.raises(nodegraph.NodeFailed) as info:
        nodegraph.Engine(device="cpu").run(wf, targets=["sampler"])
    assert str(info.value) == ("node 'sampler' failed: the conditioning is 64 wide but this UNet expects 32 "
                               "(an SD 1.x text encoder with an SD 2.x model, or the reverse?)")


def test_a_flow_scheduler_on_a_unet_model_is_refused(sd_folder):
    with pytest.raises(nodegraph.NodeFailed, match="scheduler 'flow_euler' does not fit a Stable Diffusion"):
        nodegraph.Engine(device="cpu").run(txt2img(sd_folder, scheduler="flow_euler"), targets=["sampler"])


def test_models_load_by_name_from_model_folders_and_from_the_hf_cache_with_no_network(sd_folder, tmp_path, monkeypatch):
    from nodes._model_files import list_models

    attempts = []
    real_connect = socket.socket.connect

    def guard(self, address):
        attempts.append(address)
        raise OSError("network disabled in tests")

    monkeypatch.setenv("NODEGRAPH_MODEL_PATHS", str(sd_folder.parent))
    monkeypatch.setenv("NODEGRAPH_SETTINGS", str(tmp_path / "settings.json"))
    assert "tiny-sd" in list_models()
    snapshot = tmp_path / "hub" / "models--tiny--sd" / "snapshots" / ("0" * 40)
    shutil.copytree(sd_folder, snapshot)
    (tmp_path / "hub" / "models--tiny--sd" / "refs").mkdir()
    (tmp_path / "hub" / "models--tiny--sd" / "refs" / "main").write_text("0" * 40)
    import huggingface_hub.constants  # read once at import: a user sets HF_HUB_CACHE before starting

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(socket.socket, "connect", guard)
    try:
        by_name = nodegraph.Engine(device="cpu").run(txt2img("tiny-sd"), targets=["decode"])
        from_hub = nodegraph.Engine(device="cpu").run(txt2img("hf:tiny/sd"), targets=["decode"])
        with pytest.raises(nodegraph.NodeFailed, match="'tiny/missing' is not in the Hugging Face cache"):
            nodegraph.Engine(device="cpu").run(txt2img("hf:tiny/missing"), targets=["decode"])
        with pytest.raises(nodegraph.NodeFailed, match="model 'nope' not found .*tiny-sd|model 'nope' not found"):
            nodegraph.Engine(device="cpu").run(txt2img("nope"), targets=["decode"])
    finally:
        monkeypatch.setattr(socket.socket, "connect", real_connect)
    assert attempts == []
    torch.testing.assert_close(by_name.outputs["decode"]["image"], from_hub.outputs["decode"]["image"])


def test_a_swapped_vae_decodes_and_an_inpainting_model_needs_an_inpaint_latent(sd_folder, sd_inpaint_folder):
    wf = txt2img(sd_folder)
    wf.add_node("model.vae", "vae2", params={"model": str(sd_inpaint_folder)})
    wf.connect("vae2", "vae", "decode", "vae")
    image = nodegraph.Engine(device="cpu").run(wf, targets=["decode"]).outputs["decode"]["image"]
    assert image.shape == (1, 3, 32, 32)
    with pytest.raises(nodegraph.NodeFailed, match="inpainting model \\(9 input channels\\): feed it an Inpaint Encode"):
        nodegraph.Engine(device="cpu").run(txt2img(sd_inpaint_folder), targets=["sampler"])


@pytest.mark.parametrize("kind", ["kl", "dc"])
def test_tiled_decode_and_encode_match_the_whole_picture(kind, tmp_path):
    import tiny_models as tm
    from nodes.latent import encode
    from nodes.models import make_vae

    vae = make_vae(tm.kl_vae(1) if kind == "kl" else tm.dc_vae(1))
    image = torch.rand(1, 3, 128, 128)
    whole = encode(vae, image)
    tiled = encode(vae, image, tiled=True, tile_size=64)
    assert whole.shape == tiled.shape == (1, 4, 64, 64)
    from nodes._diffusion_types import Latent
    from nodes.latent import vae_decode

    class Ctx:
        device = torch.device("cpu")

    latent = Latent(whole, 4)
    a = vae_decode(Ctx(), vae, latent, False, 512)["image"]
    b = vae_decode(Ctx(), vae, latent, True, 64)["image"]
    assert a.shape == b.shape == (1, 3, 128, 128)
    assert (a - b).abs().mean() < 0.05  # tiles blend at their seams; the picture is the same
    assert vae.module.use_tiling is False  # the shared module is left as it was


def test_components_load_on_their_own_and_draw_the_same_picture(sd_folder):
    whole = nodegraph.Engine(device="cpu").run(txt2img(sd_folder), targets=["decode"]).outputs["decode"]["image"]
    for denoiser in (str(sd_folder), str(sd_folder / "unet")):  # from the pipeline folder, or the UNet's own
        wf = txt2img(sd_folder)
        wf.add_node("model.denoiser", "unet", params={"model": denoiser})
        wf.add_node("model.text_encoder", "clip", params={"model": str(sd_folder)})
        wf.connect("unet", "model", "sampler", "model")
        wf.connect("clip", "text_encoder", "text", "text_encoder")
        wf.set_param("sampler", "scheduler", "euler")  # a bare UNet gets the family's usual (Euler) settings
        result = nodegraph.Engine(device="cpu").run(wf, targets=["decode"])
        reference = nodegraph.Engine(device="cpu").run(txt2img(sd_folder, scheduler="euler"), targets=["decode"])
        torch.testing.assert_close(result.outputs["decode"]["image"], reference.outputs["decode"]["image"])
        assert result.outputs["unet"]["model"].family == "sd"
    assert whole.shape == (1, 3, 32, 32)
    with pytest.raises(nodegraph.NodeFailed, match="holds a AutoencoderKL, not a UNet or transformer"):
        wf.set_param("unet", "model", str(sd_folder / "vae"))
        nodegraph.Engine(device="cpu").run(wf, targets=["sampler"])
