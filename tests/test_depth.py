"""Depth Map: our node equals transformers' own depth estimation on the same picture, at the picture's size."""

import os

import pytest
import torch
from PIL import Image

import nodegraph

import tiny_models
from conftest import REPO

SAMPLE = os.path.join(REPO, "workflows", "assets", "sample.png")  # 384 x 256


@pytest.fixture(scope="module")
def depth_folder(tmp_path_factory):
    return tiny_models.depth_anything(tmp_path_factory.mktemp("models") / "tiny-depth-anything")


def depth_workflow(model):
    wf = nodegraph.Workflow()
    wf.add_node("image.load", "load", params={"path": SAMPLE})
    wf.add_node("model.depth", "model", params={"model": str(model)})
    wf.add_node("analyze.depth", "depth")
    wf.connect("model", "depth_model", "depth", "depth_model")
    wf.connect("load", "image", "depth", "image")
    return wf


def test_the_depth_map_equals_transformers_depth_estimation(depth_folder):
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    result = nodegraph.Engine(device="cpu").run(depth_workflow(depth_folder), targets=["depth"])
    ours = result.outputs["depth"]["depth"]
    assert tuple(ours.shape) == (1, 3, 256, 384) and float(ours.min()) == 0.0 and float(ours.max()) == 1.0
    processor = AutoImageProcessor.from_pretrained(depth_folder, local_files_only=True)
    model = AutoModelForDepthEstimation.from_pretrained(depth_folder, local_files_only=True).eval()
    picture = Image.open(SAMPLE).convert("RGB")
    with torch.no_grad():
        out = model(**processor(images=[picture], return_tensors="pt"))
    depth = processor.post_process_depth_estimation(out, target_sizes=[(256, 384)])[0]["predicted_depth"]
    theirs = (depth - depth.min()) / (depth.max() - depth.min())
    torch.testing.assert_close(ours[0, 0], theirs, rtol=1e-4, atol=1e-5)
    assert torch.equal(ours[0, 0], ours[0, 2])  # grey: the same map in every channel


def test_a_new_picture_reuses_the_loaded_model(depth_folder, tmp_path):
    engine = nodegraph.Engine(device="cpu")
    wf = depth_workflow(depth_folder)
    engine.run(wf, targets=["depth"])
    Image.open(SAMPLE).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "flipped.png")
    wf.set_param("load", "path", str(tmp_path / "flipped.png"))
    again = engine.run(wf, targets=["depth"])
    assert again.executed == ["load", "depth"] and "model" in again.cached


def test_a_folder_that_is_not_a_depth_model_is_refused_in_words(tmp_path):
    folder = tiny_models.clip_image_encoder(tmp_path / "clip")
    wf = depth_workflow(folder)
    with pytest.raises(nodegraph.NodeFailed, match="node 'model' failed: .* holds a 'clip' model, not a depth estimator"):
        nodegraph.Engine(device="cpu").run(wf, targets=["depth"])
