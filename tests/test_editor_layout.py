"""Editor, part two: frames, reroute points, cutting links, palette drag and drop, recent files, settings,
the shortcuts list, the image viewer and the pictures drawn on nodes."""

import os

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

import nodegraph  # noqa: E402
from conftest import moved_copy_of  # noqa: E402
from test_editor import EXAMPLE, run  # noqa: E402


def select(window, *ids):
    window.scene.clearSelection()
    for node_id in ids:
        window.scene.nodes[node_id].setSelected(True)


def view_point(window, scene_point: QPointF) -> QPoint:
    return window.view.mapFromScene(scene_point)


def test_a_frame_goes_around_the_selected_nodes_and_drags_them_along(qtbot, window):
    window.open_file(EXAMPLE)
    window.view.resetTransform()
    window.view.centerOn(window.scene.nodes["saturate"])
    select(window, "saturate", "contrast")
    before = {n: window.workflow.nodes[n].position for n in ("saturate", "contrast", "load")}
    existing = set(window.workflow.groups)
    QTest.keyClick(window, Qt.Key_G, Qt.ControlModifier)
    [group] = [g for g in window.workflow.groups.values() if g.id not in existing]
    assert sorted(group.nodes) == ["contrast", "saturate"] and '"groups"' in window.workflow.dumps()
    frame = window.scene.groups[group.id]
    for node_id in ("saturate", "contrast"):
        assert frame.sceneBoundingRect().contains(window.scene.nodes[node_id].sceneBoundingRect())

    title = frame.title_rect().center()
    a = view_point(window, title)
    b = a + QPoint(80, 50)
    QTest.mousePress(window.view.viewport(), Qt.LeftButton, Qt.NoModifier, a)
    QTest.mouseMove(window.view.viewport(), a + QPoint(40, 25))
    QTest.mouseMove(window.view.viewport(), b)
    QTest.mouseRelease(window.view.viewport(), Qt.LeftButton, Qt.NoModifier, b)
    shift = (80 / window.view.transform().m11(), 50 / window.view.transform().m22())
    for node_id in ("saturate", "contrast"):
        x, y = window.workflow.nodes[node_id].position
        assert (x - before[node_id][0], y - before[node_id][1]) == pytest.approx(shift, abs=1.5)
    assert window.workflow.nodes["load"].position == before["load"]  # not in the frame: stays put

    window.ask_text = lambda title, label, text: "Colour work"
    QTest.mouseDClick(window.view.viewport(), Qt.LeftButton, Qt.NoModifier, view_point(window, frame.title_rect().center()))
    assert window.workflow.groups[group.id].title == "Colour work"
    window.undo_stack.undo()  # the rename
    window.undo_stack.undo()  # the drag
    assert {n: window.workflow.nodes[n].position for n in ("saturate", "contrast")} == {
        n: before[n] for n in ("saturate", "contrast")}
    select(window, "saturate")
    QTest.keyClick(window, Qt.Key_G, Qt.ControlModifier | Qt.ShiftModifier)
    assert set(window.workflow.groups) == existing and set(window.workflow.nodes) >= {"saturate", "contrast"}


def test_double_click_on_a_link_adds_a_reroute_point_that_routes_it_and_is_saved(qtbot, window, tmp_path):
    window.open_file(EXAMPLE)
    window.view.resetTransform()
    link = next(l for l in window.scene.links if l.target.node.node_id == "gray")
    spot = link.path().pointAtPercent(0.5)
    window.view.centerOn(spot)
    QTest.mouseDClick(window.view.viewport(), Qt.LeftButton, Qt.NoModifier, view_point(window, spot))
    [route] = [l for l in window.workflow.links if l.via]
    assert (route.target, route.input) == ("gray", "image") and len(route.via) == 1
    assert route.via[0] == pytest.approx((spot.x(), spot.y()), abs=2)

    from gui.layout_items import RerouteItem

    [point] = [i for i in window.scene.items() if isinstance(i, RerouteItem)]
    a = view_point(window, point.scenePos())
    b = a + QPoint(0, 120)
    QTest.mousePress(window.view.viewport(), Qt.LeftButton, Qt.NoModifier, a)
    QTest.mouseMove(window.view.viewport(), a + QPoint(0, 60))
    QTest.mouseMove(window.view.viewport(), b)
    QTest.mouseRelease(window.view.viewport(), Qt.LeftButton, Qt.NoModifier, b)
    [route] = [l for l in window.workflow.links if l.via]
    assert route.via[0][1] == pytest.approx(spot.y() + 120, abs=2)
    moved = window.scene.links[[l.target.node.node_id for l in window.scene.links].index("gray")]
    assert moved.path().boundingRect().bottom() >= spot.y() + 115  # the curve now bends through the point

    window.path = tmp_path / "routed.json"
    window.save_file()
    again = nodegraph.load(tmp_path / "routed.json")
    assert [l.via for l in again.links if l.via] == [route.via]
    assert again.dumps() == window.workflow.dumps()
    assert window.runner.engine.dirty(window.workflow, output_dir=window.output_dir) == \
        window.runner.engine.dirty(again, output_dir=window.output_dir)  # layout only: routes change no fingerprint
    window.undo_stack.undo()
    window.undo_stack.undo()
    assert not any(l.via for l in window.workflow.links)


def test_ctrl_right_drag_cuts_the_links_it_crosses(qtbot, window):
    window.open_file(EXAMPLE)
    window.view.resetTransform()
    link = next(l for l in window.scene.links if l.target.node.node_id == "gray")
    middle = link.path().pointAtPercent(0.5)
    window.view.centerOn(middle)
    links_before = len(window.workflow.links)
    a = view_point(window, middle + QPointF(0, -15))
    b = view_point(window, middle + QPointF(0, 15))
    QTest.mousePress(window.view.viewport(), Qt.RightButton, Qt.ControlModifier, a)
    QTest.mouseMove(window.view.viewport(), b)
    QTest.mouseRelease(window.view.viewport(), Qt.RightButton, Qt.ControlModifier, b)
    assert not any(l.target == "gray" and l.input == "image" for l in window.workflow.links)
    assert len(window.workflow.links) == links_before - 1
    window.undo_stack.undo()
    assert len(window.workflow.links) == links_before


def test_a_node_dragged_from_the_palette_lands_where_it_is_dropped(qtbot, window):
    from PySide6.QtGui import QDropEvent

    window.search.setText("gaussian blur")
    item = window.tree.topLevelItem(0).child(0)
    data = window.tree.mimeData([item])  # what the palette hands to a drag
    assert bytes(data.data("application/x-nodegraph-node-type")).decode() == "image.blur"
    spot = QPoint(200, 150)
    event = QDropEvent(QPointF(spot), Qt.CopyAction, data, Qt.LeftButton, Qt.NoModifier)
    window.view.dropEvent(event)
    [node] = window.workflow.nodes.values()
    where = window.view.mapToScene(spot)
    assert node.type == "image.blur" and node.position == (round(where.x(), 1), round(where.y(), 1))
    files = QMimeData()
    files.setUrls([])
    window.view.dropEvent(QDropEvent(QPointF(spot), Qt.CopyAction, files, Qt.LeftButton, Qt.NoModifier))
    assert len(window.workflow.nodes) == 1  # a drop without a node type adds nothing


def test_recent_files_remember_what_was_opened_newest_first(qtbot, window, tmp_path):
    import shutil

    other = tmp_path / "other.json"
    shutil.copy(os.path.join(os.path.dirname(EXAMPLE), "load-save.json"), other)
    window.open_file(EXAMPLE)
    window.open_file(other)
    window.open_file(EXAMPLE)
    assert window.prefs.recent_files()[:2] == [os.path.realpath(EXAMPLE), str(other.resolve())]
    window._fill_recent()
    texts = [a.text() for a in window.recent_menu.actions()]
    assert texts[:2] == [os.path.realpath(EXAMPLE), str(other.resolve())] and "Clear list" in texts
    window.recent_menu.actions()[1].trigger()
    assert window.path == other and sorted(window.workflow.nodes) == ["load", "save"]


def test_settings_dialog_stores_choices_and_rebuilds_the_engine(qtbot, window, tmp_path):
    from gui.preferences import SettingsDialog
    from nodegraph import models

    folder = tmp_path / "models"
    (folder / "my-model").mkdir(parents=True)
    (folder / "my-model" / "model_index.json").write_text("{}")
    old_engine = window.runner.engine
    dialog = SettingsDialog(window.prefs, window)
    dialog.add_folder(str(folder))
    dialog.device.setCurrentText("cpu")
    dialog.cache.setValue(2.0)
    dialog.live.setChecked(True)
    dialog.output.setText(str(tmp_path / "renders"))
    window.apply_settings(dialog)
    try:
        assert window.prefs.device() == "cpu" and window.prefs.cache_gib() == 2.0 and window.live
        assert window.output_dir == str(tmp_path / "renders")
        assert window.runner.engine is not old_engine and window.runner.engine.cache.budget == 2 * 1024**3
        assert "my-model" in models.available()  # the engine (and `nodegraph run`) now search the folder
        window.set_live(False)
    finally:
        window.prefs.set_model_folders([])


def test_the_help_menu_lists_the_shortcuts(qtbot, window):
    from gui.shortcuts import ShortcutsDialog

    dialog = ShortcutsDialog(window)
    rows = {dialog.table.item(i, 0).text(): dialog.table.item(i, 1).text() for i in range(dialog.table.rowCount())}
    assert rows["Edit → Mute / unmute"] == "Ctrl+M · M" and rows["Edit → Frame selected nodes"] == "Ctrl+G"
    assert rows["Run → Run"] == "Ctrl+Return" and "Ctrl + right-drag" in rows["Cut links"]
    assert rows["Edit → Redo"] == "Ctrl+Shift+Z · Ctrl+Y" and rows["File → Quit"] == "Ctrl+Q"
    assert rows["Edit → Cut"] == "Ctrl+X" and rows["Edit → Select all"] == "Ctrl+A"


def test_outputs_show_their_picture_on_the_node_and_the_viewer_zooms_and_saves(qtbot, window, tmp_path):
    window.open_file(EXAMPLE)
    window.workflow.base_dir = os.path.dirname(EXAMPLE)
    run(qtbot, window)
    saver = window.scene.nodes["save_thumb"]
    assert saver.thumbnail is not None and saver.height > saver.base_height
    assert window.scene.nodes["gray"].thumbnail is None  # not an output node
    select(window, "save_thumb")
    image = window.last_result.outputs["save_thumb"]["image"]
    assert (window.viewer.pixmap().width(), window.viewer.pixmap().height()) == (image.shape[-1], image.shape[-2])
    window.viewer.view.actual_size()
    assert window.viewer.view.zoom() == 1.0
    window.viewer.view.fit()
    path = window.viewer.save(tmp_path / "picked")
    assert path.name == "picked.png"
    reopened = nodegraph.load(path)  # the PNG carries the workflow, its Load Image reaching the picture from here
    assert moved_copy_of(reopened, window.workflow) == ["load.path"]
    from PIL import Image

    assert Image.open(path).size == (image.shape[-1], image.shape[-2])


def test_a_bounded_parameter_gets_a_slider_and_a_drag_is_one_edit(qtbot, window):
    from PySide6.QtWidgets import QDoubleSpinBox, QSlider

    window.open_file(EXAMPLE)
    select(window, "contrast")
    slider = window.inspector.findChild(QSlider)
    spin = window.inspector.findChild(QDoubleSpinBox)
    steps_before = window.undo_stack.count()
    slider.setSliderDown(True)  # a drag: the spin box follows, the workflow waits for the release
    for pos in (100, 200, 300):
        slider.setValue(pos)
    assert window.workflow.nodes["contrast"].params["factor"] == 1.15
    slider.setSliderDown(False)
    assert window.workflow.nodes["contrast"].params["factor"] == pytest.approx(spin.value())
    assert spin.value() != 1.15 and window.undo_stack.count() == steps_before + 1


def test_deleting_framed_and_rerouted_nodes_leaves_no_empty_frame_or_stray_route(qtbot, window):
    window.open_file(EXAMPLE)
    link = next(l for l in window.scene.links if l.target.node.node_id == "gray")
    window.scene.add_reroute(link, link.path().pointAtPercent(0.5))
    from gui.layout_items import RerouteItem

    [point] = [i for i in window.scene.items() if isinstance(i, RerouteItem)]
    frame_nodes = list(window.workflow.groups["group1"].nodes)
    select(window, *frame_nodes)
    point.setSelected(True)  # a reroute on a link into a node being deleted goes with it
    window.scene.delete_selected()
    assert "group1" not in window.workflow.groups and '"groups"' not in window.workflow.dumps()
    assert not any(l.via for l in window.workflow.links)
    window.undo_stack.undo()
    assert window.workflow.groups["group1"].nodes == frame_nodes


def test_a_start_without_a_file_opens_the_demo_and_runs_it(qtbot, window, monkeypatch, tmp_path):
    monkeypatch.delenv("NODEGRAPH_MODEL_PATHS", raising=False)  # the bundled demo model, not a test model
    monkeypatch.setenv("NODEGRAPH_SETTINGS", str(tmp_path / "settings.json"))
    with qtbot.waitSignal(window.runner.done, timeout=120_000) as blocker:
        assert window.open_demo()
    result = blocker.args[0]
    assert result.status == "ok" and result.files == []  # a Preview: nothing written
    assert "preview" in result.executed and window.scene.nodes["preview"].thumbnail is not None
    grid = result.outputs["preview"]["image"]
    assert tuple(grid.shape[-2:]) == (134, 134) and not window.viewer.pixmap().isNull()
    assert [g.title for g in window.workflow.groups.values()][0].startswith("Demo")
