"""The small generation nodes ComfyUI workflows use: a separate negative prompt, CLIP Skip, Zero and
Combine Conditioning, Flux Guidance, Set Latent Mask, Resize/Scale Latent, Scale image, Note."""

import numpy as np
import pytest
import torch

import nodegraph

import tiny_models
from test_diffusion_sd import NEGATIVE, PROMPT, sd_folder, txt2img  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def engine():
    return nodegraph.Engine(device="cpu")


def picture(engine, wf):
    return engine.run(wf, targets=["decode"]).outputs["decode"]["image"]


def test_a_negative_prompt_of_its_own_draws_what_the_negative_field_draws(engine, sd_folder):  # noqa: F811
    together = picture(engine, txt2img(sd_folder))
    apart = txt2img(sd_folder)
    apart.set_param("text", "negative", "")
    apart.add_node("cond.text", "neg", params={"prompt": NEGATIVE})
    apart.connect("ckpt", "text_encoder", "neg", "text_encoder")
    apart.connect("neg", "conditioning", "sampler", "negative")
    assert torch.equal(picture(engine, apart), together)
    apart.set_param("neg", "prompt", "green")
    assert not torch.allclose(picture(engine, apart), together)


def test_clip_skip_encodes_from_an_earlier_layer_through_the_final_norm(engine, sd_folder):  # noqa: F811
    from transformers import CLIPTextModel, CLIPTokenizer

    wf = txt2img(sd_folder)
    wf.add_node("cond.clip_skip", "skip", params={"skip": 1})
    wf.connect("ckpt", "text_encoder", "skip", "text_encoder")
    wf.connect("skip", "text_encoder", "text", "text_encoder")
    cond = engine.run(wf, targets=["text"]).outputs["text"]["conditioning"]
    tokenizer = CLIPTokenizer.from_pretrained(sd_folder / "tokenizer")
    encoder = CLIPTextModel.from_pretrained(sd_folder / "text_encoder")
    ids = tokenizer(PROMPT, padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt").input_ids
    with torch.no_grad():
        hidden = encoder(ids, output_hidden_states=True)
    skipped = encoder.final_layer_norm(hidden.hidden_states[-2])  # diffusers' clip_skip=1, ComfyUI's layer -2
    plain = hidden.last_hidden_state
    torch.testing.assert_close(cond.positive["prompt_embeds"], skipped)
    assert not torch.allclose(skipped, plain)
    wf.set_param("skip", "skip", 0)
    torch.testing.assert_close(engine.run(wf, targets=["text"]).outputs["text"]["conditioning"].positive["prompt_embeds"],
                               plain)


def test_zero_and_combine_conditioning(engine, sd_folder):  # noqa: F811
    wf = txt2img(sd_folder)
    wf.add_node("cond.text", "other", params={"prompt": "a green square"})
    wf.connect("ckpt", "text_encoder", "other", "text_encoder")
    wf.add_node("cond.combine", "mix", params={"weight": 0.0})
    wf.connect("text", "conditioning", "mix", "a")
    wf.connect("other", "conditioning", "mix", "b")
    wf.add_node("cond.zero_out", "zero")
    wf.connect("text", "conditioning", "zero", "conditioning")
    out = engine.run(wf, targets=["mix", "zero", "other"]).outputs
    a, b = engine.run(wf, targets=["text"]).outputs["text"]["conditioning"], out["other"]["conditioning"]
    torch.testing.assert_close(out["mix"]["conditioning"].positive["prompt_embeds"], a.positive["prompt_embeds"])
    wf.set_param("mix", "weight", 1.0)
    mixed = engine.run(wf, targets=["mix"]).outputs["mix"]["conditioning"]
    torch.testing.assert_close(mixed.positive["prompt_embeds"], b.positive["prompt_embeds"])
    zero = out["zero"]["conditioning"]
    assert all(not t.any() for t in (*zero.positive.values(), *zero.negative.values()))


@pytest.fixture(scope="module")
def flux_folder(tmp_path_factory):
    return tiny_models.flux_pipeline(tmp_path_factory.mktemp("models") / "tiny-flux")


def test_flux_guidance_sets_the_scale_the_sampler_cfg_otherwise_sets(engine, flux_folder):
    by_cfg = txt2img(flux_folder, cfg=3.5, size=32, scheduler="euler")
    guided = txt2img(flux_folder, cfg=1.0, size=32, scheduler="euler")
    guided.add_node("cond.guidance", "guidance", params={"guidance": 3.5})
    guided.disconnect("sampler", "conditioning")
    guided.connect("text", "conditioning", "guidance", "conditioning")
    guided.connect("guidance", "conditioning", "sampler", "conditioning")
    assert torch.equal(picture(engine, guided), picture(engine, by_cfg))
    guided.set_param("guidance", "guidance", 1.0)
    assert not torch.allclose(picture(engine, guided), picture(engine, by_cfg))


def test_set_latent_mask_keeps_the_latent_outside_the_mask(engine, sd_folder, tmp_path):  # noqa: F811
    from PIL import Image

    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(tmp_path / "grey.png")
    mask = np.zeros((32, 32), np.uint8)
    mask[:, 16:] = 255  # repaint the right half
    Image.fromarray(mask).save(tmp_path / "mask.png")
    wf = txt2img(sd_folder)
    for node_id, path in (("picture", "grey.png"), ("maskfile", "mask.png")):
        wf.add_node("image.load", node_id, params={"path": str(tmp_path / path)})
    wf.add_node("mask.from_channel", "mask", params={"channel": "red"})
    wf.connect("maskfile", "image", "mask", "image")
    wf.add_node("vae.encode", "encode")
    wf.connect("ckpt", "vae", "encode", "vae")
    wf.connect("picture", "image", "encode", "image")
    wf.add_node("latent.set_mask", "masked")
    wf.connect("encode", "latent", "masked", "latent")
    wf.connect("mask", "mask", "masked", "mask")
    wf.connect("masked", "latent", "sampler", "latent")
    out = engine.run(wf, targets=["sampler", "encode"]).outputs
    before, after = out["encode"]["latent"].samples, out["sampler"]["latent"].samples
    torch.testing.assert_close(after[..., :2], before[..., :2])  # the left half, away from the soft edge
    assert not torch.allclose(after[..., 3:], before[..., 3:])


def test_latent_resize_and_scale_and_image_scale(engine, sd_folder):  # noqa: F811
    wf = txt2img(sd_folder)
    wf.add_node("latent.scale", "bigger", params={"factor": 2.0})
    wf.connect("sampler", "latent", "bigger", "latent")
    wf.add_node("latent.resize", "sized", params={"width": 48, "height": 16, "method": "bilinear"})
    wf.connect("sampler", "latent", "sized", "latent")
    wf.add_node("image.scale", "half", params={"factor": 0.5, "resample": "bilinear"})
    wf.connect("decode", "image", "half", "image")
    out = engine.run(wf, targets=["bigger", "sized", "half", "sampler"]).outputs
    side = out["sampler"]["latent"].samples.shape[-1]
    f = 32 // side  # pixels per latent pixel of this tiny VAE
    assert out["bigger"]["latent"].samples.shape[-2:] == (2 * side, 2 * side)
    assert out["bigger"]["latent"].meta["pixel_size"] == (64, 64)
    assert out["sized"]["latent"].samples.shape[-2:] == (16 // f, 48 // f)
    assert out["half"]["image"].shape[-2:] == (16, 16)
    wf.set_param("sized", "width", 8 * f + 1 if f > 1 else 9)
    with pytest.raises(nodegraph.NodeFailed, match=f"multiples of {f}"):
        engine.run(wf, targets=["sized"])


def test_a_note_never_runs(engine, sd_folder):  # noqa: F811
    wf = txt2img(sd_folder)
    wf.add_node("doc.note", "note", params={"text": "decode at 32 px"})
    wf.add_node("image.preview", "show")
    wf.connect("invert", "image", "show", "image")
    result = engine.run(wf)
    assert "show" in result.executed and "note" not in result.executed + result.cached


@pytest.fixture(scope="module")
def sd3_folder(tmp_path_factory):
    return tiny_models.sd3_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd3")


def test_sampling_shift_changes_a_flow_models_schedule_and_refuses_a_unet(engine, sd3_folder, sd_folder):  # noqa: F811
    import json

    own = json.loads((sd3_folder / "scheduler" / "scheduler_config.json").read_text()).get("shift", 1.0)
    plain = txt2img(sd3_folder, size=32, scheduler="euler")
    shifted = txt2img(sd3_folder, size=32, scheduler="euler")
    shifted.add_node("model.shift", "shift", params={"shift": own})
    shifted.disconnect("sampler", "model")
    shifted.connect("ckpt", "model", "shift", "model")
    shifted.connect("shift", "model", "sampler", "model")
    assert torch.equal(picture(engine, shifted), picture(engine, plain))
    shifted.set_param("shift", "shift", own * 4)
    assert not torch.allclose(picture(engine, shifted), picture(engine, plain))
    unet = txt2img(sd_folder)
    unet.add_node("model.shift", "shift")
    unet.connect("ckpt", "model", "shift", "model")
    with pytest.raises(nodegraph.NodeFailed, match="Sampling Shift is for flow models"):
        engine.run(unet, targets=["shift"])
