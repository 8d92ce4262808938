"""ControlNet through the graph equals diffusers' ControlNet pipelines (one, several, a step range, SDXL)."""

import numpy as np
import pytest
import torch
from PIL import Image

import nodegraph

import tiny_models
from test_diffusion_sd import NEGATIVE, PROMPT, sd_folder, txt2img  # noqa: F401 (fixture)
from test_diffusion_families import sdxl_folder  # noqa: F401 (fixture)


def control_picture(path, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((32, 32)) > 0.7).astype(np.uint8) * 255).convert("RGB").save(path)
    return path


def with_controls(model, nets, tmp_path, settings):
    wf = txt2img(model, steps=6)
    source = ("text", "conditioning")
    for i, (net, (strength, start, end)) in enumerate(zip(nets, settings)):
        wf.add_node("model.controlnet", f"net{i}", params={"model": str(net)})
        wf.add_node("image.load", f"hint{i}", params={"path": str(control_picture(tmp_path / f"hint{i}.png", i))})
        wf.add_node("control.apply", f"apply{i}", params={"strength": strength, "start": start, "end": end})
        wf.connect(*source, f"apply{i}", "conditioning")
        wf.connect(f"net{i}", "controlnet", f"apply{i}", "controlnet")
        wf.connect(f"hint{i}", "image", f"apply{i}", "image")
        source = (f"apply{i}", "conditioning")
    wf.connect(*source, "sampler", "conditioning")
    return wf


@pytest.mark.parametrize("settings", [[(0.8, 0.0, 1.0)], [(1.2, 0.2, 0.7)], [(0.8, 0.0, 1.0), (0.5, 0.3, 1.0)]],
                         ids=["one", "step-range", "two"])
def test_sd_controlnet_equals_the_diffusers_pipeline(sd_folder, tmp_path, settings):  # noqa: F811
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline, StableDiffusionPipeline

    nets = [tiny_models.controlnet(tmp_path / f"cn{i}", seed=20 + i) for i in range(len(settings))]
    result = nodegraph.Engine(device="cpu").run(with_controls(sd_folder, nets, tmp_path, settings), targets=["decode"])
    base = StableDiffusionPipeline.from_pretrained(sd_folder, local_files_only=True)
    modules = [ControlNetModel.from_pretrained(n, local_files_only=True) for n in nets]
    pipe = StableDiffusionControlNetPipeline(**base.components, controlnet=modules if len(modules) > 1 else modules[0])
    hints = [Image.open(tmp_path / f"hint{i}.png") for i in range(len(nets))]
    pick = (lambda xs: xs) if len(nets) > 1 else (lambda xs: xs[0])
    theirs = pipe(PROMPT, image=pick(hints), negative_prompt=NEGATIVE, num_inference_steps=6, guidance_scale=5.0,
                  height=32, width=32, controlnet_conditioning_scale=pick([s[0] for s in settings]),
                  control_guidance_start=pick([s[1] for s in settings]), control_guidance_end=pick([s[2] for s in settings]),
                  generator=torch.Generator("cpu").manual_seed(7), output_type="pt").images
    ours = result.outputs["decode"]["image"]
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    plain = nodegraph.Engine(device="cpu").run(txt2img(sd_folder, steps=6), targets=["decode"]).outputs["decode"]["image"]
    assert not torch.allclose(ours, plain, atol=1e-3)  # the ControlNet did change the picture


def test_sdxl_controlnet_equals_the_diffusers_pipeline(sdxl_folder, tmp_path):  # noqa: F811
    from diffusers import ControlNetModel, StableDiffusionXLControlNetPipeline, StableDiffusionXLPipeline

    net = tiny_models.controlnet(tmp_path / "cn", seed=30, sdxl=True)
    result = nodegraph.Engine(device="cpu").run(with_controls(sdxl_folder, [net], tmp_path, [(0.7, 0.0, 0.8)]),
                                                targets=["decode"])
    base = StableDiffusionXLPipeline.from_pretrained(sdxl_folder, local_files_only=True)
    pipe = StableDiffusionXLControlNetPipeline(**base.components,
                                               controlnet=ControlNetModel.from_pretrained(net, local_files_only=True))
    theirs = pipe(PROMPT, image=Image.open(tmp_path / "hint0.png"), negative_prompt=NEGATIVE, num_inference_steps=6,
                  guidance_scale=5.0, height=32, width=32, controlnet_conditioning_scale=0.7, control_guidance_end=0.8,
                  generator=torch.Generator("cpu").manual_seed(7), output_type="pt").images
    torch.testing.assert_close(result.outputs["decode"]["image"], theirs, rtol=1e-5, atol=1e-5)


def test_changing_only_the_control_strength_keeps_the_text_encoding(sd_folder, tmp_path):  # noqa: F811
    net = tiny_models.controlnet(tmp_path / "cn", seed=20)
    engine, wf = nodegraph.Engine(device="cpu"), with_controls(sd_folder, [net], tmp_path, [(0.8, 0.0, 1.0)])
    engine.run(wf, targets=["decode"])
    wf.set_param("apply0", "strength", 0.5)
    assert engine.run(wf, targets=["decode"]).executed == ["apply0", "sampler", "decode"]


def test_a_controlnet_for_another_family_is_refused_in_words(sd3_folder_or_skip=None):
    from nodes._diffusion_types import ControlNet, Control, Conditioning, DiffusionModel
    from nodes._families import FAMILIES

    net = ControlNet(("sd", "sdxl"), None, "/models/canny")
    cond = Conditioning("sd3", {}, {}, controls=(Control(net, None, 1.0, 0.0, 1.0),))
    with pytest.raises(nodegraph.NodeUserError, match="the ControlNet /models/canny is for Stable Diffusion 1.x/2.x or "
                                                       "Stable Diffusion XL models, not Stable Diffusion 3"):
        FAMILIES["sd3"].check(DiffusionModel("sd3", None, {}, "x"), cond)


from test_diffusion_families import flux_folder, sd3_folder  # noqa: E402,F401 (fixtures)


def with_latent_control(model, net, tmp_path, strength=0.8, end=1.0):
    wf = with_controls(model, [net], tmp_path, [(strength, 0.0, end)])
    wf.connect("ckpt", "vae", "apply0", "vae")
    return wf


def test_sd3_controlnet_equals_the_diffusers_pipeline(sd3_folder, tmp_path):  # noqa: F811
    from diffusers import SD3ControlNetModel, StableDiffusion3ControlNetPipeline, StableDiffusion3Pipeline

    net = tiny_models.sd3_controlnet(tmp_path / "cn", seed=40)
    result = nodegraph.Engine(device="cpu").run(with_latent_control(sd3_folder, net, tmp_path, 0.8, 0.8),
                                                targets=["decode"])
    base = StableDiffusion3Pipeline.from_pretrained(sd3_folder, local_files_only=True)
    pipe = StableDiffusion3ControlNetPipeline(**base.components,
                                              controlnet=SD3ControlNetModel.from_pretrained(net, local_files_only=True))
    theirs = pipe(PROMPT, control_image=Image.open(tmp_path / "hint0.png"), negative_prompt=NEGATIVE,
                  num_inference_steps=6, guidance_scale=5.0, height=32, width=32, controlnet_conditioning_scale=0.8,
                  control_guidance_end=0.8, generator=torch.Generator("cpu").manual_seed(7), output_type="pt").images
    ours = result.outputs["decode"]["image"]
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    plain = nodegraph.Engine(device="cpu").run(txt2img(sd3_folder, steps=6), targets=["decode"])
    assert not torch.allclose(ours, plain.outputs["decode"]["image"], atol=1e-3)


def test_flux_controlnet_equals_the_diffusers_pipeline(flux_folder, tmp_path):  # noqa: F811
    from diffusers import FluxControlNetModel, FluxControlNetPipeline, FluxPipeline
    from diffusers.utils.torch_utils import randn_tensor

    net = tiny_models.flux_controlnet(tmp_path / "cn", seed=50)
    wf = with_latent_control(flux_folder, net, tmp_path, 0.9)
    wf.set_param("sampler", "cfg", 3.5)
    result = nodegraph.Engine(device="cpu").run(wf, targets=["decode"])
    base = FluxPipeline.from_pretrained(flux_folder, local_files_only=True)
    pipe = FluxControlNetPipeline(**base.components,
                                  controlnet=FluxControlNetModel.from_pretrained(net, local_files_only=True))
    noise = randn_tensor((1, 4, 16, 16), generator=torch.Generator("cpu").manual_seed(7))  # our Sampler's first draw
    theirs = pipe(PROMPT, control_image=Image.open(tmp_path / "hint0.png"), num_inference_steps=6, guidance_scale=3.5,
                  height=32, width=32, controlnet_conditioning_scale=0.9, latents=FluxPipeline._pack_latents(noise, 1, 4, 16, 16),
                  generator=torch.Generator("cpu").manual_seed(7), output_type="pt").images
    torch.testing.assert_close(result.outputs["decode"]["image"], theirs, rtol=1e-4, atol=1e-4)


def test_an_sd3_controlnet_without_the_vae_is_refused_in_words(sd3_folder, tmp_path):  # noqa: F811
    net = tiny_models.sd3_controlnet(tmp_path / "cn", seed=40)
    with pytest.raises(nodegraph.NodeFailed, match="reads the control picture as latents: connect the model's VAE"):
        nodegraph.Engine(device="cpu").run(with_controls(sd3_folder, [net], tmp_path, [(1.0, 0.0, 1.0)]),
                                           targets=["decode"])
