"""Concatenate Conditioning: a Sampler given two prompts joined token-wise equals diffusers given the same
prompt_embeds, joined the same way."""

import pytest
import torch

import nodegraph

from test_diffusion_sd import NEGATIVE, PROMPT, sd_folder, txt2img  # noqa: F401 (fixture)

SECOND = "a blue square in the corner"


def joined(model):
    wf = txt2img(model)
    wf.add_node("cond.text", "more", params={"prompt": SECOND, "negative": "blurry"})
    wf.add_node("cond.concat", "join")
    wf.connect("ckpt", "text_encoder", "more", "text_encoder")
    wf.connect("text", "conditioning", "join", "a")
    wf.connect("more", "conditioning", "join", "b")
    wf.connect("join", "conditioning", "sampler", "conditioning")
    return wf


def test_joined_prompts_sample_like_diffusers_given_the_joined_embeddings(sd_folder):  # noqa: F811
    from diffusers import StableDiffusionPipeline

    ours = nodegraph.Engine(device="cpu").run(joined(sd_folder), targets=["decode", "join"])
    pipe = StableDiffusionPipeline.from_pretrained(sd_folder, local_files_only=True)
    first, first_neg = pipe.encode_prompt(PROMPT, "cpu", 1, True, negative_prompt=NEGATIVE)
    second, second_neg = pipe.encode_prompt(SECOND, "cpu", 1, True, negative_prompt="blurry")
    embeds, negative = torch.cat([first, second], dim=1), torch.cat([first_neg, second_neg], dim=1)
    assert tuple(ours.outputs["join"]["conditioning"].positive["prompt_embeds"].shape[:2]) == (1, 154)
    theirs = pipe(prompt_embeds=embeds, negative_prompt_embeds=negative, num_inference_steps=4, guidance_scale=5.0,
                  height=32, width=32, generator=torch.Generator("cpu").manual_seed(7), output_type="pt").images
    torch.testing.assert_close(ours.outputs["decode"]["image"], theirs, rtol=1e-5, atol=1e-5)


def test_conditioning_of_two_families_is_refused_in_words(sd_folder, tmp_path):  # noqa: F811
    import tiny_models

    wf = joined(sd_folder)
    wf.add_node("model.checkpoint", "sd3", params={"model": str(tiny_models.sd3_pipeline(tmp_path / "tiny-sd3"))})
    wf.connect("sd3", "text_encoder", "more", "text_encoder")
    with pytest.raises(nodegraph.NodeFailed, match="node 'join' failed: cannot concatenate sd conditioning with sd3"):
        nodegraph.Engine(device="cpu").run(wf, targets=["join"])
