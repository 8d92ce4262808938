"""Text to Masks, the library subgraph that chains a detector and SAM: the example's mask equals Detect
Objects -> Segment wired by hand, and the library offers it to every workflow."""

from __future__ import annotations

import os
import shutil

import torch

import nodegraph
from nodegraph import library

import tiny_models
from conftest import REPO

EXAMPLE = os.path.join(REPO, "workflows", "text-to-mask.json")


def test_the_library_offers_text_to_masks():
    entry = library.entries()["text_to_masks"]
    assert (entry.title, entry.category) == ("Text to Masks", "analyze/segment")
    sub = library.read_file(entry.path).subgraphs["text_to_masks"]
    assert [s.name for s in sub.inputs] == ["image", "detect_model", "segment_model"]
    assert [s.name for s in sub.outputs] == ["mask", "boxes"]
    assert [p.name for p in sub.params] == ["prompt", "threshold", "max_boxes", "combine"]


def test_the_subgraphs_mask_equals_detect_then_segment_by_hand(tmp_path, monkeypatch):
    models = tmp_path / "models"
    tiny_models.owlvit(models / "demo-owlvit")
    tiny_models.sam(models / "demo-sam")
    monkeypatch.setenv("NODEGRAPH_MODEL_PATHS", str(models))
    shutil.copytree(os.path.join(REPO, "workflows", "assets"), tmp_path / "assets")
    shutil.copy(EXAMPLE, tmp_path / "text-to-mask.json")
    wf = nodegraph.load(tmp_path / "text-to-mask.json")
    wf.set_param("text_to_masks", "threshold", 0.0)  # random weights score low: keep the best boxes
    engine = nodegraph.Engine(device="cpu")
    ours = engine.run(wf, targets=["picture"], output_dir=tmp_path / "out")
    assert ours.status == "ok"
    assert {"text_to_masks/detect", "text_to_masks/segment"} <= set(ours.executed)

    by_hand = nodegraph.Workflow()
    by_hand.add_node("image.load", "load", params={"path": str(tmp_path / "assets" / "sample.png")})
    by_hand.add_node("model.detect", "detector", params={"model": "demo-owlvit"})
    by_hand.add_node("model.segment", "segmenter", params={"model": "demo-sam"})
    by_hand.add_node("analyze.detect", "detect", params={"prompt": "a house", "threshold": 0.0, "max_boxes": 4})
    by_hand.add_node("analyze.segment", "segment")
    for a, b, c, d in [("load", "image", "detect", "image"), ("load", "image", "segment", "image"),
                       ("detector", "detect_model", "detect", "detect_model"),
                       ("segmenter", "segment_model", "segment", "segment_model"),
                       ("detect", "boxes", "segment", "boxes")]:
        by_hand.connect(a, b, c, d)
    theirs = nodegraph.Engine(device="cpu").run(by_hand, targets=["segment"]).outputs["segment"]
    boxes = ours.outputs["text_to_masks/detect"]["boxes"]
    assert len(boxes) == 4 and (boxes.width, boxes.height) == (384, 256)
    mask = ours.outputs["text_to_masks/segment"]["mask"]
    assert mask.shape == (1, 1, 256, 384) and torch.equal(mask, theirs["mask"])
