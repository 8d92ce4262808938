"""The editor opens ComfyUI files as untitled copies, says what the import did, and draws placeholders."""

import json
import os

from conftest import REPO

COMFY_EXAMPLE = os.path.join(REPO, "workflows", "comfyui", "txt2img.json")
EVERY_CLASS = os.path.join(REPO, "tests", "comfy_files", "api_every_class.json")
SUBGRAPH = os.path.join(REPO, "tests", "comfy_files", "ui_subgraph.json")


def test_a_comfyui_file_opens_as_an_untitled_copy_that_runs(qtbot, window, tmp_path):
    assert window.open_file(COMFY_EXAMPLE)
    assert window.windowTitle().startswith("txt2img (from ComfyUI)")
    assert window.path is None  # Save asks where to keep ours: ComfyUI's file is never overwritten
    assert "9 of 9 nodes converted" in window.statusBar().currentMessage()
    assert set(window.scene.nodes) == set(window.workflow.nodes)
    assert window.scene.nodes["14"].node_type.id == "doc.note"
    with qtbot.waitSignal(window.runner.done, timeout=120_000) as done:
        window.run_all()
    assert done.args[0].status == "ok", window.log.toPlainText()
    assert len(list((tmp_path / "out").glob("comfyui-txt2img_*.png"))) == 1


def test_unconverted_nodes_are_drawn_with_their_links_and_listed_in_the_log(window):
    assert window.open_file(EVERY_CLASS)
    log = window.log.toPlainText()
    assert "not converted: node 150 (LoadAudio): no counterpart here yet" in log
    assert "kept as placeholders" in window.statusBar().currentMessage()
    loader, saver = window.scene.nodes["150"], window.scene.nodes["151"]
    assert loader.node_type.title == "ComfyUI: LoadAudio" and loader.state == "failed"
    assert "not converted from ComfyUI" in loader.toolTip()
    assert set(saver.inputs) == {"audio"} and set(loader.outputs) == {"output_0"}
    drawn = {(l.source.node.node_id, l.target.node.node_id) for l in window.scene.links}
    assert ("150", "151") in drawn and ("121", "152") in drawn
    loader.setSelected(True)
    shown = [window.form.itemAt(i).widget().text() for i in range(window.form.count())
             if hasattr(window.form.itemAt(i).widget(), "text")]
    assert any("narration.wav" in text for text in shown)  # the values it kept
    assert json.loads(json.dumps(window.workflow.nodes["150"].params))["why"] == "no counterpart here yet"


def test_a_comfyui_file_with_subgraphs_opens_with_its_instances_and_runs(qtbot, window, tmp_path):
    assert window.open_file(SUBGRAPH)
    assert "7 of 7 nodes converted" in window.statusBar().currentMessage()
    assert set(window.scene.nodes) == set(window.workflow.nodes) == {"24", "25", "26", "27", "29", "30"}
    instance = window.scene.nodes["30"]
    assert instance.node_type.id == "subgraph:sample_and_decode" and instance.node_type.title == "Sample and decode"
    assert {"model", "positive", "negative", "latent_image", "vae"} <= set(instance.inputs)
    assert set(instance.outputs) == {"IMAGE"}
    drawn = {(l.source.node.node_id, l.target.node.node_id) for l in window.scene.links}
    assert {("24", "30"), ("30", "29")} <= drawn
    with qtbot.waitSignal(window.runner.done, timeout=120_000) as done:
        window.run_all()
    assert done.args[0].status == "ok", window.log.toPlainText()
    assert len(list((tmp_path / "out").glob("subgraph_*.png"))) == 1
