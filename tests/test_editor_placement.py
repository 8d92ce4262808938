"""Placing boxes and points on a picture in the viewer, as a person does for a segmenter's prompts: the
picture feeding the node is shown, a drag draws a box, a click on it removes it, and each is one undo step."""

import os

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

import nodegraph  # noqa: E402

from conftest import REPO  # noqa: E402

SAMPLE = os.path.join(REPO, "workflows", "assets", "sample.png")  # 384 x 256


def run(qtbot, window):
    with qtbot.waitSignal(window.runner.done, timeout=120_000) as blocker:
        window._start(None)
    return blocker.args[0]


def on_screen(window, x, y) -> QPoint:
    """Where picture pixel (x, y) lies on the viewer's widget."""
    return window.viewer.view.mapFromScene(x, y)


def drag(window, start, end):
    viewport = window.viewer.view.viewport()
    QTest.mousePress(viewport, Qt.LeftButton, Qt.NoModifier, start)
    QTest.mouseMove(viewport, (start + end) / 2)
    QTest.mouseMove(viewport, end)
    QTest.mouseRelease(viewport, Qt.LeftButton, Qt.NoModifier, end)


@pytest.fixture
def boxes_window(window, tmp_path):
    wf = nodegraph.Workflow()
    wf.add_node("image.load", "load", params={"path": SAMPLE}, position=(0, 0))
    wf.add_node("boxes.value", "boxes", position=(300, 0))
    wf.add_node("boxes.to_mask", "mask", position=(600, 0))
    wf.connect("load", "image", "boxes", "image")
    wf.connect("boxes", "boxes", "mask", "boxes")
    wf.add_node("mask.to_image", "picture", position=(900, 0))
    wf.add_node("image.preview", "preview", position=(1200, 0))
    wf.connect("mask", "mask", "picture", "mask")
    wf.connect("picture", "image", "preview", "image")
    path = tmp_path / "boxes.json"
    nodegraph.save(wf, path)
    assert window.open_file(str(path))
    return window


def select(window, node_id):
    window.scene.clearSelection()
    window.scene.nodes[node_id].setSelected(True)


def test_before_a_run_the_viewer_says_to_run_once(boxes_window):
    select(boxes_window, "boxes")
    assert "run once" in boxes_window.viewer.info.text()


def test_a_drag_on_the_picture_draws_a_box_and_undo_takes_it_back(qtbot, boxes_window):
    window = boxes_window
    assert run(qtbot, window).status == "ok"
    select(window, "boxes")
    assert window.viewer.image.shape[-2:] == (256, 384)  # the picture feeding the node, not its own output
    assert window.viewer.view.placer is window.placement and window.viewer.clear_button.isVisible()
    assert "drag: box" in window.viewer.placing_hint.text()

    drag(window, on_screen(window, 40, 30), on_screen(window, 200, 150))
    x0, y0, x1, y1 = (int(v) for v in window.workflow.nodes["boxes"].params["boxes"].split(","))
    assert abs(x0 - 40) <= 2 and abs(y0 - 30) <= 2 and abs(x1 - 200) <= 2 and abs(y1 - 150) <= 2
    assert len(window.viewer.marks) == 1  # drawn over the picture

    drag(window, on_screen(window, 250, 100), on_screen(window, 380, 250))
    assert len(window.workflow.nodes["boxes"].params["boxes"].split()) == 2
    window.undo_stack.undo()
    assert len(window.workflow.nodes["boxes"].params["boxes"].split()) == 1

    result = run(qtbot, window)  # the box becomes the mask downstream
    mask = result.outputs["mask"]["mask"]
    assert mask.shape == (1, 1, 256, 384) and mask[0, 0, 80, 100] == 1 and mask[0, 0, 200, 300] == 0


def test_a_click_inside_a_box_removes_it_and_clear_removes_all(qtbot, boxes_window):
    window = boxes_window
    window.set_param("boxes", "boxes", "10,10,100,100 200,50,300,200")
    run(qtbot, window)
    select(window, "boxes")
    assert len(window.viewer.marks) == 2
    QTest.mouseClick(window.viewer.view.viewport(), Qt.LeftButton, Qt.NoModifier, on_screen(window, 250, 100))
    assert window.workflow.nodes["boxes"].params["boxes"] == "10,10,100,100"
    window.viewer.clear_button.click()
    assert window.workflow.nodes["boxes"].params["boxes"] == "" and window.viewer.marks == []


def test_another_node_gives_the_viewer_back_to_panning(qtbot, boxes_window):
    window = boxes_window
    run(qtbot, window)
    select(window, "boxes")
    select(window, "load")
    assert window.viewer.view.placer is None and not window.viewer.clear_button.isVisible()
    window.scene.clearSelection()
    assert window.viewer.view.placer is None


def open_sam_workflow(window, tmp_path, linked_boxes=False):
    """Load Image -> Segment (a tiny SAM) -> Mask to Image -> Preview, opened in the editor; with
    ``linked_boxes`` a Boxes node feeds the Segment's boxes input."""
    import tiny_models

    folder = tiny_models.sam(tmp_path / "tiny-sam")
    wf = nodegraph.Workflow()
    wf.add_node("image.load", "load", params={"path": SAMPLE}, position=(0, 0))
    wf.add_node("model.segment", "segmenter", params={"model": str(folder)}, position=(0, 250))
    wf.add_node("analyze.segment", "segment", params={"drawn_boxes": "96,64,288,224"}, position=(300, 0))
    wf.add_node("mask.to_image", "picture", position=(600, 0))
    wf.add_node("image.preview", "preview", position=(900, 0))
    wf.connect("load", "image", "segment", "image")
    wf.connect("segmenter", "segment_model", "segment", "segment_model")
    wf.connect("segment", "mask", "picture", "mask")
    wf.connect("picture", "image", "preview", "image")
    if linked_boxes:
        wf.add_node("boxes.value", "typed", params={"boxes": "10,10,50,50"}, position=(150, 150))
        wf.connect("load", "image", "typed", "image")
        wf.connect("typed", "boxes", "segment", "boxes")
    path = tmp_path / "segment.json"
    nodegraph.save(wf, path)
    assert window.open_file(str(path))
    return window


def test_clicks_on_the_picture_become_the_segmenters_points(qtbot, window, tmp_path):
    open_sam_workflow(window, tmp_path)
    assert run(qtbot, window).status == "ok"
    select(window, "segment")
    assert window.viewer.image.shape[-2:] == (256, 384)
    assert not window.viewer.overlay.pixmap().isNull()  # the mask from the last run, tinted over the picture
    assert "click: add a point" in window.viewer.placing_hint.text()
    viewport = window.viewer.view.viewport()
    QTest.mouseClick(viewport, Qt.LeftButton, Qt.NoModifier, on_screen(window, 190, 140))
    QTest.mouseClick(viewport, Qt.RightButton, Qt.NoModifier, on_screen(window, 120, 200))
    points = window.workflow.nodes["segment"].params["points"].split()
    assert len(points) == 2 and points[1].startswith("-")  # the right-click leaves that place out
    x, y = (int(v) for v in points[0].split(","))
    assert abs(x - 190) <= 2 and abs(y - 140) <= 2
    assert len(window.viewer.marks) == 3  # two points and the drawn box

    QTest.mouseClick(viewport, Qt.LeftButton, Qt.NoModifier, on_screen(window, x, y))  # on a point: removes it
    assert window.workflow.nodes["segment"].params["points"].split() == points[1:]
    result = run(qtbot, window)
    assert result.executed == ["segment", "picture", "preview"]  # the loaded model is reused


def test_with_boxes_linked_the_viewer_places_points_only(qtbot, window, tmp_path):
    open_sam_workflow(window, tmp_path, linked_boxes=True)
    run(qtbot, window)
    select(window, "segment")
    assert window.placement.takes_points and not window.placement.takes_boxes
    assert "drag: box" not in window.viewer.placing_hint.text()
