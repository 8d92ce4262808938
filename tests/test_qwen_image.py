"""Qwen-Image through the graph equals QwenImagePipeline (Qwen-Image-Edit: test_qwen_image_edit.py)."""

import pytest
import torch

import nodegraph

import tiny_models
from test_diffusion_sd import NEGATIVE, PROMPT, txt2img


@pytest.fixture(scope="module")
def qwen_folder(tmp_path_factory):
    return tiny_models.qwen_image_pipeline(tmp_path_factory.mktemp("models") / "tiny-qwen-image")


def test_qwen_image_txt2img_equals_the_diffusers_pipeline(qwen_folder):
    from diffusers import QwenImagePipeline

    result = nodegraph.Engine(device="cpu").run(txt2img(qwen_folder, batch=2, cfg=4.0), targets=["decode"])
    assert result.outputs["ckpt"]["model"].family == "qwen_image"
    assert result.outputs["ckpt"]["vae"].kind == "qwen"
    pipe = QwenImagePipeline.from_pretrained(qwen_folder, local_files_only=True)
    theirs = pipe(PROMPT, negative_prompt=NEGATIVE, true_cfg_scale=4.0, num_inference_steps=4, height=32, width=32,
                  num_images_per_prompt=2, generator=torch.Generator("cpu").manual_seed(7), output_type="pt").images
    ours = result.outputs["decode"]["image"]
    assert ours.shape == (2, 3, 32, 32)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_qwen_image_without_guidance_equals_the_pipeline_without_a_negative(qwen_folder):
    from diffusers import QwenImagePipeline

    result = nodegraph.Engine(device="cpu").run(txt2img(qwen_folder, cfg=1.0), targets=["decode"])
    pipe = QwenImagePipeline.from_pretrained(qwen_folder, local_files_only=True)
    theirs = pipe(PROMPT, num_inference_steps=4, height=32, width=32, generator=torch.Generator("cpu").manual_seed(7),
                  output_type="pt").images
    torch.testing.assert_close(result.outputs["decode"]["image"], theirs, rtol=1e-5, atol=1e-5)


def test_qwen_vae_encodes_and_decodes_one_frame_clips(qwen_folder, tmp_path):
    """VAE Encode normalises with the VAE's per-channel mean and std, as the edit pipeline does."""
    from diffusers import AutoencoderKLQwenImage
    from test_diffusion_sd import _picture

    _picture().save(tmp_path / "in.png")
    wf = nodegraph.Workflow()
    wf.add_node("model.vae", "vae", params={"model": str(qwen_folder)})
    wf.add_node("image.load", "load", params={"path": str(tmp_path / "in.png")})
    wf.add_node("vae.encode", "encode")
    wf.add_node("vae.decode", "decode")
    for src, out, dst, inp in [("vae", "vae", "encode", "vae"), ("load", "image", "encode", "image"),
                               ("vae", "vae", "decode", "vae"), ("encode", "latent", "decode", "latent")]:
        wf.connect(src, out, dst, inp)
    result = nodegraph.Engine(device="cpu").run(wf, targets=["decode"])
    image = result.outputs["load"]["image"]
    vae = AutoencoderKLQwenImage.from_pretrained(qwen_folder / "vae", local_files_only=True)
    with torch.no_grad():
        raw = vae.encode(image.unsqueeze(2) * 2 - 1).latent_dist.mode()
        mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
        std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
        decoded = vae.decode(raw).sample[:, :, 0]
    latent = result.outputs["encode"]["latent"]
    assert latent.samples.shape == (1, 4, 4, 4) and latent.channels == 4
    torch.testing.assert_close(latent.samples, ((raw - mean) / std)[:, :, 0])
    torch.testing.assert_close(result.outputs["decode"]["image"], (decoded / 2 + 0.5).clamp(0, 1), rtol=1e-5, atol=1e-5)


def test_tiled_qwen_vae_is_refused_in_words(qwen_folder):
    wf = txt2img(qwen_folder, cfg=1.0, steps=2)
    wf.set_param("decode", "tiled", True)
    with pytest.raises(nodegraph.NodeFailed) as info:
        nodegraph.Engine(device="cpu").run(wf, targets=["decode"])
    assert str(info.value) == ("node 'decode' failed: tiled encoding and decoding is not available for Qwen-Image's "
                               "VAE yet; switch tiled off")

