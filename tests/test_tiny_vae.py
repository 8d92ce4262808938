"""A tiny VAE (diffusers' AutoencoderTiny, TAESD's architecture) through Load VAE: the fast decode for previews
and live mode, equal to the diffusers pipeline given the same tiny VAE."""

import pytest
import torch

import nodegraph

import tiny_models
from test_diffusion_sd import NEGATIVE, PROMPT, txt2img


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return tiny_models.sd_pipeline(root / "tiny-sd"), tiny_models.tiny_vae(root / "taesd")


def with_tiny_vae(sd, taesd, size=64):
    wf = txt2img(sd, size=size)
    wf.add_node("model.vae", "taesd", params={"model": str(taesd)})
    wf.connect("taesd", "vae", "empty", "vae")
    wf.connect("taesd", "vae", "decode", "vae")
    return wf


def test_txt2img_through_a_tiny_vae_equals_the_pipeline_given_it(folders):
    from diffusers import AutoencoderTiny, StableDiffusionPipeline

    sd, taesd = folders
    result = nodegraph.Engine(device="cpu").run(with_tiny_vae(sd, taesd), targets=["decode"])
    ours = result.outputs["decode"]["image"]
    assert result.outputs["empty"]["latent"].samples.shape[-2:] == (8, 8)  # 8x down, as TAESD
    vae = AutoencoderTiny.from_pretrained(taesd, local_files_only=True)
    pipe = StableDiffusionPipeline.from_pretrained(sd, vae=vae, local_files_only=True)
    theirs = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=4, guidance_scale=5.0, height=64, width=64,
                  generator=torch.Generator("cpu").manual_seed(7), output_type="pt").images
    assert ours.shape == theirs.shape == (1, 3, 64, 64)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_a_picture_goes_through_the_tiny_encoder_and_back(folders, tmp_path):
    from diffusers import AutoencoderTiny
    from PIL import Image

    _, taesd = folders
    Image.new("RGB", (64, 48), (200, 40, 40)).save(tmp_path / "red.png")
    wf = nodegraph.Workflow()
    wf.add_node("image.load", "load", params={"path": str(tmp_path / "red.png")})
    wf.add_node("model.vae", "taesd", params={"model": str(taesd)})
    wf.add_node("vae.encode", "encode")
    wf.add_node("vae.decode", "decode")
    for a, b, c, d in [("load", "image", "encode", "image"), ("taesd", "vae", "encode", "vae"),
                       ("taesd", "vae", "decode", "vae"), ("encode", "latent", "decode", "latent")]:
        wf.connect(a, b, c, d)
    out = nodegraph.Engine(device="cpu").run(wf, targets=["decode"]).outputs
    vae = AutoencoderTiny.from_pretrained(taesd, local_files_only=True)
    picture = out["load"]["image"]
    with torch.no_grad():
        latents = vae.encode(picture * 2 - 1).latents
        back = (vae.decode(latents).sample / 2 + 0.5).clamp(0, 1)
    torch.testing.assert_close(out["encode"]["latent"].samples, latents)
    torch.testing.assert_close(out["decode"]["image"], back)
    assert out["decode"]["image"].shape == (1, 3, 48, 64)


def test_tiled_decoding_with_a_tiny_vae_is_refused_in_words(folders):
    sd, taesd = folders
    wf = with_tiny_vae(sd, taesd)
    wf.set_param("decode", "tiled", True)
    with pytest.raises(nodegraph.NodeFailed, match="tiny VAE .* switch tiled off"):
        nodegraph.Engine(device="cpu").run(wf, targets=["decode"])
