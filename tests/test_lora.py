"""LoRA through the graph: equal to diffusers' load_lora_weights, strength 0 is the base model, removal needs no reload."""

import pytest
import torch

import nodegraph

from test_diffusion_sd import NEGATIVE, PROMPT, sd_folder, txt2img  # noqa: F401 (fixture)


@pytest.fixture(scope="session")
def lora_file(sd_folder, tmp_path_factory):  # noqa: F811
    """A random LoRA for the tiny SD model's UNet and text encoder, saved the way diffusers saves LoRAs."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(0)
    pipe = StableDiffusionPipeline.from_pretrained(sd_folder, local_files_only=True)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                     target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    # peft's own injection: transformers' add_adapter asks for a newer peft than PyPI may offer.
    inject_adapter_in_model(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                       target_modules=["q_proj", "k_proj", "v_proj", "out_proj"]), pipe.text_encoder)
    folder = tmp_path_factory.mktemp("lora")
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(pipe.unet),
                                              text_encoder_lora_layers=get_peft_model_state_dict(pipe.text_encoder),
                                              safe_serialization=True)
    [path] = folder.glob("*.safetensors")
    return path


def with_lora(model, lora, strength=1.0, text_strength=1.0):
    wf = txt2img(model)
    wf.add_node("model.lora", "lora", params={"lora": str(lora), "strength": strength, "text_strength": text_strength})
    wf.connect("ckpt", "model", "lora", "model")
    wf.connect("ckpt", "text_encoder", "lora", "text_encoder")
    wf.connect("lora", "model", "sampler", "model")
    wf.connect("lora", "text_encoder", "text", "text_encoder")
    return wf


def test_lora_equals_diffusers_load_lora_weights(sd_folder, lora_file):  # noqa: F811
    from diffusers import StableDiffusionPipeline

    ours = nodegraph.Engine(device="cpu").run(with_lora(sd_folder, lora_file, 0.7, 0.7), targets=["decode"])
    pipe = StableDiffusionPipeline.from_pretrained(sd_folder, local_files_only=True)
    pipe.load_lora_weights(lora_file.parent, weight_name=lora_file.name, adapter_name="x")
    pipe.set_adapters(["x"], adapter_weights=[0.7])
    theirs = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=4, guidance_scale=5.0, height=32, width=32,
                  generator=torch.Generator("cpu").manual_seed(7), output_type="pt").images
    torch.testing.assert_close(ours.outputs["decode"]["image"], theirs, rtol=1e-5, atol=1e-5)


def test_strength_zero_is_the_base_model_and_removing_the_lora_needs_no_reload(sd_folder, lora_file):  # noqa: F811
    engine = nodegraph.Engine(device="cpu")
    base = engine.run(txt2img(sd_folder), targets=["decode"]).outputs["decode"]["image"]
    wf = with_lora(sd_folder, lora_file, 1.0)
    with_it = engine.run(wf, targets=["decode"])
    assert "ckpt" in with_it.cached and not torch.allclose(with_it.outputs["decode"]["image"], base, atol=1e-3)
    wf.set_param("lora", "strength", 0.0)
    wf.set_param("lora", "text_strength", 0.0)
    zero = engine.run(wf, targets=["decode"])
    torch.testing.assert_close(zero.outputs["decode"]["image"], base, rtol=1e-5, atol=1e-5)
    wf.remove_node("lora")  # back to the base model: the shared UNet must not keep the LoRA switched on
    wf.connect("ckpt", "model", "sampler", "model")
    wf.connect("ckpt", "text_encoder", "text", "text_encoder")
    wf.set_param("sampler", "seed", 8)  # a fresh sampling run on the base modules
    again = engine.run(wf, targets=["decode"])
    assert "ckpt" in again.cached
    reference = nodegraph.Engine(device="cpu").run(txt2img(sd_folder, seed=8), targets=["decode"])
    torch.testing.assert_close(again.outputs["decode"]["image"], reference.outputs["decode"]["image"])


def test_a_lora_for_another_architecture_is_refused_in_words(sd_folder, tmp_path):  # noqa: F811
    from safetensors.torch import save_file

    save_file({"lora_unet_nothing.lora_down.weight": torch.zeros(4, 8)}, tmp_path / "odd.safetensors")
    with pytest.raises(nodegraph.NodeFailed, match="node 'lora' failed: odd.safetensors"):
        nodegraph.Engine(device="cpu").run(with_lora(sd_folder, tmp_path / "odd.safetensors"), targets=["decode"])
