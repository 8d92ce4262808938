"""Each model family through the graph equals its diffusers pipeline built from the same components."""

import pytest
import torch

import nodegraph

import tiny_models
from test_diffusion_sd import NEGATIVE, PROMPT, txt2img


@pytest.fixture(scope="session")
def sdxl_folder(tmp_path_factory):
    return tiny_models.sdxl_pipeline(tmp_path_factory.mktemp("models") / "tiny-sdxl")


@pytest.mark.parametrize("negative", [NEGATIVE, ""])
def test_sdxl_txt2img_equals_the_diffusers_pipeline(sdxl_folder, negative):
    from diffusers import StableDiffusionXLPipeline

    wf = txt2img(sdxl_folder, batch=2)
    wf.set_param("text", "negative", negative)
    result = nodegraph.Engine(device="cpu").run(wf, targets=["decode"])
    assert result.outputs["ckpt"]["model"].family == "sdxl"
    pipe = StableDiffusionXLPipeline.from_pretrained(sdxl_folder, local_files_only=True)
    theirs = pipe(PROMPT, negative_prompt=negative or None, num_inference_steps=4, guidance_scale=5.0, height=32,
                  width=32, num_images_per_prompt=2, generator=torch.Generator("cpu").manual_seed(7),
                  output_type="pt").images
    torch.testing.assert_close(result.outputs["decode"]["image"], theirs, rtol=1e-5, atol=1e-5)


def test_conditioning_from_another_family_is_refused_in_words(sdxl_folder, tmp_path):
    sd = tiny_models.sd_pipeline(tmp_path / "sd")
    wf = txt2img(sdxl_folder)
    wf.add_node("model.checkpoint", "sd", params={"model": str(sd)})
    wf.connect("sd", "text_encoder", "text", "text_encoder")
    with pytest.raises(nodegraph.NodeFailed) as info:
        nodegraph.Engine(device="cpu").run(wf, targets=["sampler"])
    assert str(info.value) == ("node 'sampler' failed: the conditioning was made by a Stable Diffusion 1.x/2.x text "
                               "encoder but the model is Stable Diffusion XL; connect the text encoder loaded with "
                               "this model")


@pytest.fixture(scope="session")
def sd3_folder(tmp_path_factory):
    return tiny_models.sd3_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd3")


def test_sd3_txt2img_equals_the_diffusers_pipeline(sd3_folder):
    from diffusers import StableDiffusion3Pipeline

    result = nodegraph.Engine(device="cpu").run(txt2img(sd3_folder, batch=2), targets=["decode"])
    assert result.outputs["ckpt"]["model"].family == "sd3"
    pipe = StableDiffusion3Pipeline.from_pretrained(sd3_folder, local_files_only=True)
    theirs = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=4, guidance_scale=5.0, height=32, width=32,
                  num_images_per_prompt=2, generator=torch.Generator("cpu").manual_seed(7), output_type="pt").images
    torch.testing.assert_close(result.outputs["decode"]["image"], theirs, rtol=1e-5, atol=1e-5)


def test_sd3_img2img_equals_the_diffusers_pipeline(sd3_folder, tmp_path):
    from diffusers import StableDiffusion3Img2ImgPipeline
    from test_diffusion_sd import _picture

    _picture().save(tmp_path / "in.png")
    wf = txt2img(sd3_folder, steps=10)
    wf.add_node("image.load", "load", params={"path": str(tmp_path / "in.png")})
    wf.add_node("vae.encode", "encode")
    wf.connect("ckpt", "vae", "encode", "vae")
    wf.connect("load", "image", "encode", "image")
    wf.connect("encode", "latent", "sampler", "latent")
    wf.set_param("sampler", "denoise", 0.55)
    result = nodegraph.Engine(device="cpu").run(wf, targets=["decode"])
    pipe = StableDiffusion3Img2ImgPipeline.from_pretrained(sd3_folder, local_files_only=True)
    latents = result.outputs["encode"]["latent"].samples  # the same starting latent (diffusers would sample its own)
    theirs = pipe(PROMPT, image=latents, strength=0.55, negative_prompt=NEGATIVE, num_inference_steps=10,
                  guidance_scale=5.0, generator=torch.Generator("cpu").manual_seed(7), output_type="pt").images
    torch.testing.assert_close(result.outputs["decode"]["image"], theirs, rtol=1e-5, atol=1e-5)


def test_a_unet_scheduler_on_a_flow_model_is_refused(sd3_folder):
    with pytest.raises(nodegraph.NodeFailed, match="scheduler 'ddim' does not fit a Stable Diffusion 3 model; use one of default, flow_euler"):
        nodegraph.Engine(device="cpu").run(txt2img(sd3_folder, scheduler="ddim"), targets=["sampler"])


@pytest.fixture(scope="session")
def flux_folder(tmp_path_factory):
    return tiny_models.flux_pipeline(tmp_path_factory.mktemp("models") / "tiny-flux")


def test_flux_txt2img_equals_the_diffusers_pipeline(flux_folder):
    from diffusers import FluxPipeline

    wf = txt2img(flux_folder, batch=2, cfg=3.5)
    result = nodegraph.Engine(device="cpu").run(wf, targets=["decode"])
    assert result.outputs["ckpt"]["model"].family == "flux"
    pipe = FluxPipeline.from_pretrained(flux_folder, local_files_only=True)
    theirs = pipe(PROMPT, num_inference_steps=4, guidance_scale=3.5, height=32, width=32, num_images_per_prompt=2,
                  generator=torch.Generator("cpu").manual_seed(7), output_type="pt").images
    torch.testing.assert_close(result.outputs["decode"]["image"], theirs, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="session")
def sana_folder(tmp_path_factory):
    return tiny_models.sana_pipeline(tmp_path_factory.mktemp("models") / "tiny-sana")


def test_sana_with_dc_ae_equals_the_diffusers_pipeline(sana_folder):
    from diffusers import SanaPipeline

    result = nodegraph.Engine(device="cpu").run(txt2img(sana_folder, batch=2, cfg=4.5), targets=["decode"])
    assert result.outputs["ckpt"]["model"].family == "sana" and result.outputs["ckpt"]["vae"].kind == "dc"
    pipe = SanaPipeline.from_pretrained(sana_folder, local_files_only=True)
    theirs = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=4, guidance_scale=4.5, height=32, width=32,
                  num_images_per_prompt=2, generator=torch.Generator("cpu").manual_seed(7), output_type="pt",
                  use_resolution_binning=False).images
    torch.testing.assert_close(result.outputs["decode"]["image"], theirs, rtol=1e-5, atol=1e-5)
