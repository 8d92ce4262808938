"""Subgraphs in the editor, driven as a person would: select nodes with the mouse, Ctrl+Alt+G, double-click
to enter, edit inside, Esc to leave, undo every step, unpack; the interface, promotion and the library."""

import os

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QDoubleSpinBox, QLineEdit, QPushButton  # noqa: E402

import nodegraph  # noqa: E402
from nodegraph import library  # noqa: E402

from conftest import REPO  # noqa: E402
from test_editor import drag, run  # noqa: E402

SAMPLE = os.path.join(REPO, "workflows", "assets", "sample.png")


def chain(window):
    """load -> blur -> invert -> preview, laid out left to right."""
    wf = nodegraph.Workflow()
    wf.add_node("image.load", "load", params={"path": SAMPLE}, position=(0, 0))
    wf.add_node("image.blur", "blur", params={"radius": 3.0}, position=(300, 0))
    wf.add_node("image.invert", "invert", position=(600, 0))
    wf.add_node("image.preview", "show", position=(900, 0))
    wf.connect("load", "image", "blur", "image")
    wf.connect("blur", "image", "invert", "image")
    wf.connect("invert", "image", "show", "image")
    window.document.set_workflow(wf, None)
    return wf.dumps()


def rubber_band(window, first, last):
    """Drag a selection rectangle from above-left of ``first`` to below-right of ``last``."""
    view, scene = window.view, window.scene
    a = view.mapFromScene(scene.nodes[first].sceneBoundingRect().topLeft()) - QPoint(12, 12)
    b = view.mapFromScene(scene.nodes[last].sceneBoundingRect().bottomRight()) + QPoint(12, 12)
    QTest.mousePress(view.viewport(), Qt.LeftButton, Qt.NoModifier, a)
    QTest.mouseMove(view.viewport(), (a + b) / 2)
    QTest.mouseMove(view.viewport(), b)
    QTest.mouseRelease(view.viewport(), Qt.LeftButton, Qt.NoModifier, b)


def double_click(window, node_id):
    item = window.scene.nodes[node_id]
    spot = window.view.mapFromScene(item.sceneBoundingRect().center())
    QTest.mouseDClick(window.view.viewport(), Qt.LeftButton, Qt.NoModifier, spot)


def make_block(qtbot, window):
    window.ask_text = lambda title, label, text: "Blur and invert"
    rubber_band(window, "blur", "invert")
    assert sorted(window.scene.selected_node_ids()) == ["blur", "invert"]
    window.view.setFocus()
    QTest.keyClick(window, Qt.Key_G, Qt.ControlModifier | Qt.AltModifier)
    assert sorted(window.workflow.nodes) == ["blur_and_invert", "load", "show"]
    return "blur_and_invert"


def test_make_enter_edit_leave_undo_and_unpack_a_subgraph(qtbot, window):
    original = chain(window)
    block = make_block(qtbot, window)
    assert [str(l) for l in window.workflow.links] == ["load.image -> blur_and_invert.image",
                                                      "blur_and_invert.image -> show.image"]
    made = window.workflow.dumps()

    double_click(window, block)
    assert window.navigator.path == [block]
    assert sorted(window.scene.nodes) == ["@inputs", "@outputs", "blur", "invert"]
    crumbs = [b.text() for b in window.navigator.bar.buttons]
    assert crumbs == ["Workflow", "Blur and invert (blur_and_invert)"] and window.navigator.bar.isVisible()
    window.scene.clearSelection()
    window.scene.nodes["blur"].setSelected(True)
    spin = window.inspector.findChild(QDoubleSpinBox)
    spin.setValue(6.0)
    spin.editingFinished.emit()
    assert window.workflow.subgraphs[block].body.nodes["blur"].params["radius"] == 6.0

    result = run(qtbot, window)
    assert result.status == "ok" and f"{block}/blur" in result.executed
    assert window.scene.nodes["blur"].state == "clean" and window.scene.nodes["invert"].state == "clean"
    window.view.setFocus()
    QTest.keyClick(window, Qt.Key_Escape)
    assert window.navigator.path == [] and not window.navigator.bar.isVisible()
    assert window.scene.nodes[block].state == "clean" and window.scene.selected_node_ids() == [block]

    window.undo_stack.undo()  # the radius
    assert window.workflow.dumps() == made
    window.undo_stack.undo()  # making the subgraph
    assert window.workflow.dumps() == original
    window.undo_stack.redo()
    window.undo_stack.redo()
    assert window.workflow.subgraphs[block].body.nodes["blur"].params["radius"] == 6.0

    window.scene.clearSelection()
    window.scene.nodes[block].setSelected(True)
    QTest.keyClick(window, Qt.Key_G, Qt.ControlModifier | Qt.AltModifier | Qt.ShiftModifier)
    assert sorted(window.workflow.nodes) == ["blur", "invert", "load", "show"] and not window.workflow.subgraphs
    assert window.workflow.nodes["blur"].params["radius"] == 6.0
    window.undo_stack.undo()
    assert sorted(window.workflow.nodes) == ["blur_and_invert", "load", "show"]


def test_tab_enters_the_selected_instance_and_opens_the_search_elsewhere(qtbot, window):
    chain(window)
    block = make_block(qtbot, window)
    window.scene.clearSelection()
    window.scene.nodes[block].setSelected(True)
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key_Tab)
    assert window.navigator.path == [block]
    window.navigator.bar.buttons[0].click()  # the breadcrumb goes back out too
    assert window.navigator.path == []


def test_the_interface_grows_by_dragging_to_its_empty_socket_and_is_edited_in_the_inspector(qtbot, window):
    chain(window)
    block = make_block(qtbot, window)
    window.enter_subgraph(block)
    inputs = window.scene.nodes["@inputs"]
    drag(window, inputs.outputs["+"], window.scene.nodes["blur"].inputs["radius"])
    sub = window.workflow.subgraphs[block]
    assert [(s.name, str(s.type), s.to) for s in sub.inputs][1] == ("radius", "FLOAT", [("blur", "radius")])
    window.scene.clearSelection()
    window.scene.nodes["@inputs"].setSelected(True)
    name = window.inspector.findChild(QLineEdit, "slot-radius")
    name.setText("softness")
    name.editingFinished.emit()
    qtbot.waitUntil(lambda: "softness" in window.scene.nodes["@inputs"].outputs)
    assert [s.name for s in sub.inputs] == ["image", "softness"]
    window.navigator.leave()
    assert "softness" in window.scene.nodes[block].inputs  # the instance grew the socket
    window.enter_subgraph(block)
    window.scene.clearSelection()
    window.scene.nodes["@inputs"].setSelected(True)
    window.inspector.findChild(QPushButton, "slot-softness-up").click()
    qtbot.waitUntil(lambda: [s.name for s in sub.inputs] == ["softness", "image"])
    window.scene.clearSelection()
    window.scene.nodes["@inputs"].setSelected(True)
    window.inspector.findChild(QPushButton, "slot-softness-remove").click()
    assert [s.name for s in sub.inputs] == ["image"]
    qtbot.waitUntil(lambda: "softness" not in window.scene.nodes["@inputs"].outputs)  # redrawn once the form is done


def test_promoting_a_parameter_shows_it_on_every_instance(qtbot, window):
    chain(window)
    block = make_block(qtbot, window)
    window.enter_subgraph(block)
    window.scene.clearSelection()
    window.scene.nodes["blur"].setSelected(True)
    label = next(w for w in window.inspector.findChildren(type(window.preview_text)) if w.text() == "radius")
    [promote] = label.actions()
    promote.trigger()
    assert [p.name for p in window.workflow.subgraphs[block].params] == ["radius"]
    window.navigator.leave()
    assert window.workflow.nodes[block].params["radius"] == 3.0
    window.set_param(block, "radius", 1.5)  # this instance's value, in its inspector
    result = run(qtbot, window)
    assert result.reasons[f"{block}/blur"] in ("not cached before", "parameter 'radius' changed (3.0 -> 1.5)")
    assert window.last_result.outputs[f"{block}/blur"]["image"] is not None


def test_a_failure_inside_shows_on_the_instance_with_the_inner_path(qtbot, window, tmp_path):
    chain(window)
    window.ask_text = lambda title, label, text: "Source"
    rubber_band(window, "load", "blur")
    QTest.keyClick(window, Qt.Key_G, Qt.ControlModifier | Qt.AltModifier)
    assert window.enter_subgraph("source")
    window.set_param("load", "path", str(tmp_path / "missing.png"))  # inside: the definition's value
    window.navigator.leave()
    result = run(qtbot, window)
    assert result.status == "failed" and result.failed_node == "source/load"
    item = window.scene.nodes["source"]
    assert item.state == "failed" and item.message.startswith("source/load: ") and "missing.png" in item.message
    window.enter_subgraph("source")
    assert window.scene.nodes["load"].state == "failed"  # and inside, on the node itself
    window.set_param("load", "path", SAMPLE)
    window.navigator.leave()
    assert run(qtbot, window).status == "ok" and window.scene.nodes["source"].state == "clean"


def test_published_subgraphs_appear_in_search_and_come_with_their_definition(qtbot, window, tmp_path,
                                                                         monkeypatch):
    from PySide6.QtWidgets import QApplication

    from gui.palette import QuickAdd

    monkeypatch.setenv("NODEGRAPH_SUBGRAPHS", str(tmp_path / "library"))
    chain(window)
    block = make_block(qtbot, window)
    window.scene.clearSelection()
    window.scene.nodes[block].setSelected(True)
    path = window.publish_subgraph(str(tmp_path / "library"))
    assert path == tmp_path / "library" / f"{block}.json"
    assert library.entries()[block].title == "Blur and invert"

    window.document.set_workflow(nodegraph.Workflow(), None)  # a new, empty workflow
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key_Tab)
    popup = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QuickAdd) and w.isVisible())
    qtbot.keyClicks(popup.edit, "blur and invert")
    assert popup.list.item(0).text().startswith("Blur and invert")
    QTest.keyClick(popup.edit, Qt.Key_Return)
    assert [n.type for n in window.workflow.nodes.values()] == [f"subgraph:{block}"]
    assert block in window.workflow.subgraphs  # embedded: the file opens without the library
    palette = [window.tree.topLevelItem(i).text(0) for i in range(window.tree.topLevelItemCount())]
    assert "subgraphs" in palette or "library/subgraphs" in palette


def test_a_copied_instance_pastes_into_another_workflow_with_its_definition(qtbot, window):
    chain(window)
    block = make_block(qtbot, window)
    window.workflow.set_param(f"{block}/blur", "radius", 8.0)  # this instance's own value travels with it
    window.scene.clearSelection()
    window.scene.nodes[block].setSelected(True)
    text = window.selection_text()
    window.document.set_workflow(nodegraph.Workflow(), None)
    window.paste(text)
    [pasted] = window.workflow.nodes.values()
    assert pasted.type == f"subgraph:{block}" and pasted.overrides == {"blur": {"radius": 8.0}}
    assert block in window.workflow.subgraphs
    assert [str(p) for p in nodegraph.validate(window.workflow)] == [  # only its input is missing
        f"node '{pasted.id}' port 'image': required IMAGE input is not connected"]


def test_an_instances_own_inner_value_shows_inside_and_can_be_given_back(qtbot, window):
    chain(window)
    block = make_block(qtbot, window)
    window.set_param(f"{block}/blur", "radius", 8.0)  # as `--set blur_and_invert.blur.radius=8` does
    window.scene.clearSelection()
    window.scene.nodes[block].setSelected(True)
    assert window.inspector.findChild(QPushButton, "clear-blur.radius").text() == "8.0: use the definition's"
    window.enter_subgraph(block)
    window.scene.clearSelection()
    window.scene.nodes["blur"].setSelected(True)
    labels = [w.text() for w in window.inspector.findChildren(type(window.preview_text))]
    assert "8.0 on instance 'blur_and_invert' (the definition: 3.0)" in labels
    window.inspector.findChild(QPushButton, "clear-radius").click()
    assert window.workflow.nodes[block].overrides == {}
    qtbot.waitUntil(lambda: window.inspector.findChild(QDoubleSpinBox) is not None)  # the radius is editable again
    window.undo_stack.undo()
    assert window.workflow.nodes[block].overrides == {"blur": {"radius": 8.0}}


def test_opening_a_workflow_whose_library_subgraph_has_a_newer_version_says_so(qtbot, window, tmp_path, monkeypatch):
    monkeypatch.setenv("NODEGRAPH_SUBGRAPHS", str(tmp_path / "library"))
    chain(window)
    block = make_block(qtbot, window)
    window.scene.clearSelection()
    window.scene.nodes[block].setSelected(True)
    window.publish_subgraph(str(tmp_path / "library"))
    nodegraph.save(window.workflow, tmp_path / "uses-v1.json")
    window.workflow.subgraphs[block].body.set_param("blur", "radius", 9.0)
    window.publish_subgraph(str(tmp_path / "library"))  # a changed definition: version 2
    window.saved_text = window.workflow.dumps()
    assert window.open_file(tmp_path / "uses-v1.json")
    assert (f"subgraph '{block}' is version 1 here; the library has version 2 (this workflow keeps its own copy)"
            in window.log.toPlainText())
    assert window.workflow.subgraphs[block].body.nodes["blur"].params["radius"] == 3.0
