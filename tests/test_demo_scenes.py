"""The demo models' training data (nodegraph_demo/scenes.py) and its measures (nodegraph_demo/evaluate.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from nodegraph_demo import evaluate, scenes

SIZE = 64


@pytest.fixture(scope="module")
def batch():
    return scenes.scene_batch(96, seed=7, size=SIZE)


def _centre_of_mass(mask: torch.Tensor) -> tuple[float, float]:
    h, w = mask.shape
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    total = mask.sum()
    return float((mask * xs).sum() / total / w), float((mask * ys).sum() / total / h)


def test_a_batch_has_pictures_masks_and_scenes(batch):
    assert batch.images.shape == (96, 3, SIZE, SIZE) and batch.images.dtype == torch.float32
    assert batch.masks.shape == (96, 2, SIZE, SIZE)
    assert 0 <= float(batch.images.min()) and float(batch.images.max()) <= 1
    assert len(batch.scenes) == len(batch.captions) == 96
    assert {len(s.objects) for s in batch.scenes} == {1, 2}
    edge = batch.masks[(batch.masks > 0) & (batch.masks < 1)]
    assert edge.numel() > 0  # antialiased: partly covered pixels along every outline


def test_each_object_is_drawn_in_its_colour_where_its_caption_says(batch):
    for image, masks, scene in zip(batch.images, batch.masks, batch.scenes):
        for k, o in enumerate(scene.objects):
            inside = masks[k] > 0.99
            assert int(inside.sum()) > 10, scene.caption
            mean = image.permute(1, 2, 0)[inside].mean(0)
            assert evaluate.NAMES[int(evaluate.colour_names(mean))] == o.colour, scene.caption
            x, y = _centre_of_mass(masks[k])
            lo_hi = {"left": (x, 0.0, 0.35), "right": (x, 0.65, 1.0), "top": (y, 0.0, 0.35),
                     "bottom": (y, 0.65, 1.0)}
            if o.position == "centre":
                assert abs(x - 0.5) < 0.1 and abs(y - 0.5) < 0.1, scene.caption
            else:
                value, lo, hi = lo_hi[o.position]
                assert lo <= value <= hi, (scene.caption, x, y)
        uncovered = (masks.sum(0) == 0)
        mean = image.permute(1, 2, 0)[uncovered].mean(0)
        assert evaluate.NAMES[int(evaluate.colour_names(mean))] == scene.background, scene.caption


def test_captions_name_what_is_drawn_in_the_vocabulary(batch):
    for scene in batch.scenes:
        words = scene.caption.replace(",", " ,").split()
        assert len(words) <= 22 and set(words) <= set(scenes.VOCABULARY), scene.caption
        assert scene.caption.endswith(f", {scene.background} background")
        assert scene.background not in {o.colour for o in scene.objects}
        for o in scene.objects:
            assert f"{o.colour} {o.shape}" in scene.caption
            if o.size_said:
                assert f"{o.size} {o.colour} {o.shape}" in scene.caption
            if o.position_said:
                phrase = scenes.PHRASES[o.position]
                assert phrase in scene.caption or phrase.replace("centre", "center") in scene.caption
        if len(scene.objects) == 2:
            assert {o.position for o in scene.objects} in ({"left", "right"}, {"top", "bottom"})
            assert " and " in scene.caption


def test_grammar_and_examples():
    caption = next(s.caption for s in scenes.sample_scenes(400, scenes.generator_for(1, 0, "train"))
                   if " orange " in f" {s.caption} ")
    assert "a orange" not in caption
    assert {"an", "centre", "center", "star", "diamond", "gray", "pink"} <= set(scenes.VOCABULARY)


def test_the_same_seed_draws_the_same_batch_and_splits_never_share_one():
    a = scenes.scene_batch(8, seed=3, index=5, size=32)
    b = scenes.scene_batch(8, seed=3, index=5, size=32)
    assert a.captions == b.captions and torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    other_index = scenes.scene_batch(8, seed=3, index=6, size=32)
    other_seed = scenes.scene_batch(8, seed=4, index=5, size=32)
    held_out = scenes.scene_batch(8, seed=3, index=5, split="eval", size=32)
    for c in (other_index, other_seed, held_out):
        assert c.captions != a.captions and not torch.equal(c.images, a.images)
    train_pixels = {tuple(round(v, 6) for v in (o.x, o.y, o.radius)) for s in
                    scenes.sample_scenes(300, scenes.generator_for(0, 0, "train")) for o in s.objects}
    eval_pixels = {tuple(round(v, 6) for v in (o.x, o.y, o.radius)) for s in
                   scenes.sample_scenes(300, scenes.generator_for(0, 0, "eval")) for o in s.objects}
    assert not train_pixels & eval_pixels
    with pytest.raises(ValueError):
        scenes.generator_for(0, 0, "test")


def test_rendering_does_not_depend_on_the_batch_it_is_in():
    drawn = scenes.sample_scenes(6, scenes.generator_for(0, 2, "train"))
    whole, _ = scenes.render(drawn, 32)
    alone, _ = scenes.render(drawn[2:3], 32)
    assert torch.allclose(whole[2:3], alone, atol=1e-6)


def test_canny_edges_follow_the_outlines(batch):
    edges = scenes.canny(batch.images)
    assert edges.shape == batch.images.shape and set(edges.unique().tolist()) <= {0.0, 1.0}
    coverage = batch.masks.sum(1, keepdim=True).clamp(0, 1)
    outline = (torch.nn.functional.max_pool2d(coverage, 5, 1, 2) - (-torch.nn.functional.max_pool2d(-coverage, 5, 1, 2)))
    on_outline = (edges[:, :1] > 0) & (outline > 0.2)
    assert int(on_outline.sum()) >= 0.97 * int((edges[:, :1] > 0).sum())  # edges lie on outlines only
    for k in range(2):  # and every object has some
        present = batch.masks[:, k].flatten(1).sum(1) > 0
        per_object = ((edges[:, 0] > 0) & (torch.nn.functional.max_pool2d(batch.masks[:, k:k + 1], 3, 1, 1)[:, 0] > 0))
        assert bool((per_object.flatten(1).sum(1)[present] > 4).all())


@pytest.mark.filterwarnings("ignore")
def test_canny_is_the_controlnet_preprocessor_at_the_pictures_size(tmp_path, batch):
    """The helper's edges equal what the product's ControlNet Preprocessor node gives for the same PNG."""
    import nodegraph

    pictures = scenes.to_uint8(batch.images[:3]).numpy()
    mine = scenes.canny(batch.images[:3])
    for i, picture in enumerate(pictures):
        path = tmp_path / f"scene{i}.png"
        Image.fromarray(picture).save(path)
        wf = nodegraph.Workflow()
        wf.add_node("image.load", "load", params={"path": str(path)})
        wf.add_node("control.preprocess", "pre", params={"detector": "canny", "low_threshold": 100,
                                                          "high_threshold": 200, "detect_resolution": SIZE,
                                                          "image_resolution": SIZE})
        wf.connect("load", "image", "pre", "image")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            node = nodegraph.Engine(device="cpu").run(wf, targets=["pre"]).outputs["pre"]["image"]
        assert torch.equal(node[0], mine[i]), i
    assert np.asarray(mine).any()


def test_the_measures_pass_true_pictures_and_fail_wrong_ones():
    held = scenes.scene_batch(64, seed=11, split="eval", size=SIZE)
    assert evaluate.score(held.images, held.scenes) == {"colour": 1.0, "position": 1.0, "background": 1.0,
                                                        "one_colour": 1.0, "one_position": 1.0, "count": 64}
    shuffled = evaluate.score(held.images.roll(1, 0), held.scenes)
    assert shuffled["colour"] < 0.3 and shuffled["background"] < 0.3
    noise = evaluate.score(torch.rand(16, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)), held.scenes[:16])
    assert noise["colour"] == 0.0
    flat = evaluate.score(held.images[:, :, :1, :1].expand(-1, -1, SIZE, SIZE), held.scenes)
    assert flat["colour"] == 0.0
    assert evaluate.psnr(held.images, held.images) > 90
    assert 19 < evaluate.psnr(held.images, (held.images + 0.1).clamp(0, 1)) < 21


def test_edge_agreement_allows_a_pixel_of_slack():
    a = torch.zeros(1, 3, 16, 16)
    a[..., 5, 2:12] = 1
    assert evaluate.edge_agreement(a, a) == {"precision": 1.0, "recall": 1.0}
    shifted = a.roll(1, 2)
    assert evaluate.edge_agreement(shifted, a, tolerance=1)["recall"] == 1.0
    assert evaluate.edge_agreement(shifted, a, tolerance=0)["recall"] == 0.0
    assert evaluate.edge_agreement(torch.zeros_like(a), a)["recall"] == 0.0
