"""Merge Models and Save Checkpoint: the merged weights are the weighted sum, and the saved folder is a
diffusers pipeline that diffusers and Load Checkpoint read back to the same pictures."""

import pytest
import torch

import nodegraph

import tiny_models
from test_diffusion_sd import sd_folder, txt2img  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def other_sd(tmp_path_factory):
    """The same tiny architecture with other random weights: a second 'fine-tune' to merge with."""
    return tiny_models.sd_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd-b", seed=11)


def merged(a, b, ratio):
    wf = txt2img(a)
    wf.add_node("model.checkpoint", "other", params={"model": str(b)})
    wf.add_node("model.merge", "merge", params={"ratio": ratio})
    wf.connect("ckpt", "model", "merge", "a")
    wf.connect("other", "model", "merge", "b")
    wf.connect("merge", "model", "sampler", "model")
    return wf


def test_merged_weights_are_the_weighted_sum_and_the_inputs_stay_as_loaded(sd_folder, other_sd):  # noqa: F811
    from diffusers import UNet2DConditionModel

    result = nodegraph.Engine(device="cpu").run(merged(sd_folder, other_sd, 0.3), targets=["merge"])
    unet = result.outputs["merge"]["model"].denoiser
    a = UNet2DConditionModel.from_pretrained(sd_folder / "unet").state_dict()
    b = UNet2DConditionModel.from_pretrained(other_sd / "unet").state_dict()
    for name, tensor in unet.state_dict().items():
        torch.testing.assert_close(tensor, a[name] * 0.7 + b[name] * 0.3)
    original = result.outputs["ckpt"]["model"].denoiser.state_dict()
    assert all(torch.equal(original[k], a[k]) for k in a)  # the first model was copied, not changed


def test_ratio_zero_samples_as_the_first_model(sd_folder, other_sd):  # noqa: F811
    engine = nodegraph.Engine(device="cpu")
    alone = engine.run(txt2img(sd_folder), targets=["decode"]).outputs["decode"]["image"]
    zero = engine.run(merged(sd_folder, other_sd, 0.0), targets=["decode"]).outputs["decode"]["image"]
    half = engine.run(merged(sd_folder, other_sd, 0.5), targets=["decode"]).outputs["decode"]["image"]
    torch.testing.assert_close(zero, alone)
    assert not torch.allclose(half, alone, atol=1e-3)


def test_a_saved_checkpoint_loads_back_to_the_same_picture(sd_folder, other_sd, tmp_path):  # noqa: F811
    from diffusers import StableDiffusionPipeline

    wf = merged(sd_folder, other_sd, 0.5)
    wf.add_node("model.save", "save", params={"filename_prefix": "checkpoints/half"})
    for port, (src, out) in {"model": ("merge", "model"), "text_encoder": ("ckpt", "text_encoder"),
                             "vae": ("ckpt", "vae")}.items():
        wf.connect(src, out, "save", port)
    result = nodegraph.Engine(device="cpu").run(wf, targets=["save", "decode"], output_dir=tmp_path)
    [folder] = result.files
    assert folder == tmp_path / "checkpoints" / "half_00001" and (folder / "model_index.json").is_file()
    assert not list(folder.rglob("*.bin")) and list((folder / "unet").glob("*.safetensors"))
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]  # nothing half-written
    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True)
    merged_unet = result.outputs["merge"]["model"].denoiser.state_dict()
    assert all(torch.equal(v, merged_unet[k]) for k, v in pipe.unet.state_dict().items())
    again = nodegraph.Engine(device="cpu").run(txt2img(folder), targets=["decode"])
    torch.testing.assert_close(again.outputs["decode"]["image"], result.outputs["decode"]["image"])
    second = nodegraph.Engine(device="cpu").run(wf, targets=["save"], output_dir=tmp_path)
    assert second.files == [tmp_path / "checkpoints" / "half_00002"]  # never over the first


def test_models_of_two_architectures_are_refused_in_words(sd_folder, tmp_path):  # noqa: F811
    wf = merged(sd_folder, tiny_models.sd3_pipeline(tmp_path / "tiny-sd3"), 0.5)
    with pytest.raises(nodegraph.NodeFailed, match="node 'merge' failed: cannot merge a .* model with a .* one"):
        nodegraph.Engine(device="cpu").run(wf, targets=["merge"])
