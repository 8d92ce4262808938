"""A lone FLUX.1-schnell transformer (no guidance embedding) loads with schnell's own scheduler settings."""

import json

import torch

import nodegraph
from nodes import _single_file, _split_files

import split_layouts


def tiny_schnell(folder):
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(3)
    model = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                   attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                   pooled_projection_dim=32, axes_dims_rope=[4, 4, 8], guidance_embeds=False).eval()
    model.save_config(folder / "config")
    return split_layouts.save(split_layouts.flux_keys(model.state_dict()), folder / "flux1-schnell.safetensors"), model


def test_a_schnell_file_loads_without_guidance_and_samples_with_schnells_schedule(tmp_path):
    path, model = tiny_schnell(tmp_path)
    wf = nodegraph.Workflow()
    wf.add_node("model.denoiser", "unet", params={"model": str(path), "config": str(tmp_path / "config")})
    loaded = nodegraph.Engine(device="cpu").run(wf, targets=["unet"]).outputs["unet"]["model"]
    assert loaded.family == "flux" and not loaded.denoiser.config.guidance_embeds
    assert loaded.scheduler_config["shift"] == 1.0 and not loaded.scheduler_config["use_dynamic_shifting"]
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.denoiser.state_dict()[name], tensor)


def test_the_shipped_dev_config_is_fitted_to_a_file_without_guidance(tmp_path):
    path, _ = tiny_schnell(tmp_path)
    assert not _split_files.has_guidance(_split_files.header(path))
    assert _split_files.has_guidance({"guidance_in.in_layer.weight": ((1,), "BF16")})
    assert _split_files.has_guidance({"model.diffusion_model.guidance_in.in_layer.weight": ((1,), "BF16")})
    with _single_file.shipped_config("flux") as folder:
        _split_files._edit_config(folder, "transformer", guidance_embeds=False)
        config = json.loads((folder / "transformer" / "config.json").read_text())
        assert config["guidance_embeds"] is False and config["num_layers"] == 19  # the rest is still dev's
    with _single_file.shipped_config("flux") as folder:  # each load gets a fresh copy of ours
        assert json.loads((folder / "transformer" / "config.json").read_text())["guidance_embeds"] is True
