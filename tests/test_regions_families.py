"""Regional prompts on the other families: SDXL's UNet and the flow-matching transformers (SD3, Flux, Sana) predict
on an area's crop (grown to their patch size) and the Sampler blends the predictions as for SD 1.x."""

import pytest
import torch

import nodegraph

import tiny_models
from test_diffusion_sd import txt2img

BUILD = {"sdxl": tiny_models.sdxl_pipeline, "sd3": tiny_models.sd3_pipeline, "flux": tiny_models.flux_pipeline,
         "sana": tiny_models.sana_pipeline}


@pytest.fixture(scope="module", params=list(BUILD))
def family_folder(request, tmp_path_factory):
    return request.param, BUILD[request.param](tmp_path_factory.mktemp("models") / f"tiny-{request.param}")


def test_two_prompts_on_areas_sample_on_every_family(family_folder):
    family, folder = family_folder
    engine = nodegraph.Engine(device="cpu")
    cfg = 3.5 if family == "flux" else 5.0
    plain = txt2img(folder, cfg=cfg)
    wf = txt2img(folder, cfg=cfg)
    wf.add_node("cond.text", "other", params={"prompt": "a green square", "negative": "blue"})
    wf.connect("ckpt", "text_encoder", "other", "text_encoder")
    # odd edges in latents (pixels 10 and 22): Flux's 2x2 packing and SD3's patches need the crop grown
    wf.add_node("cond.set_area", "left", params={"width": 22, "height": 32, "x": 0, "y": 0})
    wf.add_node("cond.set_area", "right", params={"width": 22, "height": 32, "x": 10, "y": 0, "strength": 0.5})
    wf.add_node("cond.combine_list", "combine")
    for src, out, dst, inp in [("text", "conditioning", "left", "conditioning"),
                               ("other", "conditioning", "right", "conditioning"),
                               ("left", "conditioning", "combine", "a"), ("right", "conditioning", "combine", "b"),
                               ("combine", "conditioning", "sampler", "conditioning")]:
        wf.connect(src, out, dst, inp)
    ours = engine.run(wf, targets=["sampler"]).outputs["sampler"]["latent"].samples
    alone = engine.run(plain, targets=["sampler"]).outputs["sampler"]["latent"].samples
    assert ours.shape == alone.shape and torch.isfinite(ours).all()
    assert not torch.allclose(ours, alone, atol=1e-4)
