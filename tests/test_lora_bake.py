"""LoRAs baked into a saved checkpoint or a merge: the saved folder, loaded with no LoRA, draws the picture the
model drew with it, and the shared loaded modules keep their adapters (fused on copies, never in place)."""

import torch
from safetensors import safe_open

import nodegraph

from test_diffusion_sd import sd_folder, txt2img  # noqa: F401 (fixture)
from test_lora import lora_file, with_lora  # noqa: F401 (fixture)
from test_model_merge import other_sd  # noqa: F401 (fixture)


def saved(wf, model_from):
    wf.add_node("model.save", "save", params={"filename_prefix": "checkpoints/baked"})
    for port, (src, out) in {"model": model_from, "text_encoder": ("lora", "text_encoder"),
                             "vae": ("ckpt", "vae")}.items():
        wf.connect(src, out, "save", port)
    return wf


def test_a_saved_checkpoint_has_the_lora_fused_in(sd_folder, lora_file, tmp_path):  # noqa: F811
    from diffusers import StableDiffusionPipeline

    engine = nodegraph.Engine(device="cpu")
    wf = saved(with_lora(sd_folder, lora_file, strength=0.7, text_strength=0.5), ("lora", "model"))
    result = engine.run(wf, targets=["save", "decode"], output_dir=tmp_path)
    [folder] = result.files
    for weights in folder.rglob("*.safetensors"):  # plain weights: no adapter layers saved
        with safe_open(weights, "pt") as f:
            assert not [k for k in f.keys() if "lora" in k or "base_layer" in k], weights
    again = nodegraph.Engine(device="cpu").run(txt2img(folder), targets=["decode"])
    torch.testing.assert_close(again.outputs["decode"]["image"], result.outputs["decode"]["image"],
                               rtol=1e-4, atol=1e-4)
    # the same as diffusers fusing the LoRA at those strengths into a freshly loaded pipeline
    pipe = StableDiffusionPipeline.from_pretrained(sd_folder, local_files_only=True)
    pipe.load_lora_weights(lora_file.parent, weight_name=lora_file.name, adapter_name="x")
    pipe.set_adapters(["x"], adapter_weights=[0.7])
    pipe.fuse_lora(components=["unet"], adapter_names=["x"])
    pipe.set_adapters(["x"], adapter_weights=[0.5])
    pipe.fuse_lora(components=["text_encoder"], adapter_names=["x"])
    pipe.unload_lora_weights()
    ours = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True)
    for name in ("unet", "text_encoder"):
        theirs = getattr(pipe, name).state_dict()
        for key, value in getattr(ours, name).state_dict().items():
            torch.testing.assert_close(value, theirs[key], rtol=1e-6, atol=1e-6)
    # the loaded modules still hold the adapter, unfused: without the LoRA node the base model draws as before
    assert result.outputs["ckpt"]["model"].denoiser.peft_config
    base = engine.run(txt2img(sd_folder), targets=["decode"]).outputs["decode"]["image"]
    fresh = nodegraph.Engine(device="cpu").run(txt2img(sd_folder), targets=["decode"]).outputs["decode"]["image"]
    torch.testing.assert_close(base, fresh)


def test_a_merge_uses_the_models_with_their_loras(sd_folder, other_sd, lora_file, tmp_path):  # noqa: F811
    wf = with_lora(sd_folder, lora_file, strength=0.8)
    lora_picture = nodegraph.Engine(device="cpu").run(wf, targets=["decode"]).outputs["decode"]["image"]
    wf.add_node("model.checkpoint", "other", params={"model": str(other_sd)})
    wf.add_node("model.merge", "merge", params={"ratio": 0.0})
    wf.connect("lora", "model", "merge", "a")
    wf.connect("other", "model", "merge", "b")
    wf.connect("merge", "model", "sampler", "model")
    saved(wf, ("merge", "model"))
    result = nodegraph.Engine(device="cpu").run(wf, targets=["save", "decode"], output_dir=tmp_path)
    merged = result.outputs["merge"]["model"]
    assert merged.loras == () and not getattr(merged.denoiser, "peft_config", None)
    torch.testing.assert_close(result.outputs["decode"]["image"], lora_picture, rtol=1e-4, atol=1e-4)
    [folder] = result.files
    again = nodegraph.Engine(device="cpu").run(txt2img(folder), targets=["decode"])
    torch.testing.assert_close(again.outputs["decode"]["image"], lora_picture, rtol=1e-4, atol=1e-4)
