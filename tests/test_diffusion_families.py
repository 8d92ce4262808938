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
