"""The editor driven as a person would: palette search, mouse drags between sockets, the inspector, Run."""

import os

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QDoubleSpinBox, QPushButton  # noqa: E402

import nodegraph  # noqa: E402
from gui.window import MainWindow  # noqa: E402

from conftest import REPO, moved_copy_of  # noqa: E402

EXAMPLE = os.path.join(REPO, "workflows", "image-ops.json")
SAMPLE = os.path.join(REPO, "workflows", "assets", "sample.png")


def add_from_palette(qtbot, window, text):
    window.search.clear()
    qtbot.keyClicks(window.search, text)
    before = set(window.workflow.nodes)
    QTest.keyClick(window.search, Qt.Key_Return)
    [added] = set(window.workflow.nodes) - before
    return added


def drag(window, start_socket, end_socket):
    view = window.view
    a = view.mapFromScene(start_socket.scenePos())
    b = view.mapFromScene(end_socket.scenePos())
    QTest.mousePress(view.viewport(), Qt.LeftButton, Qt.NoModifier, a)
    QTest.mouseMove(view.viewport(), (a + b) / 2)
    QTest.mouseMove(view.viewport(), b)
    QTest.mouseRelease(view.viewport(), Qt.LeftButton, Qt.NoModifier, b)


def run(qtbot, window, targets=None):
    with qtbot.waitSignal(window.runner.done, timeout=120_000) as blocker:
        window._start(targets)
    return blocker.args[0]


def test_opening_a_workflow_draws_every_node_and_link(window):
    assert window.open_file(EXAMPLE)
    assert len(window.scene.nodes) == len(window.workflow.nodes) == 19
    assert len(window.scene.links) == len(window.workflow.links)
    assert window.windowTitle() == "image-ops.json — nodegraph"


def test_build_a_graph_with_mouse_and_keyboard_then_run_it(qtbot, window):
    load = add_from_palette(qtbot, window, "load image")
    blur = add_from_palette(qtbot, window, "blur")
    show = add_from_palette(qtbot, window, "preview")
    window.scene.nodes[blur].setPos(300, 0)  # spread them out, as a user would drag them apart
    window.scene.nodes[show].setPos(600, 0)
    window.scene.nodes[load].setPos(0, 0)
    assert window.workflow.nodes[blur].position == (300, 0)
    window.set_param(load, "path", SAMPLE)
    drag(window, window.scene.nodes[load].outputs["image"], window.scene.nodes[blur].inputs["image"])
    drag(window, window.scene.nodes[blur].outputs["image"], window.scene.nodes[show].inputs["image"])
    assert {str(l) for l in window.workflow.links} == {f"{load}.image -> {blur}.image", f"{blur}.image -> {show}.image"}
    assert window.windowTitle().startswith("untitled *")

    window.scene.clearSelection()
    window.scene.nodes[blur].setSelected(True)  # the inspector shows the blur's radius as a spin box
    spin = window.inspector.findChild(QDoubleSpinBox)
    spin.setValue(5.0)
    spin.editingFinished.emit()
    assert window.workflow.nodes[blur].params["radius"] == 5.0

    result = run(qtbot, window)
    assert result.status == "ok" and result.executed == [load, blur, show]
    assert window.scene.nodes[show].state == "clean"
    assert not window.viewer.pixmap().isNull()
    spin.setValue(1.0)
    spin.editingFinished.emit()
    assert window.scene.nodes[blur].state == "dirty" and window.scene.nodes[load].state != "dirty"
    result = run(qtbot, window)
    assert result.executed == [blur, show] and result.reasons[blur] == "parameter 'radius' changed (5.0 -> 1.0)"
    assert window.scene.nodes[load].state == "cached"


def test_an_incompatible_drop_is_refused_and_explained(qtbot, window):
    load = add_from_palette(qtbot, window, "load image")
    grow = add_from_palette(qtbot, window, "grow mask")
    window.scene.nodes[grow].setPos(350, 0)
    window.scene.nodes[load].setPos(0, 0)
    drag(window, window.scene.nodes[load].outputs["image"], window.scene.nodes[grow].inputs["mask"])
    assert window.workflow.links == []
    assert "an IMAGE output cannot feed an MASK input" in window.statusBar().currentMessage()
    drag(window, window.scene.nodes[load].outputs["mask"], window.scene.nodes[grow].inputs["mask"])
    assert [str(l) for l in window.workflow.links] == [f"{load}.mask -> {grow}.mask"]


def test_a_failing_node_turns_red_and_says_why(qtbot, window, tmp_path):
    load = add_from_palette(qtbot, window, "load image")
    show = add_from_palette(qtbot, window, "preview")
    window.scene.nodes[show].setPos(350, 0)
    window.scene.nodes[load].setPos(0, 0)
    window.set_param(load, "path", str(tmp_path / "missing.png"))
    drag(window, window.scene.nodes[load].outputs["image"], window.scene.nodes[show].inputs["image"])
    result = run(qtbot, window)
    assert result.status == "failed" and result.failed_node == load
    assert window.scene.nodes[load].state == "failed"
    assert "no such image file" in window.scene.nodes[load].toolTip()
    assert "no such image file" in window.log.toPlainText()


def test_open_then_save_is_byte_identical(window, tmp_path):
    window.open_file(EXAMPLE)
    window.path = tmp_path / "copy.json"
    assert window.save_file()
    assert (tmp_path / "copy.json").read_bytes() == open(EXAMPLE, "rb").read()
    assert not window.modified()


def test_every_edit_undoes_and_redoes(qtbot, window):
    window.open_file(EXAMPLE)
    original = window.workflow.dumps()
    steps = []

    def edit(do):
        before = window.workflow.dumps()
        do()
        steps.append((before, window.workflow.dumps()))
        assert steps[-1][0] != steps[-1][1]

    edit(lambda: add_from_palette(qtbot, window, "invert"))
    new = [n for n in window.workflow.nodes if n.startswith("invert")][0]
    edit(lambda: drag(window, window.scene.nodes["load"].outputs["image"], window.scene.nodes[new].inputs["image"]))
    edit(lambda: window.set_param("thumb", "width", 64))
    edit(lambda: (window.scene.clearSelection(), window.scene.nodes["gray"].setSelected(True),
                  window.toggle_mode("muted")))
    edit(lambda: (window.scene.clearSelection(), window.scene.nodes["canny"].setSelected(True),
                  window.scene.delete_selected()))
    item = window.scene.nodes["pad"]
    edit(lambda: (item.setPos(item.x() + 100, item.y()), window.scene.edited.emit()))
    for before, after in reversed(steps):
        assert window.workflow.dumps() == after
        window.undo_stack.undo()
        assert window.workflow.dumps() == before
    assert window.workflow.dumps() == original and not window.modified()
    for before, after in steps:
        window.undo_stack.redo()
        assert window.workflow.dumps() == after
    assert len(window.scene.nodes) == len(window.workflow.nodes)


def test_copy_paste_goes_through_the_clipboard_as_workflow_json(qtbot, window):
    from PySide6.QtGui import QGuiApplication

    window.open_file(EXAMPLE)
    window.scene.clearSelection()
    for node_id in ("thumb", "mirror"):
        window.scene.nodes[node_id].setSelected(True)
    window.copy_selection()
    text = QGuiApplication.clipboard().text()
    copied = nodegraph.loads(text, strict=False)  # a workflow document another window or an editor can read
    assert sorted(copied.nodes) == ["mirror", "thumb"] and [str(l) for l in copied.links] == ["thumb.image -> mirror.image"]
    before = set(window.workflow.nodes)
    window.paste()
    added = sorted(set(window.workflow.nodes) - before)
    assert len(added) == 2 and sorted(window.scene.selected_node_ids()) == added
    pasted_links = [l for l in window.workflow.links if l.source in added and l.target in added]
    assert len(pasted_links) == 1 and window.workflow.nodes[pasted_links[0].source].params["width"] == 160
    window.undo_stack.undo()
    assert set(window.workflow.nodes) == before


@pytest.fixture
def save_as_target(tmp_path, monkeypatch):
    """The file the Save dialog answers with: elsewhere/mine.json, a folder away from the examples."""
    from PySide6.QtWidgets import QFileDialog

    target = tmp_path / "elsewhere" / "mine.json"
    target.parent.mkdir()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    return target


def test_save_as_into_another_folder_keeps_the_input_picture(qtbot, window, save_as_target):
    window.open_file(EXAMPLE)  # its Load Image reads "assets/sample.png" beside the example
    assert window.save_file_as() and not window.modified()
    assert "paths made relative to" in window.log.toPlainText()
    window.open_file(save_as_target)
    result = run(qtbot, window)
    assert result.status == "ok", window.log.toPlainText()


def test_undo_after_save_as_elsewhere_keeps_the_input_picture(qtbot, window, save_as_target):
    window.open_file(EXAMPLE)
    window.set_param("contrast", "factor", 1.5)  # an edit made before the workflow moves
    assert window.save_file_as()
    window.undo_stack.undo()
    assert window.workflow.nodes["contrast"].params["factor"] == 1.15
    assert run(qtbot, window).status == "ok", window.log.toPlainText()  # assets/sample.png still found
    window.undo_stack.redo()
    assert window.workflow.nodes["contrast"].params["factor"] == 1.5
    assert run(qtbot, window).status == "ok", window.log.toPlainText()
    window.undo_stack.undo()
    window.set_param("contrast", "factor", 2.0)  # an edit after the undo, undone in turn
    window.undo_stack.undo()
    assert window.workflow.nodes["contrast"].params["factor"] == 1.15
    assert run(qtbot, window).status == "ok", window.log.toPlainText()


def test_file_menu_opens_an_example_as_an_untitled_copy_that_runs(qtbot, window, tmp_path, save_as_target):
    window._fill_examples()
    names = [a.text() for a in window.examples_menu.actions()]
    assert {"txt2img", "image-ops", "sana-dcae"} <= set(names)
    next(a for a in window.examples_menu.actions() if a.text() == "image-ops").trigger()
    assert window.path is None and "load" in window.workflow.nodes
    assert window.windowTitle().startswith("image-ops (example)")
    assert run(qtbot, window).status == "ok", window.log.toPlainText()  # assets/sample.png found beside it
    assert window.save_file() and window.path == save_as_target and window.windowTitle().startswith("mine.json")
    assert open(EXAMPLE, "rb").read() != save_as_target.read_bytes()  # its Load Image path reaches the asset
    assert nodegraph.Engine(device="cpu").run(nodegraph.load(save_as_target), targets=["load"],
                                              output_dir=tmp_path / "out").status == "ok"


def test_without_example_workflows_the_menu_says_where_it_looked(window, tmp_path, monkeypatch):
    import gui.window

    monkeypatch.setattr(gui.window, "EXAMPLES", tmp_path / "workflows")  # a wheel install has none
    window._fill_examples()
    [only] = window.examples_menu.actions()
    assert not only.isEnabled() and str(tmp_path / "workflows") in only.text()


def test_select_all_then_cut_empties_the_graph_and_paste_brings_it_back(qtbot, window):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication

    window.open_file(EXAMPLE)
    nodes, links = set(window.workflow.nodes), len(window.workflow.links)
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key_A, Qt.ControlModifier)
    assert set(window.scene.selected_node_ids()) == nodes
    qtbot.keyClick(window.view, Qt.Key_X, Qt.ControlModifier)
    assert not window.workflow.nodes and not window.scene.nodes
    assert set(nodegraph.loads(QGuiApplication.clipboard().text(), strict=False).nodes) == nodes
    window.paste()
    assert len(window.workflow.nodes) == len(nodes) and len(window.workflow.links) == links
    window.undo_stack.undo()  # the paste
    window.undo_stack.undo()  # the cut
    assert set(window.workflow.nodes) == nodes and len(window.workflow.links) == links


def test_mute_and_bypass_shortcuts_toggle_the_mode(qtbot, window):
    window.open_file(EXAMPLE)
    window.scene.clearSelection()
    window.scene.nodes["gray"].setSelected(True)
    window.view.setFocus()
    QTest.keyClick(window, Qt.Key_M, Qt.ControlModifier)
    assert window.workflow.nodes["gray"].mode == "muted"
    QTest.keyClick(window, Qt.Key_B, Qt.ControlModifier)
    assert window.workflow.nodes["gray"].mode == "bypassed"
    QTest.keyClick(window, Qt.Key_B, Qt.ControlModifier)
    assert window.workflow.nodes["gray"].mode == "active"
    QTest.keyClick(window.view, Qt.Key_M)  # M alone, as in Blender
    assert window.workflow.nodes["gray"].mode == "muted"
    window.search.setFocus()
    QTest.keyClick(window.search, Qt.Key_M)  # typing an m in a text field is just a letter
    assert window.search.text() == "m" and window.workflow.nodes["gray"].mode == "muted"


def test_live_mode_reruns_only_the_dirty_part_after_an_edit(qtbot, window):
    window.open_file(EXAMPLE)
    run(qtbot, window)
    window.set_live(True)
    with qtbot.waitSignal(window.runner.done, timeout=60_000) as blocker:
        window.set_param("thumb", "width", 96)  # no Run pressed: the pause after the edit starts one
    result = blocker.args[0]
    assert result.executed == ["thumb", "mirror", "save_thumb"]
    assert result.reasons["thumb"] == "parameter 'width' changed (160 -> 96)"
    window.set_live(False)


def test_dropping_a_png_this_program_wrote_opens_its_workflow(qtbot, window, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    wf = nodegraph.load(os.path.join(REPO, "workflows", "load-save.json"))
    [png] = nodegraph.Engine(device="cpu").run(wf, output_dir=tmp_path).files
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(png))])
    event = QDropEvent(QPointF(10, 10), Qt.CopyAction, data, Qt.LeftButton, Qt.NoModifier)
    window.dropEvent(event)
    assert sorted(window.workflow.nodes) == ["load", "save"]
    assert moved_copy_of(window.workflow.copy(), wf) == ["load.path"]


def test_tab_and_double_click_open_a_quick_add_search_at_the_cursor(qtbot, window):
    from PySide6.QtWidgets import QApplication

    from gui.palette import QuickAdd

    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key_Tab)
    popup = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QuickAdd) and w.isVisible())
    qtbot.keyClicks(popup.edit, "gaussian blur")
    assert popup.list.item(0).text().startswith("Blur")
    QTest.keyClick(popup.edit, Qt.Key_Return)
    assert [n.type for n in window.workflow.nodes.values()] == ["image.blur"]
    spot = QPoint(60, 60)  # an empty part of the canvas, away from the blur node
    QTest.mouseDClick(window.view.viewport(), Qt.LeftButton, Qt.NoModifier, spot)
    popup = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QuickAdd) and w.isVisible())
    qtbot.keyClicks(popup.edit, "invert")
    QTest.keyClick(popup.edit, Qt.Key_Return)
    node = next(n for n in window.workflow.nodes.values() if n.type == "image.invert")
    where = window.view.mapToScene(spot)
    assert (node.position[0], node.position[1]) == (round(where.x(), 1), round(where.y(), 1))


def test_after_a_crash_the_next_start_offers_the_autosaved_changes(qtbot, tmp_path):
    import shutil

    path = tmp_path / "w.json"
    shutil.copy(EXAMPLE, path)
    first = MainWindow(str(path), engine=nodegraph.Engine(device="cpu"), confirm=lambda *a: True)
    first.set_param("thumb", "width", 77)
    first.autosave()  # what the 30-second timer does
    assert first.recovery_path().is_file()
    crashed_text = first.workflow.dumps()
    first.deleteLater()  # no closeEvent: as if the process had died

    questions = []
    second = MainWindow(str(path), engine=nodegraph.Engine(device="cpu"),
                        confirm=lambda title, text: questions.append(text) or True)
    assert len(questions) == 1 and "w.json" in questions[0]
    assert second.workflow.nodes["thumb"].params["width"] == 77 and second.workflow.dumps() == crashed_text
    assert second.modified() and second.windowTitle().startswith("w.json *")
    assert second.save_file() and not second.recovery_path().exists()
    assert nodegraph.load(path).nodes["thumb"].params["width"] == 77
    second.close()

    declined = MainWindow(str(path), engine=nodegraph.Engine(device="cpu"), confirm=lambda *a: False)
    assert not declined.modified()
    declined.close()


def test_a_value_the_file_has_wrong_is_shown_as_refused_with_the_default_offered(qtbot, window, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"format": "nodegraph-workflow", "version": 1, "links": [], "nodes": ['
                    '{"id": "blur", "type": "image.blur", "version": 1, "params": {"radius": "lots"}}]}')
    assert window.open_file(path)  # opened to be fixed: its problems are in the log
    window.scene.nodes["blur"].setSelected(True)
    texts = [w.text() for w in window.inspector.findChildren(type(window.preview_text))]
    assert "the file's value is refused: expected a number, got 'lots'" in texts
    window.inspector.findChild(QPushButton, "default-radius").click()
    assert window.workflow.nodes["blur"].params["radius"] == 2.0
    qtbot.waitUntil(lambda: window.inspector.findChild(QDoubleSpinBox) is not None)
