"""Instruction-based editing: FLUX.1 Kontext through Reference Latent and the Sampler equals FluxKontextPipeline."""

import numpy as np
import pytest
import torch
from PIL import Image

import nodegraph

import tiny_models
from test_diffusion_sd import PROMPT


@pytest.fixture(scope="module")
def kontext_folder(tmp_path_factory):
    return tiny_models.flux_pipeline(tmp_path_factory.mktemp("models") / "tiny-kontext", kontext=True)


def _reference(path, width=48, height=32):
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def kontext_workflow(model, picture, steps=4, guidance=2.5, size=32, batch=1):
    wf = nodegraph.Workflow()
    wf.add_node("model.checkpoint", "ckpt", params={"model": str(model)})
    wf.add_node("cond.text", "text", params={"prompt": PROMPT})
    wf.add_node("image.load", "load", params={"path": str(picture)})
    wf.add_node("vae.encode", "encode")
    wf.add_node("cond.reference_latent", "reference")
    wf.add_node("latent.empty", "empty", params={"width": size, "height": size, "batch_size": batch})
    wf.add_node("sampling.sampler", "sampler", params={"seed": 7, "steps": steps, "cfg": guidance})
    wf.add_node("vae.decode", "decode")
    for src, out, dst, inp in [("ckpt", "text_encoder", "text", "text_encoder"), ("ckpt", "vae", "encode", "vae"),
                               ("load", "image", "encode", "image"), ("text", "conditioning", "reference", "conditioning"),
                               ("encode", "latent", "reference", "latent"), ("ckpt", "vae", "empty", "vae"),
                               ("ckpt", "model", "sampler", "model"), ("reference", "conditioning", "sampler", "conditioning"),
                               ("empty", "latent", "sampler", "latent"), ("ckpt", "vae", "decode", "vae"),
                               ("sampler", "latent", "decode", "latent")]:
        wf.connect(src, out, dst, inp)
    return wf


def test_kontext_edit_equals_the_diffusers_pipeline(kontext_folder, tmp_path, batch=2):
    """A batch of two from one reference (diffusers repeats the reference for each picture)."""
    from diffusers import FluxKontextPipeline

    picture = _reference(tmp_path / "reference.png")
    result = nodegraph.Engine(device="cpu").run(kontext_workflow(kontext_folder, picture, batch=batch),
                                                targets=["decode"])
    assert result.outputs["ckpt"]["model"].family == "flux"
    (reference,) = result.outputs["reference"]["conditioning"].references
    assert reference.shape == (1, 4, 16, 24)  # the 48x32 picture's latents, beside the 16x16 noisy latents
    pipe = FluxKontextPipeline.from_pretrained(kontext_folder, local_files_only=True)
    theirs = pipe(image=Image.open(picture), prompt=PROMPT, generator=torch.Generator("cpu").manual_seed(7),
                  num_inference_steps=4, guidance_scale=2.5, _auto_resize=False, height=32, width=32,
                  max_area=32 * 32, num_images_per_prompt=batch, output_type="pt").images
    ours = result.outputs["decode"]["image"]
    assert ours.shape == (batch, 3, 32, 32)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_the_reference_changes_the_picture_and_an_unlinked_latent_changes_nothing(kontext_folder, tmp_path):
    picture = _reference(tmp_path / "reference.png")
    wf = kontext_workflow(kontext_folder, picture)
    with_reference = nodegraph.Engine(device="cpu").run(wf, targets=["decode"]).outputs["decode"]["image"]
    wf.disconnect("reference", "latent")
    result = nodegraph.Engine(device="cpu").run(wf, targets=["decode"])
    assert result.outputs["reference"]["conditioning"].references == ()
    assert not torch.allclose(with_reference, result.outputs["decode"]["image"])


def test_two_references_sit_side_by_side(kontext_folder, tmp_path):
    """A second Reference Latent adds the second picture's tokens, placed after the first as ComfyUI does."""
    from nodes._families import _flux_reference_tokens

    first, second = torch.zeros(1, 4, 16, 24), torch.ones(1, 4, 16, 16)
    tokens, ids = _flux_reference_tokens((first, second), 2)
    assert tokens.shape == (2, 8 * 12 + 8 * 8, 16) and ids.shape == (2, 8 * 12 + 8 * 8, 3)
    assert (ids[..., 0] == 1).all()
    assert ids[0, :96, 1].max() == 7 and ids[0, :96, 2].max() == 11  # the first at the origin
    assert ids[0, 96:, 1].min() == 8 and ids[0, 96:, 2].min() == 0  # the second below it


def test_a_reference_for_a_model_that_takes_none_is_refused_in_words(tmp_path):
    sd = tiny_models.sd_pipeline(tmp_path / "sd")
    picture = _reference(tmp_path / "reference.png", 32, 32)
    wf = kontext_workflow(sd, picture)
    with pytest.raises(nodegraph.NodeFailed) as info:
        nodegraph.Engine(device="cpu").run(wf, targets=["sampler"])
    assert str(info.value) == ("node 'sampler' failed: Stable Diffusion 1.x/2.x models do not take reference latents: "
                               "Reference Latent is for edit models (Flux Kontext)")


def test_an_odd_sized_reference_is_refused_in_words(kontext_folder, tmp_path):
    picture = _reference(tmp_path / "reference.png", 34, 32)
    with pytest.raises(nodegraph.NodeFailed) as info:
        nodegraph.Engine(device="cpu").run(kontext_workflow(kontext_folder, picture), targets=["sampler"])
    assert "the reference latent is 17x16; Flux packs latents 2x2, so its sides must be even" in str(info.value)


def test_kontext_image_scale_picks_the_nearest_training_size(tmp_path):
    wf = nodegraph.Workflow()
    wf.add_node("image.load", "load", params={"path": str(_reference(tmp_path / "wide.png", 300, 200))})
    wf.add_node("image.kontext_scale", "scale")
    wf.connect("load", "image", "scale", "image")
    image = nodegraph.Engine(device="cpu").run(wf, targets=["scale"]).outputs["scale"]["image"]
    assert image.shape == (1, 3, 832, 1248)  # 1248 / 832 = 1.5 = 300 / 200
