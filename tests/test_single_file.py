"""Single-file .safetensors checkpoints: detected from their keys, loaded offline with shipped configs."""

import json

import pytest
import torch

import nodegraph
from nodes import _single_file

import ldm_layout
from test_diffusion_sd import sd_folder, txt2img  # noqa: F401 (fixture)

PUBLISHED_PARAMETERS = {  # the real models' sizes: the shipped configs must build exactly these
    ("sd15", "unet"): 859_520_964, ("sd15", "vae"): 83_653_863, ("sd15", "text_encoder"): 123_060_480,
    ("sdxl", "unet"): 2_567_463_684, ("sdxl", "vae"): 83_653_863, ("sdxl", "text_encoder"): 123_060_480,
    ("sdxl", "text_encoder_2"): 694_659_840,
}


@pytest.fixture(scope="module")
def single_file(sd_folder, tmp_path_factory):  # noqa: F811
    from diffusers import StableDiffusionPipeline

    path = tmp_path_factory.mktemp("single") / "tiny-sd.safetensors"
    ldm_layout.write_sd1_single_file(StableDiffusionPipeline.from_pretrained(sd_folder, local_files_only=True), path)
    return path


def test_a_single_file_loads_with_a_config_folder_and_draws_the_same_picture(single_file, sd_folder):  # noqa: F811
    from_folder = nodegraph.Engine(device="cpu").run(txt2img(sd_folder), targets=["decode"])
    wf = txt2img(single_file)
    wf.set_param("ckpt", "config", str(sd_folder))
    from_file = nodegraph.Engine(device="cpu").run(wf, targets=["decode"])
    torch.testing.assert_close(from_file.outputs["decode"]["image"], from_folder.outputs["decode"]["image"])


def test_the_family_is_detected_from_the_keys(single_file):
    assert _single_file.model_type(single_file) == "v1"


def test_without_a_config_the_shipped_one_is_used_and_a_mismatch_is_explained(single_file):
    with pytest.raises(nodegraph.NodeFailed) as info:  # tiny weights cannot fill the real SD 1.5 architecture
        nodegraph.Engine(device="cpu").run(txt2img(single_file), targets=["ckpt"])
    assert "cannot load tiny-sd.safetensors as a StableDiffusionPipeline" in str(info.value)


@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
def test_shipped_configs_build_the_published_architectures(kind):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    with _single_file.shipped_config(kind) as folder, torch.device("meta"):
        index = json.loads((folder / "model_index.json").read_text())
        for (k, part), expected in PUBLISHED_PARAMETERS.items():
            if k != kind:
                continue
            config = json.loads(((folder / part) / "config.json").read_text())
            if part == "unet":
                model = UNet2DConditionModel.from_config(config)
            elif part == "vae":
                model = AutoencoderKL.from_config(config)
            else:
                cls = CLIPTextModelWithProjection if index[part][1].endswith("Projection") else CLIPTextModel
                model = cls(CLIPTextConfig(**config))
            assert sum(p.numel() for p in model.parameters()) == expected, part
        from transformers import CLIPTokenizer

        tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
        assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
        assert tokenizer.model_max_length == 77


def test_a_file_that_is_not_a_checkpoint_is_refused_in_words(tmp_path):
    from safetensors.torch import save_file

    save_file({"hello": torch.zeros(2)}, tmp_path / "odd.safetensors")
    with pytest.raises(nodegraph.NodeFailed, match="odd.safetensors"):
        nodegraph.Engine(device="cpu").run(txt2img(tmp_path / "odd.safetensors"), targets=["ckpt"])
    (tmp_path / "weights.ckpt").write_bytes(b"not a pickle we would ever open")
    with pytest.raises(nodegraph.NodeFailed, match="read only as .safetensors"):
        nodegraph.Engine(device="cpu").run(txt2img(tmp_path / "weights.ckpt"), targets=["ckpt"])
