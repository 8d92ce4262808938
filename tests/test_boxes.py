"""BOXES: boxes typed or placed by hand, their masks and drawings, and the text form points and boxes
parameters hold (what the viewer writes when a person clicks on a picture)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import nodegraph
from nodegraph.points import Point, format_boxes, format_points, parse_boxes, parse_points


@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("RGB", (40, 30), (128, 128, 128)).save(path)
    return path


def run(wf, target, tmp_path):
    return nodegraph.Engine(device="cpu").run(wf, targets=[target], output_dir=tmp_path / "out").outputs[target]


def boxes_workflow(picture, text):
    wf = nodegraph.Workflow()
    wf.add_node("image.load", "load", params={"path": str(picture)})
    wf.add_node("boxes.value", "boxes", params={"boxes": text})
    wf.connect("load", "image", "boxes", "image")
    return wf


def test_points_and_boxes_text_reads_back_what_it_writes():
    points = parse_points("412,300 -80,90 +1.5,2")
    assert points == [Point(412, 300), Point(80, 90, keep=False), Point(1.5, 2)]
    assert format_points(points) == "412,300 -80,90 1.5,2"
    assert parse_boxes("200,180,10,20") == [(10, 20, 200, 180)]  # corners put in order
    assert format_boxes(parse_boxes("10,20,200,180 1,2,3,4")) == "10,20,200,180 1,2,3,4"
    with pytest.raises(ValueError, match="point '3' is not x,y"):
        parse_points("1,2 3")
    with pytest.raises(ValueError, match="box '1,1,1,5' has no area"):
        parse_boxes("1,1,1,5")


def test_boxes_become_a_union_mask_or_one_mask_per_box(picture, tmp_path):
    wf = boxes_workflow(picture, "0,0,10,5 30,20,40,30")
    wf.add_node("boxes.to_mask", "union")
    wf.connect("boxes", "boxes", "union", "boxes")
    wf.add_node("boxes.to_mask", "each", params={"combine": "separate"})
    wf.connect("boxes", "boxes", "each", "boxes")
    union = run(wf, "union", tmp_path)["mask"]
    each = run(wf, "each", tmp_path)["mask"]
    assert union.shape == (1, 1, 30, 40) and each.shape == (2, 1, 30, 40)
    assert union.sum() == 10 * 5 + 10 * 10
    assert each[0, 0, :5, :10].all() and each[0].sum() == 50
    assert each[1, 0, 20:, 30:].all() and each[1].sum() == 100


def test_a_mask_gives_back_its_bounding_box(picture, tmp_path):
    wf = boxes_workflow(picture, "4,6,18,20")
    wf.add_node("boxes.to_mask", "mask")
    wf.connect("boxes", "boxes", "mask", "boxes")
    wf.add_node("mask.to_boxes", "back")
    wf.connect("mask", "mask", "back", "mask")
    back = run(wf, "back", tmp_path)["boxes"]
    assert back.xyxy.tolist() == [[4, 6, 18, 20]] and (back.width, back.height) == (40, 30)


def test_drawn_boxes_outline_the_box_and_leave_the_rest(picture, tmp_path):
    wf = boxes_workflow(picture, "5,5,25,20")
    wf.add_node("boxes.draw", "draw", params={"color": "#ff0000", "width": 1})
    wf.connect("load", "image", "draw", "image")
    wf.connect("boxes", "boxes", "draw", "boxes")
    image = run(wf, "draw", tmp_path)["image"]
    red = torch.tensor([1.0, 0, 0])
    assert torch.allclose(image[0, :, 5, 10], red) and torch.allclose(image[0, :, 12, 5], red)
    assert torch.allclose(image[0, :, 12, 12], torch.full((3,), 128 / 255))


def test_a_mistyped_box_names_the_parameter(picture, tmp_path):
    wf = boxes_workflow(picture, "5,5,25")
    with pytest.raises(nodegraph.NodeFailed, match="boxes: box '5,5,25' is not x0,y0,x1,y1"):
        run(wf, "boxes", tmp_path)
