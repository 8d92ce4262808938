"""A float8 file's layers are held as stored: float8 ones stay float8 (upcast while they run), the ones the file
keeps in higher precision are not pushed down to float8, and none is upcast for good."""

import torch

import nodegraph

import split_layouts
from test_split_flux_schnell import tiny_schnell


def test_each_layer_is_held_as_the_file_stores_it(tmp_path):
    path, model = tiny_schnell(tmp_path)
    state = split_layouts.flux_keys(model.state_dict())
    precise = "double_blocks.0.img_mod.lin.weight"  # the first block's modulation linear, kept in bfloat16
    mixed = {k: (v.to(torch.bfloat16) if k == precise else v.to(torch.float8_e4m3fn)) if v.is_floating_point() else v
             for k, v in state.items()}
    split_layouts.save(mixed, tmp_path / "mixed.safetensors")
    wf = nodegraph.Workflow()
    wf.add_node("model.denoiser", "unet", params={"model": str(tmp_path / "mixed.safetensors"), "dtype": "bfloat16",
                                                   "config": str(tmp_path / "config")})
    denoiser = nodegraph.Engine(device="cpu").run(wf, targets=["unet"]).outputs["unet"]["model"].denoiser
    block = denoiser.transformer_blocks[0]
    assert block.norm1.linear.weight.dtype == torch.bfloat16  # as stored: not pushed down to float8
    assert torch.equal(block.norm1.linear.weight, mixed[precise])
    assert block.norm1_context.linear.weight.dtype == torch.float8_e4m3fn  # stored float8, not upcast for good
    assert block.attn.to_q.weight.dtype == torch.float8_e4m3fn
    assert denoiser.single_transformer_blocks[0].norm.linear.weight.dtype == torch.float8_e4m3fn
    tokens = 16
    with torch.inference_mode():
        out = denoiser(hidden_states=torch.randn(1, tokens, 16, dtype=torch.bfloat16),
                       encoder_hidden_states=torch.randn(1, 8, 32, dtype=torch.bfloat16),
                       pooled_projections=torch.randn(1, 32, dtype=torch.bfloat16),
                       timestep=torch.tensor([0.5], dtype=torch.bfloat16), img_ids=torch.zeros(tokens, 3),
                       txt_ids=torch.zeros(8, 3), return_dict=False)[0]
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
