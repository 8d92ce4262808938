"""IP-Adapter through the graph equals diffusers' load_ip_adapter, and leaves the shared UNet as it was."""

import numpy as np
import pytest
import torch
from PIL import Image

import nodegraph

import tiny_models
from test_diffusion_sd import NEGATIVE, PROMPT, sd_folder, txt2img  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def adapter_files(sd_folder, tmp_path_factory):  # noqa: F811
    from diffusers import UNet2DConditionModel

    root = tmp_path_factory.mktemp("ip")
    unet = UNet2DConditionModel.from_pretrained(sd_folder / "unet")
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / "ref.png")
    return {"encoder": tiny_models.clip_vision_encoder(root / "encoder"),
            "adapter": tiny_models.ip_adapter(root / "ip-adapter.safetensors", unet), "picture": root / "ref.png"}


def with_adapter(model, files, scale=0.7):
    wf = txt2img(model)
    wf.add_node("encode.load", "clip_vision", params={"model": str(files["encoder"])})
    wf.add_node("image.load", "reference", params={"path": str(files["picture"])})
    wf.add_node("control.ip_adapter", "ip", params={"ip_adapter": str(files["adapter"]), "scale": scale})
    wf.connect("text", "conditioning", "ip", "conditioning")
    wf.connect("clip_vision", "encoder", "ip", "encoder")
    wf.connect("reference", "image", "ip", "image")
    wf.connect("ip", "conditioning", "sampler", "conditioning")
    return wf


def test_ip_adapter_equals_diffusers_load_ip_adapter(sd_folder, adapter_files):  # noqa: F811
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    engine = nodegraph.Engine(device="cpu")
    ours = engine.run(with_adapter(sd_folder, adapter_files), targets=["decode"]).outputs["decode"]["image"]
    pipe = StableDiffusionPipeline.from_pretrained(
        sd_folder, local_files_only=True,
        image_encoder=CLIPVisionModelWithProjection.from_pretrained(adapter_files["encoder"]),
        feature_extractor=CLIPImageProcessor.from_pretrained(adapter_files["encoder"]))
    pipe.load_ip_adapter(str(adapter_files["adapter"].parent), subfolder="", weight_name=adapter_files["adapter"].name,
                         image_encoder_folder=None)
    pipe.set_ip_adapter_scale(0.7)
    theirs = pipe(PROMPT, ip_adapter_image=Image.open(adapter_files["picture"]), negative_prompt=NEGATIVE,
                  num_inference_steps=4, guidance_scale=5.0, height=32, width=32,
                  generator=torch.Generator("cpu").manual_seed(7), output_type="pt").images
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    plain = nodegraph.Engine(device="cpu").run(txt2img(sd_folder), targets=["decode"]).outputs["decode"]["image"]
    assert not torch.allclose(ours, plain, atol=1e-3)


def test_the_shared_unet_is_left_as_it_was(sd_folder, adapter_files):  # noqa: F811
    engine = nodegraph.Engine(device="cpu")
    wf = with_adapter(sd_folder, adapter_files)
    engine.run(wf, targets=["decode"])
    unet = engine.run(wf, targets=["ckpt"]).outputs["ckpt"]["model"].denoiser
    assert unet.encoder_hid_proj is None
    assert not any("IPAdapter" in type(p).__name__ for p in unet.attn_processors.values())
    wf.set_param("sampler", "seed", 8)  # the base model through the same engine draws the base picture
    wf.connect("text", "conditioning", "sampler", "conditioning")
    after = engine.run(wf, targets=["decode"]).outputs["decode"]["image"]
    reference = nodegraph.Engine(device="cpu").run(txt2img(sd_folder, seed=8), targets=["decode"])
    torch.testing.assert_close(after, reference.outputs["decode"]["image"])


def test_a_file_that_is_not_an_ip_adapter_is_refused_in_words(sd_folder, adapter_files, tmp_path):  # noqa: F811
    from safetensors.torch import save_file

    save_file({"something.weight": torch.zeros(2)}, tmp_path / "odd.safetensors")
    wf = with_adapter(sd_folder, {**adapter_files, "adapter": tmp_path / "odd.safetensors"})
    with pytest.raises(nodegraph.NodeFailed, match="odd.safetensors is not an IP-Adapter"):
        nodegraph.Engine(device="cpu").run(wf, targets=["decode"])
