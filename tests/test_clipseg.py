"""Text to Mask (CLIPSeg): our masks equal transformers' CLIPSeg probabilities on the same picture and texts, resized
bilinearly to the picture's size; union, separate and threshold; Load CLIPSeg refuses other folders in words."""

import os

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import nodegraph

import tiny_models
from conftest import REPO

SAMPLE = os.path.join(REPO, "workflows", "assets", "sample.png")  # 384 x 256


@pytest.fixture(scope="module")
def clipseg_folder(tmp_path_factory):
    return tiny_models.clipseg(tmp_path_factory.mktemp("models") / "tiny-clipseg")


def clipseg_workflow(model, prompt="a cat, the background", **params):
    wf = nodegraph.Workflow()
    wf.add_node("image.load", "load", params={"path": SAMPLE})
    wf.add_node("model.clipseg", "model", params={"model": str(model)})
    wf.add_node("analyze.clipseg", "mask", params={"prompt": prompt, **params})
    wf.connect("model", "clipseg_model", "mask", "clipseg_model")
    wf.connect("load", "image", "mask", "image")
    return wf


def masks(wf, engine=None):
    return (engine or nodegraph.Engine(device="cpu")).run(wf, targets=["mask"]).outputs["mask"]["mask"]


def transformers_probabilities(folder, texts):
    """transformers' CLIPSeg on the picture, one sigmoid map per text, resized bilinearly to 256 x 384."""
    from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor

    processor = CLIPSegProcessor.from_pretrained(folder, local_files_only=True)
    model = CLIPSegForImageSegmentation.from_pretrained(folder, local_files_only=True).eval()
    picture = Image.open(SAMPLE).convert("RGB")
    batch = processor(text=texts, images=[picture] * len(texts), padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    return F.interpolate(torch.sigmoid(logits)[:, None], size=(256, 384), mode="bilinear", align_corners=False)


def test_separate_masks_equal_transformers_clipseg_at_the_picture_size(clipseg_folder):
    ours = masks(clipseg_workflow(clipseg_folder, "a cat, the background", combine="separate"))
    theirs = transformers_probabilities(clipseg_folder, ["a cat", "the background"])
    assert tuple(ours.shape) == (2, 1, 256, 384) and 0.0 <= float(ours.min()) and float(ours.max()) <= 1.0
    torch.testing.assert_close(ours, theirs)
    assert not torch.equal(ours[0], ours[1])  # each text its own mask


def test_the_union_is_the_most_of_every_text_at_each_pixel(clipseg_folder):
    ours = masks(clipseg_workflow(clipseg_folder, "a cat, the background"))
    theirs = transformers_probabilities(clipseg_folder, ["a cat", "the background"])
    assert tuple(ours.shape) == (1, 1, 256, 384)
    torch.testing.assert_close(ours, theirs.amax(dim=0, keepdim=True))
    single = masks(clipseg_workflow(clipseg_folder, "a cat"))
    torch.testing.assert_close(single, theirs[:1])


def test_a_threshold_makes_the_mask_binary(clipseg_folder):
    soft = masks(clipseg_workflow(clipseg_folder, "a cat", combine="separate"))
    middle = float(soft.median())
    hard = masks(clipseg_workflow(clipseg_folder, "a cat", combine="separate", threshold=middle))
    assert set(hard.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(hard, (soft > middle).float())


def test_a_batch_of_pictures_gives_a_mask_per_picture(clipseg_folder):
    wf = clipseg_workflow(clipseg_folder, "a cat, the background")
    wf.add_node("image.batch", "batch")
    wf.connect("load", "image", "batch", "image_a")
    wf.connect("load", "image", "batch", "image_b")
    wf.connect("batch", "image", "mask", "image")
    union = masks(wf)
    assert tuple(union.shape) == (2, 1, 256, 384) and torch.equal(union[0], union[1])
    wf.set_param("mask", "combine", "separate")
    assert tuple(masks(wf).shape) == (4, 1, 256, 384)


def test_a_new_picture_reuses_the_loaded_model(clipseg_folder, tmp_path):
    engine = nodegraph.Engine(device="cpu")
    wf = clipseg_workflow(clipseg_folder)
    masks(wf, engine)
    Image.open(SAMPLE).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "flipped.png")
    wf.set_param("load", "path", str(tmp_path / "flipped.png"))
    again = engine.run(wf, targets=["mask"])
    assert again.executed == ["load", "mask"] and "model" in again.cached


def test_a_folder_that_is_not_clipseg_is_refused_in_words(tmp_path):
    wf = clipseg_workflow(tiny_models.clip_image_encoder(tmp_path / "clip"))
    with pytest.raises(nodegraph.NodeFailed, match="node 'model' failed: .* holds a 'clip' model, not CLIPSeg"):
        masks(wf)


def test_an_empty_prompt_is_refused_in_words(clipseg_folder):
    with pytest.raises(nodegraph.NodeFailed, match="node 'mask' failed: prompt: name what to mask"):
        masks(clipseg_workflow(clipseg_folder, " , "))


def test_a_text_longer_than_clipseg_reads_is_refused_in_words(clipseg_folder):
    with pytest.raises(nodegraph.NodeFailed, match="prompt: 'zebra zebra .*' is \\d+ tokens, more than the 77 that "
                                                   "CLIPSeg reads; shorten it"):
        masks(clipseg_workflow(clipseg_folder, "a cat, " + "zebra " * 20))
