"""Regional prompts: Set Conditioning Area / Mask, Conditioning Timestep Range and Combine Conditioning.

The references are the diffusers loop written out here: the same scheduler and UNet, the UNet called once per
prompt on that prompt's region (ComfyUI's area composition runs the model on the area's crop), the
predictions summed weighted by area/mask x strength and divided by the summed weights, then guidance.
"""

import numpy as np
import pytest
import torch

import nodegraph

from test_diffusion_sd import NEGATIVE, PROMPT, sd_folder, txt2img  # noqa: F401 (fixture)

OTHER = "a green square"
STEPS, CFG, SEED, SIZE = 4, 5.0, 7, 32  # the tiny VAE halves: 16x16 latents


@pytest.fixture(scope="module")
def engine():
    return nodegraph.Engine(device="cpu")


@pytest.fixture(scope="module")
def pipe(sd_folder):  # noqa: F811
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline.from_pretrained(sd_folder, local_files_only=True)


def latents(engine, wf):
    return engine.run(wf, targets=["sampler"]).outputs["sampler"]["latent"].samples


def two_prompts(model, first=(), second=()):
    """txt2img with a second prompt; ``first``/``second``: (node type, params) applied to each before combining."""
    wf = txt2img(model, steps=STEPS, cfg=CFG, seed=SEED, size=SIZE)
    wf.add_node("cond.text", "other", params={"prompt": OTHER, "negative": NEGATIVE})
    wf.connect("ckpt", "text_encoder", "other", "text_encoder")
    sources = {}
    for name, source, chain in (("a", "text", first), ("b", "other", second)):
        for k, (node_type, params) in enumerate(chain):
            wf.add_node(node_type, f"{name}{k}", params=params)
            wf.connect(source, "conditioning", f"{name}{k}", "conditioning")
            source = f"{name}{k}"
        sources[name] = source
    wf.add_node("cond.combine_list", "combine")
    wf.connect(sources["a"], "conditioning", "combine", "a")
    wf.connect(sources["b"], "conditioning", "combine", "b")
    wf.connect("combine", "conditioning", "sampler", "conditioning")
    return wf


def reference(pipe, regions, control=None):
    """The diffusers loop; ``regions(i)`` -> [(prompt, (y0, y1, x0, x1) in latents, weight (h, w))] for step i;
    ``control``: (ControlNetModel, control picture (1, 3, H, W), scale) for the first prompt, on its crop."""
    from diffusers.utils.torch_utils import randn_tensor

    sched, unet = pipe.scheduler, pipe.unet
    embeds = {}
    for prompt in (PROMPT, OTHER):
        positive, negative = pipe.encode_prompt(prompt, "cpu", 1, True, negative_prompt=NEGATIVE)
        embeds[prompt] = torch.cat([negative, positive])
    sched.set_timesteps(STEPS)
    generator = torch.Generator("cpu").manual_seed(SEED)
    x = randn_tensor((1, 4, 16, 16), generator=generator, dtype=torch.float32) * sched.init_noise_sigma
    with torch.no_grad():
        for i, t in enumerate(sched.timesteps):
            x_in = sched.scale_model_input(torch.cat([x] * 2), t)
            out, count = torch.zeros_like(x_in), torch.zeros_like(x_in[:, :1])
            for prompt, (y0, y1, x0, x1), weight in regions(i):
                crop = x_in[:, :, y0:y1, x0:x1]
                residuals = {}
                if control is not None and prompt == PROMPT:
                    net, hint, scale = control
                    hint = torch.cat([hint[:, :, y0 * 2:y1 * 2, x0 * 2:x1 * 2]] * 2)  # the tiny VAE halves
                    down, mid = net(crop, t, encoder_hidden_states=embeds[prompt], controlnet_cond=hint,
                                    conditioning_scale=scale, guess_mode=False, return_dict=False)
                    residuals = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
                prediction = unet(crop, t, encoder_hidden_states=embeds[prompt], **residuals).sample
                out[:, :, y0:y1, x0:x1] += prediction * weight
                count[:, :, y0:y1, x0:x1] += weight
            uncond, text = (out / count).chunk(2)
            x = sched.step(uncond + CFG * (text - uncond), t, x, eta=0.0, generator=generator).prev_sample
    return x


def fade(n, first_inner, last_inner):
    """ComfyUI's weights along one side of an area: 1, fading over 8 latent pixels at an edge inside the picture."""
    w = torch.ones(n)
    for t in range(8):
        if first_inner:
            w[t] *= (t + 1) / 8
        if last_inner:
            w[n - 1 - t] *= (t + 1) / 8
    return w


# ----- (a) no regression -----------------------------------------------------------------------------------

def test_one_prompt_over_the_whole_picture_samples_exactly_as_before(engine, sd_folder):  # noqa: F811
    plain = latents(engine, txt2img(sd_folder, steps=STEPS, cfg=CFG, seed=SEED, size=SIZE))
    wf = txt2img(sd_folder, steps=STEPS, cfg=CFG, seed=SEED, size=SIZE)
    wf.add_node("cond.set_area", "area", params={"width": SIZE, "height": SIZE, "x": 0, "y": 0, "strength": 1.0})
    wf.add_node("cond.timestep_range", "range", params={"start": 0.0, "end": 1.0})
    wf.connect("text", "conditioning", "area", "conditioning")
    wf.connect("area", "conditioning", "range", "conditioning")
    wf.connect("range", "conditioning", "sampler", "conditioning")
    assert torch.equal(latents(engine, wf), plain)


# ----- (b) areas, masks ------------------------------------------------------------------------------------

def test_two_prompts_on_left_and_right_areas_equal_the_blended_diffusers_loop(engine, pipe, sd_folder):  # noqa: F811
    # left: pixels 0..20 (latents 0..10), right: pixels 12..32 (latents 6..16) at strength 0.7; they overlap
    wf = two_prompts(sd_folder, [("cond.set_area", {"width": 20, "height": 32, "x": 0, "y": 0})],
                     [("cond.set_area", {"width": 20, "height": 32, "x": 12, "y": 0, "strength": 0.7})])
    ours = latents(engine, wf)
    left = torch.ones(16)[:, None] * fade(10, False, True)[None, :]
    right = 0.7 * torch.ones(16)[:, None] * fade(10, True, False)[None, :]
    theirs = reference(pipe, lambda i: [(PROMPT, (0, 16, 0, 10), left), (OTHER, (0, 16, 6, 16), right)])
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    one_prompt = latents(engine, txt2img(sd_folder, steps=STEPS, cfg=CFG, seed=SEED, size=SIZE))
    assert not torch.allclose(ours, one_prompt, atol=1e-3)


def test_a_controlnet_stays_with_its_prompt_and_sees_its_area_of_the_control_picture(engine, pipe, sd_folder,  # noqa: F811
                                                                                     tmp_path):
    import tiny_models
    from diffusers import ControlNetModel
    from diffusers.image_processor import VaeImageProcessor
    from PIL import Image

    net = tiny_models.controlnet(tmp_path / "cn", seed=20)
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((32, 32)) > 0.7).astype(np.uint8) * 255).convert("RGB").save(tmp_path / "hint.png")
    wf = two_prompts(sd_folder, [("cond.set_area", {"width": 20, "height": 32, "x": 0, "y": 0})])
    wf.add_node("model.controlnet", "net", params={"model": str(net)})
    wf.add_node("image.load", "hint", params={"path": str(tmp_path / "hint.png")})
    wf.add_node("control.apply", "apply", params={"strength": 0.8})
    wf.connect("a0", "conditioning", "apply", "conditioning")
    wf.connect("net", "controlnet", "apply", "controlnet")
    wf.connect("hint", "image", "apply", "image")
    wf.connect("apply", "conditioning", "combine", "a")
    ours = latents(engine, wf)
    hint = VaeImageProcessor(do_convert_rgb=True, do_normalize=False).preprocess(
        Image.open(tmp_path / "hint.png"), height=32, width=32)
    module = ControlNetModel.from_pretrained(net, local_files_only=True)
    left = torch.ones(16)[:, None] * fade(10, False, True)[None, :]
    theirs = reference(pipe, lambda i: [(PROMPT, (0, 16, 0, 10), left), (OTHER, (0, 16, 0, 16), torch.ones(16, 16))],
                       control=(module, hint, 0.8))
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def _mask_file(tmp_path, width=SIZE, height=SIZE):
    from PIL import Image

    picture = np.zeros((height, width, 3), np.uint8)
    picture[:, : width // 2 - 4] = 255  # the left part
    path = tmp_path / f"mask-{width}x{height}.png"
    Image.fromarray(picture).save(path)
    return path


def _with_mask(wf, path, target, bounds="default"):
    wf.add_node("image.load", "mask_file", params={"path": str(path)})
    wf.add_node("mask.from_channel", "to_mask", params={"channel": "red"})
    wf.connect("mask_file", "image", "to_mask", "image")
    wf.connect("to_mask", "mask", target, "mask")
    wf.set_param(target, "set_cond_area", bounds)
    return wf


@pytest.mark.parametrize("bounds", ["default", "mask bounds"])
def test_a_masked_prompt_over_a_background_prompt_equals_the_blended_diffusers_loop(engine, pipe, sd_folder,  # noqa: F811
                                                                                   tmp_path, bounds):
    wf = two_prompts(sd_folder, [("cond.set_mask", {"strength": 2.0})])
    ours = latents(engine, _with_mask(wf, _mask_file(tmp_path), "a0", bounds))
    mask = torch.zeros(16, 16)
    mask[:, :6] = 1.0  # pixels 0..12 of 32, resized to the latent: exactly the first 6 columns
    region = (0, 16, 0, 8) if bounds == "mask bounds" else (0, 16, 0, 16)  # bounds: at least 8 latent pixels wide
    y0, y1, x0, x1 = region
    theirs = reference(pipe, lambda i: [(PROMPT, region, 2.0 * mask[y0:y1, x0:x1]),
                                        (OTHER, (0, 16, 0, 16), torch.ones(16, 16))])
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


# ----- (c) timestep ranges ---------------------------------------------------------------------------------

def test_a_prompt_for_the_first_half_equals_the_diffusers_loop_switching_prompts_at_the_half(engine, pipe,
                                                                                           sd_folder):  # noqa: F811
    wf = two_prompts(sd_folder, [("cond.timestep_range", {"start": 0.0, "end": 0.5})],
                     [("cond.timestep_range", {"start": 0.5, "end": 1.0})])
    ours = latents(engine, wf)
    whole = (0, 16, 0, 16)
    theirs = reference(pipe, lambda i: [(PROMPT if i < STEPS // 2 else OTHER, whole, torch.ones(16, 16))])
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_a_sampler_continuing_at_a_step_keeps_the_split_of_the_whole_schedule(engine, sd_folder):  # noqa: F811
    wf = two_prompts(sd_folder, [("cond.timestep_range", {"start": 0.0, "end": 0.5})])
    wf.set_param("sampler", "start_step", 2)  # only the second half runs: the first prompt no longer acts
    alone = txt2img(sd_folder, steps=STEPS, cfg=CFG, seed=SEED, size=SIZE)
    alone.set_param("text", "prompt", OTHER)
    alone.set_param("sampler", "start_step", 2)
    assert torch.equal(latents(engine, wf), latents(engine, alone))


# ----- (d) mistakes, in words ------------------------------------------------------------------------------

def test_an_area_outside_the_picture_is_refused_in_words(engine, sd_folder):  # noqa: F811
    wf = two_prompts(sd_folder, [("cond.set_area", {"width": 16, "height": 16, "x": 40, "y": 0})])
    with pytest.raises(nodegraph.NodeFailed, match=r"the area 16x16 at x=40, y=0 .* lies outside the 32x32 picture"):
        latents(engine, wf)


def test_a_mask_of_another_shape_is_refused_in_words(engine, sd_folder, tmp_path):  # noqa: F811
    wf = _with_mask(two_prompts(sd_folder, [("cond.set_mask", {})]), _mask_file(tmp_path, SIZE, SIZE // 2), "a0")
    with pytest.raises(nodegraph.NodeFailed, match=r"the mask of Set Conditioning Mask is 32x16 but the picture is "
                                                   r"32x32"):
        latents(engine, wf)


def test_prompts_of_two_families_cannot_be_combined(engine, sd_folder, tmp_path):  # noqa: F811
    import tiny_models

    sdxl = tiny_models.sdxl_pipeline(tmp_path / "tiny-sdxl")
    wf = two_prompts(sd_folder)
    wf.add_node("model.checkpoint", "xl", params={"model": str(sdxl)})
    wf.connect("xl", "text_encoder", "other", "text_encoder")
    with pytest.raises(nodegraph.NodeFailed, match="cannot combine Stable Diffusion 1.x/2.x conditioning with "
                                                   "Stable Diffusion XL conditioning"):
        engine.run(wf, targets=["combine"])


def test_gaps_in_time_or_space_and_backwards_ranges_are_refused_in_words(engine, sd_folder):  # noqa: F811
    wf = two_prompts(sd_folder, [("cond.timestep_range", {"start": 0.0, "end": 0.25})],
                     [("cond.timestep_range", {"start": 0.5, "end": 1.0})])
    with pytest.raises(nodegraph.NodeFailed, match=r"no prompt acts at step 2 of 4 .*ranges \(0-0.25, 0.5-1\) "
                                                   r"leave a gap"):
        latents(engine, wf)
    wf = two_prompts(sd_folder, [("cond.set_area", {"width": 8, "height": 32, "x": 0, "y": 0})],
                     [("cond.set_area", {"width": 8, "height": 32, "x": 24, "y": 0})])
    with pytest.raises(nodegraph.NodeFailed, match="part of the picture has no prompt at step 1 of 4"):
        latents(engine, wf)
    wf = two_prompts(sd_folder, [("cond.timestep_range", {"start": 0.6, "end": 0.5})])
    with pytest.raises(nodegraph.NodeFailed, match=r"start \(0.6\) must be before end \(0.5\)"):
        latents(engine, wf)


def test_average_conditioning_refuses_a_combined_list(engine, sd_folder):  # noqa: F811
    wf = two_prompts(sd_folder)
    wf.add_node("cond.combine", "mix")
    wf.connect("combine", "conditioning", "mix", "a")
    wf.connect("text", "conditioning", "mix", "b")
    with pytest.raises(nodegraph.NodeFailed, match="Average Conditioning takes single prompts"):
        engine.run(wf, targets=["mix"])
