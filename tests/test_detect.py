"""Detect Objects: our boxes equal transformers' own detection (Grounding DINO, OWL-ViT, OWLv2) on the same picture
and prompt, in pixels on the picture; Load Detector refuses other folders in words."""

import os

import pytest
import torch
from PIL import Image

import nodegraph

import tiny_models
from conftest import REPO

SAMPLE = os.path.join(REPO, "workflows", "assets", "sample.png")  # 384 x 256
BUILDERS = {"owlvit": tiny_models.owlvit, "owlv2": tiny_models.owlv2, "grounding-dino": tiny_models.grounding_dino}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {kind: build(root / f"tiny-{kind}") for kind, build in BUILDERS.items()}


def detect_workflow(model, prompt="a cat, a tree", **params):
    wf = nodegraph.Workflow()
    wf.add_node("image.load", "load", params={"path": SAMPLE})
    wf.add_node("model.detect", "model", params={"model": str(model)})
    wf.add_node("analyze.detect", "detect", params={"prompt": prompt, **params})
    wf.connect("model", "detect_model", "detect", "detect_model")
    wf.connect("load", "image", "detect", "image")
    return wf


def detect(wf):
    return nodegraph.Engine(device="cpu").run(wf, targets=["detect"]).outputs["detect"]["boxes"]


def transformers_detection(folder, text, threshold, text_threshold=None):
    """What transformers itself finds: its auto classes, its processor, its post-processing at the picture's size."""
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

    processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    model = AutoModelForZeroShotObjectDetection.from_pretrained(folder, local_files_only=True).eval()
    picture = Image.open(SAMPLE).convert("RGB")
    batch = processor(images=[picture], text=text, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch)
    if text_threshold is None:  # OWL: text is [labels]
        [found] = processor.post_process_grounded_object_detection(out, threshold=threshold, target_sizes=[(256, 384)],
                                                                   text_labels=text)
    else:
        [found] = processor.post_process_grounded_object_detection(out, batch["input_ids"], threshold=threshold,
                                                                   text_threshold=text_threshold,
                                                                   target_sizes=[(256, 384)])
    return found


def best_first(found, count):
    order = torch.argsort(found["scores"], descending=True, stable=True)[:count]
    return found["boxes"][order], [found["text_labels"][i] for i in order], found["scores"][order]


def inside(xyxy):
    """Corners clamped to the 384 x 256 picture."""
    return torch.stack([xyxy[:, 0].clamp(0, 384), xyxy[:, 1].clamp(0, 256),
                        xyxy[:, 2].clamp(0, 384), xyxy[:, 3].clamp(0, 256)], dim=1)


@pytest.mark.parametrize("kind", ["owlvit", "owlv2"])
def test_owl_boxes_equal_transformers_detection(folders, kind):
    boxes = detect(detect_workflow(folders[kind], "a cat, a tree", threshold=0.0, max_boxes=6))
    theirs, labels, scores = best_first(transformers_detection(folders[kind], [["a cat", "a tree"]], 0.0), 6)
    assert len(boxes) == 6 and boxes.labels == tuple(labels) and set(labels) <= {"a cat", "a tree"}
    torch.testing.assert_close(boxes.scores, scores)
    torch.testing.assert_close(boxes.xyxy, inside(theirs))


def test_grounding_dino_reads_the_labels_in_its_own_convention_and_equals_transformers(folders):
    # our prompt "a cat, a tree" is Grounding DINO's "a cat. a tree."
    boxes = detect(detect_workflow(folders["grounding-dino"], "a cat, a tree", threshold=0.0, text_threshold=0.5,
                                   max_boxes=8))
    theirs, labels, scores = best_first(transformers_detection(folders["grounding-dino"], "a cat. a tree.", 0.0, 0.5), 8)
    assert len(boxes) == 8 and boxes.labels == tuple(labels)
    torch.testing.assert_close(boxes.scores, scores)
    torch.testing.assert_close(boxes.xyxy, inside(theirs))


def test_a_higher_threshold_keeps_only_the_boxes_above_it(folders):
    everything = detect(detect_workflow(folders["grounding-dino"], threshold=0.0, max_boxes=0))
    middle = float(everything.scores.median())
    kept = detect(detect_workflow(folders["grounding-dino"], threshold=middle, max_boxes=0))
    assert len(everything) == 20  # every query of the tiny model
    assert 0 < len(kept) < len(everything) and bool((kept.scores > middle).all())
    assert kept.scores.tolist() == sorted(kept.scores.tolist(), reverse=True)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_boxes_are_pixel_corners_inside_the_picture(folders, kind):
    boxes = detect(detect_workflow(folders[kind], "a building, a tree", threshold=0.0, max_boxes=5))
    assert (boxes.width, boxes.height) == (384, 256) and len(boxes) == 5
    x0, y0, x1, y1 = boxes.xyxy.unbind(1)
    assert bool(((0 <= x0) & (x0 <= x1) & (x1 <= 384) & (0 <= y0) & (y0 <= y1) & (y1 <= 256)).all())
    assert float(boxes.xyxy.max()) > 1.0  # pixels, not fractions of the picture
    assert boxes.scores.tolist() == sorted(boxes.scores.tolist(), reverse=True)


def test_detected_boxes_become_a_mask(folders):
    wf = detect_workflow(folders["owlvit"], threshold=0.0, max_boxes=3)
    wf.add_node("boxes.to_mask", "mask")
    wf.connect("detect", "boxes", "mask", "boxes")
    result = nodegraph.Engine(device="cpu").run(wf, targets=["mask", "detect"])
    mask, boxes = result.outputs["mask"]["mask"], result.outputs["detect"]["boxes"]
    assert tuple(mask.shape) == (1, 1, 256, 384)
    assert torch.equal(mask, boxes.masks().amax(dim=0, keepdim=True))


def test_a_new_picture_reuses_the_loaded_detector(folders, tmp_path):
    engine = nodegraph.Engine(device="cpu")
    wf = detect_workflow(folders["owlvit"], threshold=0.0)
    engine.run(wf, targets=["detect"])
    Image.open(SAMPLE).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "flipped.png")
    wf.set_param("load", "path", str(tmp_path / "flipped.png"))
    again = engine.run(wf, targets=["detect"])
    assert again.executed == ["load", "detect"] and "model" in again.cached


def test_a_folder_that_is_not_a_detector_is_refused_in_words(tmp_path):
    wf = detect_workflow(tiny_models.clip_image_encoder(tmp_path / "clip"))
    with pytest.raises(nodegraph.NodeFailed, match="node 'model' failed: .* holds a 'clip' model, not a text-prompted "
                                                   "detector"):
        nodegraph.Engine(device="cpu").run(wf, targets=["detect"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(nodegraph.NodeFailed, match="empty is not a transformers model folder"):
        nodegraph.Engine(device="cpu").run(detect_workflow(tmp_path / "empty"), targets=["detect"])


def test_an_empty_prompt_is_refused_in_words(folders):
    with pytest.raises(nodegraph.NodeFailed, match="node 'detect' failed: prompt: name what to find"):
        detect(detect_workflow(folders["owlvit"], " , ."))


@pytest.mark.parametrize("kind, words", [("owlvit", "'a zebra beside the umbrella' is 2\\d tokens, more than the 16 that "
                                                   "OWL-ViT reads"),
                                         ("owlv2", ".* is 2\\d tokens, more than the 16 that OWLv2 reads"),
                                         ("grounding-dino", "the labels make \\d+ tokens, more than the 32 that Grounding "
                                                            "DINO reads")])
def test_a_prompt_longer_than_the_model_reads_is_refused_in_words(folders, kind, words):
    prompt = "a cat, a zebra beside the umbrella" + ", a dog" * (4 if kind == "grounding-dino" else 0)
    with pytest.raises(nodegraph.NodeFailed, match=f"node 'detect' failed: prompt: {words}; shorten it"):
        detect(detect_workflow(folders[kind], prompt))
