"""Differential Diffusion through the graph: a binary mask inpaints as before, a soft mask is thresholded per
step by ComfyUI's rule (checked against diffusers' img2img pipeline blending the same way in its step
callback), and a grey ramp is changed progressively more from black to white."""

import json

import numpy as np
import pytest
import torch

import nodegraph

from test_diffusion_sd import PROMPT, NEGATIVE, _inpaint_workflow, _picture, sd_folder, txt2img  # noqa: F401


def ramp(size=32):
    """A mask growing from 0 at the left edge to 1 at the right."""
    from PIL import Image

    row = np.linspace(0, 255, size).round().astype(np.uint8)
    return Image.fromarray(np.tile(row, (size, 1)))


def soft_masked(model, tmp_path, denoise=0.8, steps=10, differential=True, strength=1.0):
    """img2img of a picture whose latent carries a soft noise mask (Set Latent Noise Mask)."""
    _picture().save(tmp_path / "in.png")
    ramp().convert("RGB").save(tmp_path / "ramp.png")
    wf = txt2img(model, steps=steps)
    wf.remove_node("empty")
    wf.add_node("image.load", "load", params={"path": str(tmp_path / "in.png")})
    wf.add_node("image.load", "mask_file", params={"path": str(tmp_path / "ramp.png")})
    wf.add_node("mask.from_channel", "to_mask", params={"channel": "red"})
    wf.add_node("vae.encode", "encode")
    wf.add_node("latent.set_mask", "setmask")
    wf.add_node("vae.decode", "decode_in")
    for src, out, dst, inp in [("mask_file", "image", "to_mask", "image"), ("ckpt", "vae", "encode", "vae"),
                               ("load", "image", "encode", "image"), ("encode", "latent", "setmask", "latent"),
                               ("to_mask", "mask", "setmask", "mask"), ("setmask", "latent", "sampler", "latent"),
                               ("ckpt", "vae", "decode_in", "vae"), ("encode", "latent", "decode_in", "latent")]:
        wf.connect(src, out, dst, inp)
    wf.set_param("sampler", "denoise", denoise)
    if differential:
        with_differential(wf, strength)
    return wf


def with_differential(wf, strength=1.0):
    wf.add_node("model.differential_diffusion", "dd", params={"strength": strength})
    wf.connect("ckpt", "model", "dd", "model")
    wf.connect("dd", "model", "sampler", "model")
    return wf


def test_a_binary_mask_inpaints_exactly_as_without_it(sd_folder, tmp_path):  # noqa: F811
    plain = nodegraph.Engine(device="cpu").run(_inpaint_workflow(sd_folder, tmp_path), output_dir=tmp_path / "a")
    wf = with_differential(_inpaint_workflow(sd_folder, tmp_path))
    ours = nodegraph.Engine(device="cpu").run(wf, output_dir=tmp_path / "b")
    mask = ours.outputs["inpaint"]["latent"].mask
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(ours.outputs["sampler"]["latent"].samples, plain.outputs["sampler"]["latent"].samples)
    assert torch.equal(ours.outputs["decode"]["image"], plain.outputs["decode"]["image"])


def comfy_step_mask(mask, timesteps, i):
    """ComfyUI's DifferentialDiffusion.forward: threshold = (t_now - t_end) / (t_start - t_end), the run ending
    at timestep 0; the step's mask is ``mask >= threshold``."""
    threshold = (timesteps[i] - 0) / (timesteps[0] - 0)
    return (mask >= threshold).to(mask.dtype)


def diffusers_with_per_step_masks(folder, latent, mask, denoise, steps, strength=1.0):
    """diffusers' img2img pipeline, its latents blended after every step in its step-end callback (where its
    inpaint pipeline blends too) with ComfyUI's per-step mask; also returns the masks applied."""
    from diffusers import StableDiffusionImg2ImgPipeline
    from diffusers.utils.torch_utils import randn_tensor

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(folder, local_files_only=True)
    noise = randn_tensor(latent.shape, generator=torch.Generator("cpu").manual_seed(7))  # the pipeline's first draw
    applied = []

    def blend(pipe, i, t, tensors):
        run = pipe.scheduler.timesteps[-int(steps * denoise):]
        known = latent if i == len(run) - 1 else pipe.scheduler.add_noise(latent, noise, run[i + 1:i + 2])
        step = comfy_step_mask(mask, run.float(), i)
        step = strength * step + (1 - strength) * mask if strength < 1 else step
        applied.append(step)
        return {"latents": (1 - step) * known + step * tensors["latents"]}

    images = pipe(PROMPT, image=latent, strength=denoise, negative_prompt=NEGATIVE, num_inference_steps=steps,
                  guidance_scale=5.0, generator=torch.Generator("cpu").manual_seed(7), output_type="pt",
                  callback_on_step_end=blend, callback_on_step_end_tensor_inputs=["latents"]).images
    return images, applied


@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_a_soft_mask_follows_comfyuis_per_step_rule(sd_folder, tmp_path, strength):  # noqa: F811
    ours = nodegraph.Engine(device="cpu").run(soft_masked(sd_folder, tmp_path, strength=strength),
                                              targets=["decode"])
    latent = ours.outputs["setmask"]["latent"]
    theirs, applied = diffusers_with_per_step_masks(sd_folder, latent.samples, latent.mask, 0.8, 10, strength)
    torch.testing.assert_close(ours.outputs["decode"]["image"], theirs, rtol=1e-5, atol=1e-5)
    # the masks grow step by step: a grey pixel is repainted only over the last part of the run
    areas = [float(m.mean()) for m in applied]
    assert len(areas) == 8 and areas == sorted(areas) and areas[0] < areas[-1]
    if strength == 1.0:
        assert all(set(m.unique().tolist()) <= {0.0, 1.0} for m in applied)
        plain = nodegraph.Engine(device="cpu").run(soft_masked(sd_folder, tmp_path, differential=False),
                                                   targets=["decode"])  # the soft mask as a blend weight: not this
        assert not torch.allclose(plain.outputs["decode"]["image"], ours.outputs["decode"]["image"], atol=1e-3)


def test_a_grey_ramp_changes_the_picture_more_from_black_to_white(sd_folder, tmp_path):  # noqa: F811
    result = nodegraph.Engine(device="cpu").run(soft_masked(sd_folder, tmp_path, denoise=1.0),
                                                targets=["decode", "decode_in"])
    before, after = result.outputs["decode_in"]["image"], result.outputs["decode"]["image"]
    change = (after - before).abs().mean(dim=(0, 1, 2))  # per column, left (mask 0) to right (mask 1)
    bands = [float(band.mean()) for band in change.chunk(4)]
    assert bands == sorted(bands) and bands[-1] > 2 * bands[0], bands


def test_comfyui_differential_diffusion_imports(tmp_path):
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"}},
              "2": {"class_type": "DifferentialDiffusion", "inputs": {"model": ["1", 0], "strength": 0.0}},
              "3": {"class_type": "DifferentialDiffusion", "inputs": {"model": ["1", 0]}}}
    (tmp_path / "dd.json").write_text(json.dumps(prompt))
    wf = nodegraph.load(tmp_path / "dd.json", strict=False)
    assert wf.nodes["2"].type == wf.nodes["3"].type == "model.differential_diffusion"
    assert wf.nodes["2"].params["strength"] == 1.0 and wf.nodes["3"].params["strength"] == 1.0
    assert any("node 2" in n and "strength 0 acts as 1" in n for n in wf.imported.notes)
