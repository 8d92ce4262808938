"""FreeU through the graph: equal to diffusers' enable_freeu, and the shared UNet is the base model again without it."""

import pytest
import torch

import nodegraph

from test_diffusion_sd import NEGATIVE, PROMPT, sd_folder, txt2img  # noqa: F401 (fixture)

FACTORS = {"b1": 1.3, "b2": 1.4, "s1": 0.8, "s2": 0.3}


def with_freeu(model, **factors):
    wf = txt2img(model)
    wf.add_node("model.freeu", "freeu", params=factors or FACTORS)
    wf.connect("ckpt", "model", "freeu", "model")
    wf.connect("freeu", "model", "sampler", "model")
    return wf


def test_freeu_equals_diffusers_enable_freeu(sd_folder):  # noqa: F811
    from diffusers import StableDiffusionPipeline

    ours = nodegraph.Engine(device="cpu").run(with_freeu(sd_folder), targets=["decode"])
    pipe = StableDiffusionPipeline.from_pretrained(sd_folder, local_files_only=True)
    pipe.enable_freeu(**FACTORS)
    theirs = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=4, guidance_scale=5.0, height=32, width=32,
                  generator=torch.Generator("cpu").manual_seed(7), output_type="pt").images
    torch.testing.assert_close(ours.outputs["decode"]["image"], theirs, rtol=1e-5, atol=1e-5)


def test_without_freeu_the_shared_unet_samples_as_the_base_model(sd_folder):  # noqa: F811
    engine = nodegraph.Engine(device="cpu")
    base = engine.run(txt2img(sd_folder), targets=["decode"]).outputs["decode"]["image"]
    wf = with_freeu(sd_folder)
    patched = engine.run(wf, targets=["decode"])
    assert "ckpt" in patched.cached and not torch.allclose(patched.outputs["decode"]["image"], base, atol=1e-3)
    assert patched.reasons["sampler"] == "input 'model' now comes from node 'freeu'"
    wf.remove_node("freeu")  # the model loaded once is the base model again: FreeU must not stay switched on
    wf.connect("ckpt", "model", "sampler", "model")
    wf.set_param("sampler", "seed", 8)
    again = engine.run(wf, targets=["decode"])
    reference = nodegraph.Engine(device="cpu").run(txt2img(sd_folder, seed=8), targets=["decode"])
    torch.testing.assert_close(again.outputs["decode"]["image"], reference.outputs["decode"]["image"])


def test_freeu_on_a_transformer_model_is_refused_in_words(tmp_path):
    import tiny_models

    folder = tiny_models.sd3_pipeline(tmp_path / "tiny-sd3")
    wf = nodegraph.Workflow()
    wf.add_node("model.checkpoint", "ckpt", params={"model": str(folder)})
    wf.add_node("model.freeu", "freeu")
    wf.connect("ckpt", "model", "freeu", "model")
    with pytest.raises(nodegraph.NodeFailed, match="node 'freeu' failed: FreeU works on UNet models.*sd3"):
        nodegraph.Engine(device="cpu").run(wf, targets=["freeu"])
