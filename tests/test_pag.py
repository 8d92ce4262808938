"""Perturbed-attention guidance through the graph: equal to diffusers' PAG pipelines on the same components,
and the shared denoiser samples as the base model again without it."""

import pytest
import torch

import nodegraph

from test_diffusion_families import flux_folder, sd3_folder, sdxl_folder  # noqa: F401 (fixtures)
from test_diffusion_sd import NEGATIVE, PROMPT, sd_folder, txt2img  # noqa: F401 (fixture)

PIPELINES = {"sd": "StableDiffusionPAGPipeline", "sdxl": "StableDiffusionXLPAGPipeline",
             "sd3": "StableDiffusion3PAGPipeline"}


def with_pag(model, scale=2.5, layers="default", cfg=5.0):
    wf = txt2img(model, cfg=cfg)
    wf.add_node("model.pag", "pag", params={"scale": scale, "layers": layers})
    wf.connect("ckpt", "model", "pag", "model")
    wf.connect("pag", "model", "sampler", "model")
    return wf


def diffusers_pag(folder, family, scale=2.5, cfg=5.0, **layers):
    import diffusers

    pipe = getattr(diffusers, PIPELINES[family]).from_pretrained(folder, local_files_only=True, **layers)
    return pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=4, guidance_scale=cfg, pag_scale=scale,
                pag_adaptive_scale=0.0, height=32, width=32, generator=torch.Generator("cpu").manual_seed(7),
                output_type="pt").images


@pytest.mark.parametrize("family", ["sd", "sdxl", "sd3"])
def test_pag_equals_the_diffusers_pag_pipeline(family, request):
    folder = request.getfixturevalue(f"{family}_folder")
    ours = nodegraph.Engine(device="cpu").run(with_pag(folder), targets=["decode"])
    torch.testing.assert_close(ours.outputs["decode"]["image"], diffusers_pag(folder, family), rtol=1e-5, atol=1e-5)
    plain = nodegraph.Engine(device="cpu").run(txt2img(folder), targets=["decode"])
    assert not torch.allclose(ours.outputs["decode"]["image"], plain.outputs["decode"]["image"], atol=1e-3)


def test_pag_without_cfg_and_on_chosen_layers_equals_diffusers(sd_folder):  # noqa: F811
    ours = nodegraph.Engine(device="cpu").run(with_pag(sd_folder, scale=4.0, layers="down, mid", cfg=1.0),
                                              targets=["decode"])
    theirs = diffusers_pag(sd_folder, "sd", scale=4.0, cfg=1.0, pag_applied_layers=["down", "mid"])
    torch.testing.assert_close(ours.outputs["decode"]["image"], theirs, rtol=1e-5, atol=1e-5)


def test_the_default_layers_are_the_diffusers_pipelines_defaults(sd_folder, sd3_folder):  # noqa: F811
    for folder, layers in ((sd_folder, "mid"), (sd3_folder, "blocks.1")):
        wf = with_pag(folder)
        assert nodegraph.Engine(device="cpu").run(wf, targets=["pag"]).outputs["pag"]["model"].pag == (2.5, layers)


def test_without_pag_the_shared_unet_samples_as_the_base_model(sd_folder):  # noqa: F811
    engine = nodegraph.Engine(device="cpu")
    wf = with_pag(sd_folder)
    patched = engine.run(wf, targets=["decode"])
    unet = patched.outputs["ckpt"]["model"].denoiser
    assert all(type(p).__name__ == "AttnProcessor2_0" for p in unet.attn_processors.values())  # restored
    wf.remove_node("pag")
    wf.connect("ckpt", "model", "sampler", "model")
    again = engine.run(wf, targets=["decode"])
    assert "ckpt" in again.cached
    reference = nodegraph.Engine(device="cpu").run(txt2img(sd_folder), targets=["decode"])
    torch.testing.assert_close(again.outputs["decode"]["image"], reference.outputs["decode"]["image"])


def test_scale_zero_is_plain_sampling(sd_folder):  # noqa: F811
    ours = nodegraph.Engine(device="cpu").run(with_pag(sd_folder, scale=0.0), targets=["decode"])
    plain = nodegraph.Engine(device="cpu").run(txt2img(sd_folder), targets=["decode"])
    torch.testing.assert_close(ours.outputs["decode"]["image"], plain.outputs["decode"]["image"])


def test_layers_that_match_nothing_are_refused_in_words(sd_folder):  # noqa: F811
    with pytest.raises(nodegraph.NodeFailed, match="node 'pag' failed: layers 'middle_nowhere': Cannot find PAG "
                                                   "layer .* e.g. 'mid'"):
        nodegraph.Engine(device="cpu").run(with_pag(sd_folder, layers="middle_nowhere"), targets=["pag"])
    with pytest.raises(nodegraph.NodeFailed, match="node 'pag' failed: layers: 'up.\\(' is not a valid layer pattern"):
        nodegraph.Engine(device="cpu").run(with_pag(sd_folder, layers="up.("), targets=["pag"])


def test_a_family_without_a_diffusers_pag_pipeline_is_refused_in_words(flux_folder):  # noqa: F811
    with pytest.raises(nodegraph.NodeFailed, match="node 'pag' failed: Perturbed Attention Guidance works on SD "
                                                   "1.x/2.x, SDXL and SD3 models .*this is a Flux model"):
        nodegraph.Engine(device="cpu").run(with_pag(flux_folder), targets=["pag"])
