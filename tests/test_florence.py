"""Load Florence-2 and Florence-2 (nodes/florence.py), with a tiny random Florence-2 saved as transformers saves one.

Random weights give no meaning to an answer, so the tests check what can go wrong on our side: the text and
the boxes equal transformers' own generate + batch_decode + post_process_generation on the same picture, the
boxes lie on the picture in pixels (x0, y0, x1, y1) with the picture's size, the mask is their union, and a
wrong folder or a missing phrase is refused in words.
"""

import json
import os

import pytest
import torch
from PIL import Image

import nodegraph

import tiny_models
from conftest import REPO

SAMPLE = os.path.join(REPO, "workflows", "assets", "sample.png")  # 384 x 256
SHORT = 40  # max_new_tokens: the tiny model's answers stay short


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """The model is tiny: a second intra-op thread only adds waiting on 2 busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def florence_folder(tmp_path_factory):
    return tiny_models.florence2(tmp_path_factory.mktemp("models") / "tiny-florence2")


@pytest.fixture(scope="module")
def theirs(florence_folder):
    """transformers' Florence-2 and processor, loaded straight from the folder: none of our code."""
    from transformers import AutoProcessor, Florence2ForConditionalGeneration

    model = Florence2ForConditionalGeneration.from_pretrained(florence_folder, local_files_only=True).eval()
    return model, AutoProcessor.from_pretrained(florence_folder, local_files_only=True)


def transformers_answer(theirs, prompt: str, task: str, num_beams: int = 1):
    model, processor = theirs
    picture = Image.open(SAMPLE).convert("RGB")
    inputs = processor(text=prompt, images=picture, return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(**inputs, max_new_tokens=SHORT, num_beams=num_beams, do_sample=False)
    text = processor.batch_decode(ids, skip_special_tokens=False)[0]
    return processor.post_process_generation(text, task=task, image_size=picture.size)[task]


def pixel_corners(bboxes):
    """transformers' boxes as a Boxes value holds them: float pixels, each box's corners in order."""
    return torch.tensor([[min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)] for x0, y0, x1, y1 in bboxes],
                        dtype=torch.float32).reshape(-1, 4)


def florence_workflow(model, **params):
    wf = nodegraph.Workflow()
    wf.add_node("image.load", "load", params={"path": SAMPLE})
    wf.add_node("model.vlm", "vlm", params={"model": str(model)})
    wf.add_node("analyze.florence", "florence", params={"max_new_tokens": SHORT, "num_beams": 1, **params})
    wf.connect("vlm", "vlm", "florence", "vlm")
    wf.connect("load", "image", "florence", "image")
    return wf


def run(wf, engine=None):
    result = (engine or nodegraph.Engine(device="cpu")).run(wf, targets=["florence"])
    return result, result.outputs["florence"]


def test_a_caption_equals_transformers_generate_and_post_process(florence_folder, theirs):
    _, out = run(florence_workflow(florence_folder, task="caption"))
    expected = transformers_answer(theirs, "<CAPTION>", "<CAPTION>")
    assert isinstance(out["text"], str) and out["text"] and out["text"] == expected
    assert len(out["boxes"]) == 0 and (out["boxes"].width, out["boxes"].height) == (384, 256)
    assert tuple(out["mask"].shape) == (1, 1, 256, 384) and float(out["mask"].max()) == 0.0


def test_beam_search_answers_equal_transformers_too(florence_folder, theirs):
    _, out = run(florence_workflow(florence_folder, task="detailed caption", num_beams=3))
    assert out["text"] == transformers_answer(theirs, "<DETAILED_CAPTION>", "<DETAILED_CAPTION>", num_beams=3)


def test_object_detection_boxes_equal_transformers_in_the_pictures_pixels(florence_folder, theirs):
    _, out = run(florence_workflow(florence_folder, task="object detection"))
    expected = transformers_answer(theirs, "<OD>", "<OD>")
    assert expected["bboxes"]  # the tiny model's answer does hold boxes, so there is something to compare
    boxes = out["boxes"]
    assert torch.equal(boxes.xyxy, pixel_corners(expected["bboxes"]))
    assert list(boxes.labels) == expected["labels"] and out["text"] == "\n".join(expected["labels"])
    assert (boxes.width, boxes.height) == (384, 256)
    assert float(boxes.xyxy[:, 0::2].max()) <= 384 and float(boxes.xyxy[:, 1::2].max()) <= 256
    union = boxes.masks().amax(dim=0, keepdim=True)
    assert tuple(out["mask"].shape) == (1, 1, 256, 384) and torch.equal(out["mask"], union)


def test_phrase_grounding_sends_the_phrase_and_a_missing_phrase_is_refused(florence_folder, theirs):
    engine = nodegraph.Engine(device="cpu")
    wf = florence_workflow(florence_folder, task="phrase grounding", text="a red square")
    _, out = run(wf, engine)
    task = "<CAPTION_TO_PHRASE_GROUNDING>"
    expected = transformers_answer(theirs, task + "a red square", task)
    assert expected["bboxes"] and torch.equal(out["boxes"].xyxy, pixel_corners(expected["bboxes"]))
    assert list(out["boxes"].labels) == expected["labels"]
    wf.set_param("florence", "text", " ")
    with pytest.raises(nodegraph.NodeFailed, match="node 'florence' failed: text: phrase grounding needs the phrase"):
        engine.run(wf, targets=["florence"])
    assert "vlm" in engine.run(florence_workflow(florence_folder), targets=["florence"]).cached  # loaded once


def test_a_folder_that_is_not_florence2_is_refused_in_words(tmp_path):
    folder = tiny_models.depth_anything(tmp_path / "depth")
    with pytest.raises(nodegraph.NodeFailed, match="node 'vlm' failed: .* holds a 'depth_anything' model, not Florence-2"):
        run(florence_workflow(folder))
    with pytest.raises(nodegraph.NodeFailed, match="node 'vlm' failed: .* is not a transformers model folder"):
        run(florence_workflow(tmp_path))


def test_microsofts_remote_code_layout_is_refused_in_words(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "florence2", "auto_map": {"AutoModelForCausalLM": "modeling_florence2.Florence2ForConditionalGeneration"},
        "vision_config": {"model_type": "davit"}, "text_config": {"model_type": "florence2_language"}}))
    with pytest.raises(nodegraph.NodeFailed, match="Microsoft's original remote-code layout"):
        run(florence_workflow(tmp_path))
