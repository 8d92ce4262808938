"""Qwen-Image-Edit through Edit Condition and the Sampler equals QwenImageEditPipeline."""

import pytest
import torch

import nodegraph

import tiny_models
from test_diffusion_sd import NEGATIVE, PROMPT


@pytest.fixture(scope="module")
def qwen_edit_folder(tmp_path_factory):
    return tiny_models.qwen_image_pipeline(tmp_path_factory.mktemp("models") / "tiny-qwen-image-edit", edit=True)


def edit_workflow(model, picture, cfg=4.0, batch=1):
    wf = nodegraph.Workflow()
    wf.add_node("model.checkpoint", "ckpt", params={"model": str(model)})
    wf.add_node("image.load", "load", params={"path": str(picture)})
    wf.add_node("cond.edit_text", "edit", params={"prompt": PROMPT, "negative": NEGATIVE})
    wf.add_node("latent.empty", "empty", params={"width": 32, "height": 32, "batch_size": batch})
    wf.add_node("sampling.sampler", "sampler", params={"seed": 7, "steps": 2, "cfg": cfg})
    wf.add_node("vae.decode", "decode")
    for src, out, dst, inp in [("ckpt", "text_encoder", "edit", "text_encoder"), ("load", "image", "edit", "image"),
                               ("ckpt", "vae", "edit", "vae"), ("ckpt", "vae", "empty", "vae"),
                               ("ckpt", "model", "sampler", "model"), ("edit", "conditioning", "sampler", "conditioning"),
                               ("empty", "latent", "sampler", "latent"), ("ckpt", "vae", "decode", "vae"),
                               ("sampler", "latent", "decode", "latent")]:
        wf.connect(src, out, dst, inp)
    return wf


def test_qwen_image_edit_equals_the_diffusers_pipeline(qwen_edit_folder, tmp_path):
    """The picture goes through the VL text encoder and on as reference latents; the pipeline brings it to
    about a megapixel (1024x1024 here) for both, so the reference is 128x128 latents."""
    from diffusers import QwenImageEditPipeline
    from PIL import Image
    from test_diffusion_sd import _picture

    _picture(64).save(tmp_path / "in.png")
    result = nodegraph.Engine(device="cpu").run(edit_workflow(qwen_edit_folder, tmp_path / "in.png", batch=2),
                                                targets=["decode"])
    (reference,) = result.outputs["edit"]["conditioning"].references
    assert reference.shape == (1, 4, 128, 128)
    pipe = QwenImageEditPipeline.from_pretrained(qwen_edit_folder, local_files_only=True)
    theirs = pipe(image=Image.open(tmp_path / "in.png"), prompt=PROMPT, negative_prompt=NEGATIVE, true_cfg_scale=4.0,
                  num_inference_steps=2, height=32, width=32, num_images_per_prompt=2,
                  generator=torch.Generator("cpu").manual_seed(7), output_type="pt").images
    torch.testing.assert_close(result.outputs["decode"]["image"], theirs, rtol=1e-5, atol=1e-5)


def test_edit_condition_with_a_text_encoder_that_sees_no_pictures_is_refused_in_words(tmp_path):
    from test_diffusion_sd import _picture

    _picture().save(tmp_path / "in.png")
    sd = tiny_models.sd_pipeline(tmp_path / "sd")
    with pytest.raises(nodegraph.NodeFailed) as info:
        nodegraph.Engine(device="cpu").run(edit_workflow(sd, tmp_path / "in.png"), targets=["edit"])
    assert str(info.value) == ("node 'edit' failed: Edit Condition needs a text encoder that sees pictures "
                               "(Qwen-Image-Edit's), not Stable Diffusion 1.x/2.x's; use Text Condition and "
                               "Reference Latent")
