"""ComfyUI subgraphs kept as ours: nested definitions, instances sharing one definition with their own
promoted values, muted instances, and the same pictures as the flattened conversion gave.

tests/comfy_files/ui_subgraph_nested.json is written in the shapes of the ComfyUI frontend's test assets
(browser_tests/assets/subgraphs/: proxy-seed.json for a 0.4 root with link arrays beside definitions with
link objects and ``properties.proxyWidgets``; subgraph-nested-promotion.json for a proxied widget of a
nested instance; subgraph-multi-instance-promoted-text-values.json for instances of one definition with
their own ``widgets_values``) and of ComfyUI's own blueprints (a definition input linked to an inner
widget, listed on the instance with ``widget: {name}``). Instance 11 and 12 of "Touch up" (Scale Image By,
then an instance of "Crop to size") each promote the scale (a widget input, ``["-1", "factor"]``) and the
inner instance's crop width (``["2", "width"]``); widgets_values follow the proxyWidgets order.
"""

import copy
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image

import nodegraph
from nodegraph.document import from_document

FILES = Path(__file__).parent / "comfy_files"
NODEGRAPH = os.path.join(os.path.dirname(sys.executable), "nodegraph")


def raw(name: str = "ui_subgraph_nested") -> dict:
    return json.loads((FILES / f"{name}.json").read_text(encoding="utf-8"))


def node_of(doc: dict, node_id: int) -> dict:
    return next(n for n in doc["nodes"] if n["id"] == node_id)


def in_folder(tmp_path: Path, doc: dict, name: str = "touch.json") -> Path:
    """The document beside the 128x128 picture its Load Image names."""
    rng = np.random.default_rng(7)
    Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(tmp_path / "square.png")
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def flattened(path: Path) -> nodegraph.Workflow:
    """The conversion as it was before subgraphs were kept: every instance as its inner nodes."""
    with mock.patch("nodegraph.comfy.convert.regroup", lambda doc, conv: doc):
        return nodegraph.load(path)


@pytest.fixture(scope="module")
def touch():
    return nodegraph.load(FILES / "ui_subgraph_nested.json")


def test_nested_subgraphs_become_nested_definitions(touch):
    assert sorted(touch.subgraphs) == ["crop_to_size", "touch_up"] and touch.imported.subgraphs == 2
    outer, inner = touch.subgraphs["touch_up"], touch.subgraphs["crop_to_size"]
    assert (outer.title, inner.title) == ("Touch up", "Crop to size")
    assert (outer.description, inner.description) == ("Scales a picture, then crops it to size.", "")
    assert {k: n.type for k, n in outer.body.nodes.items()} == {"1": "image.scale",
                                                               "2": "subgraph:crop_to_size"}
    assert {k: n.type for k, n in inner.body.nodes.items()} == {"1": "image.crop"}
    assert outer.body.nodes["2"].position == (420, 120) and inner.body.nodes["1"].position == (200, 200)
    assert [(s.name, s.to) for s in outer.inputs] == [("image", [("1", "image")])]
    assert [(s.name, s.source) for s in outer.outputs] == [("IMAGE", ("2", "IMAGE"))]
    assert [(s.name, s.source) for s in inner.outputs] == [("IMAGE", ("1", "image"))]
    assert {str(l) for l in outer.body.links} == {"1.image -> 2.image"}
    assert [(g.title, g.nodes) for g in outer.body.groups.values()] == [("Scale", ["1"])]  # the definition's own
    assert [(g.title, g.nodes) for g in touch.groups.values()] == [("Large one", ["11", "13"])]


def test_instances_of_one_definition_share_it_with_their_own_promoted_values(touch):
    assert touch.nodes["11"].type == touch.nodes["12"].type == "subgraph:touch_up"
    assert touch.nodes["11"].params == {"factor": 0.75, "width": 40}
    assert touch.nodes["12"].params == {"factor": 0.5, "width": 32}
    assert touch.nodes["11"].overrides == touch.nodes["12"].overrides == {}
    assert touch.nodes["11"].title == "Large" and touch.nodes["12"].title is None
    assert touch.nodes["11"].position == (400, 0) and touch.nodes["12"].position == (400, 400)


def test_promoted_widgets_become_promoted_parameters(touch):
    outer, inner = touch.subgraphs["touch_up"], touch.subgraphs["crop_to_size"]
    # ["-1", "factor"]: the definition input linked to Scale Image By's scale_by widget, labelled "scale"
    # ["2", "width"]: the nested instance's own promoted width, promoted again
    assert [(p.name, p.to, p.title) for p in outer.params] == [("factor", [("1", "factor")], "scale"),
                                                               ("width", [("2", "width")], "")]
    assert [(p.name, p.to) for p in inner.params] == [("width", [("1", "width")]), ("height", [("1", "height")])]
    assert outer.body.nodes["2"].params == {"width": 40, "height": 48}  # the inner instance's widgets_values
    assert not any(s.name == "factor" for s in outer.inputs)  # a widget on the instance, not a socket


def test_widget_inputs_take_the_instances_values_in_input_order_without_proxy_widgets():
    """Frontends before proxyWidgets (1.24, as in subgraph-three-promoted-widgets.json) write one value
    per widget input; a seed's control_after_generate value may follow it."""
    doc = raw()
    for node_id, values in ((11, [0.6]), (12, [])):
        del node_of(doc, node_id)["properties"]["proxyWidgets"]
        node_of(doc, node_id)["widgets_values"] = values
    wf = from_document(doc)
    assert wf.nodes["11"].params == {"factor": 0.6} and wf.nodes["12"].params == {"factor": 1.0}  # 1: the inner's
    assert [p.name for p in wf.subgraphs["touch_up"].params] == ["factor"]


def test_a_widget_input_fed_by_a_link_is_linked_to_the_promoted_parameter(tmp_path):
    doc = raw()
    doc["nodes"].append({"id": 15, "type": "PrimitiveFloat", "pos": [0, 400], "size": [270, 58], "flags": {},
                         "order": 1, "mode": 0, "inputs": [],
                         "outputs": [{"name": "FLOAT", "type": "FLOAT", "links": [15]}],
                         "properties": {"Node name for S&R": "PrimitiveFloat"}, "widgets_values": [0.625]})
    node_of(doc, 12)["inputs"][1]["link"] = 15
    doc["links"].append([15, 15, 0, 12, 1, "FLOAT"])
    wf = nodegraph.load(in_folder(tmp_path, doc))
    assert wf.nodes["12"].type == "subgraph:touch_up" and "15.value -> 12.factor" in {str(l) for l in wf.links}
    result = nodegraph.Engine(device="cpu").run(wf)
    assert result.outputs["12/1"]["image"].shape == (1, 3, 80, 80)  # 128 * 0.625
    assert result.outputs["14"]["image"].shape == (1, 3, 48, 32)


def test_the_converted_workflow_runs_to_the_values_the_flattened_one_gave(tmp_path):
    path = in_folder(tmp_path, raw())
    ours, flat = nodegraph.load(path), flattened(path)
    assert "11" not in flat.nodes and {"11-1", "11-2-1", "12-2-1"} <= set(flat.nodes)
    mine = nodegraph.Engine(device="cpu").run(ours)
    before = nodegraph.Engine(device="cpu").run(flat)
    assert mine.executed == ["10", "11/1", "11/2/1", "12/1", "12/2/1", "13", "14"]
    assert [e.replace("/", "-") for e in mine.executed] == before.executed
    for node_id in mine.executed:
        for name, value in before.outputs[node_id.replace("/", "-")].items():
            assert torch.equal(mine.outputs[node_id][name], value), (node_id, name)
    assert mine.outputs["13"]["image"].shape == (1, 3, 48, 40)  # 128 * 0.75 = 96, cropped to 40 x 48
    assert mine.outputs["14"]["image"].shape == (1, 3, 48, 32)


def test_a_converted_workflow_saves_and_loads_back_byte_for_byte(tmp_path):
    doc = raw()
    node_of(doc, 12)["mode"] = 2
    wf = nodegraph.load(in_folder(tmp_path, doc))
    nodegraph.save(wf, tmp_path / "ours.json")
    again = nodegraph.load(tmp_path / "ours.json")
    assert again.dumps() == wf.dumps() and (tmp_path / "ours.json").read_text() == wf.dumps()
    assert again.imported is None and again.nodes["12"].mode == "muted"


def test_a_muted_instance_stays_one_muted_instance_that_does_not_run(tmp_path):
    doc = raw()
    node_of(doc, 12)["mode"] = 2
    wf = nodegraph.load(in_folder(tmp_path, doc))
    assert wf.nodes["12"].mode == "muted" and wf.nodes["12"].type == "subgraph:touch_up"
    assert {n.mode for s in wf.subgraphs.values() for n in s.body.nodes.values()} == {"active"}
    result = nodegraph.Engine(device="cpu").run(wf, targets=["13"])
    assert result.executed == ["10", "11/1", "11/2/1", "13"]


def test_an_inner_instance_fed_by_an_unconverted_node_stays_flattened_inside_its_parent():
    doc = raw()
    node_of(doc["definitions"]["subgraphs"][0], 1)["type"] = "ImageScaleByAI"  # a class with no counterpart
    wf = from_document(doc, strict=False)
    # the placeholders hold each instance's scale: no override can say that, so the definitions stay two
    assert sorted(wf.subgraphs) == ["touch_up", "touch_up_2"] and wf.nodes["12"].type == "subgraph:touch_up_2"
    assert {p.node for p in wf.problems} == {"subgraph:touch_up/1", "subgraph:touch_up_2/1"}
    outer = wf.subgraphs["touch_up"]
    assert {k: n.type for k, n in outer.body.nodes.items()} == {"1": "comfyui:ImageScaleByAI", "2-1": "image.crop"}
    assert [(p.name, p.to) for p in outer.params] == [("width", [("2-1", "width")])]
    assert wf.nodes["11"].params == {"width": 40} and wf.nodes["12"].params == {"width": 32}
    assert [u["id"] for u in wf.imported.unmapped] == ["11-1", "12-1"]
    assert any(n.startswith("subgraph instance 11-2 (Crop to size): left as its inner nodes (node 11-1 "
                            "(comfyui:ImageScaleByAI)") for n in wf.imported.notes)


def test_an_instance_whose_edge_crosses_an_unconverted_node_stays_flattened_and_says_why():
    doc = raw()
    node_of(doc["definitions"]["subgraphs"][1], 1)["type"] = "ImageCropAI"  # Crop to size's only node
    doc["nodes"][1]["mode"] = 4
    wf = from_document(doc, strict=False)
    assert "crop_to_size" not in wf.subgraphs and "touch_up" not in wf.subgraphs
    assert wf.nodes["11-2-1"].type == "comfyui:ImageCropAI" and wf.nodes["11-1"].type == "image.scale"
    assert wf.nodes["11-1"].mode == wf.nodes["11-2-1"].mode == "bypassed"  # the instance's mode, as before
    assert wf.nodes["12-1"].mode == "active"
    assert any(n.startswith("subgraph instance 11-2 (Crop to size): left as its inner nodes (node 11-2-1 "
                            "(comfyui:ImageCropAI), which did not convert, links across its edge)")
               for n in wf.imported.notes)


def test_cli_import_says_how_many_subgraphs_it_kept(tmp_path):
    out = tmp_path / "touch.nodegraph.json"
    done = subprocess.run([NODEGRAPH, "import", str(FILES / "ui_subgraph_nested.json"), "-o", str(out), "--json"],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["nodes"], report["mapped"], report["subgraphs"], report["unmapped"]) == (7, 7, 2, [])
    done = subprocess.run([NODEGRAPH, "import", str(FILES / "ui_subgraph_nested.json"), "-o", str(out)],
                          capture_output=True, text=True, timeout=180)
    assert "7 of 7 ComfyUI nodes converted, 2 subgraphs kept" in done.stderr
    assert json.loads(out.read_text())["subgraphs"][1]["id"] == "touch_up"


def test_an_empty_definition_is_left_out_with_a_note():
    doc = raw()
    definition = copy.deepcopy(doc["definitions"]["subgraphs"][1])
    definition.update(id="d9a3e4f6-7b82-4cad-9e2f-3a4b5c6d7e8f", name="Nothing yet", nodes=[], links=[])
    doc["definitions"]["subgraphs"].append(definition)
    doc["nodes"].append({"id": 16, "type": definition["id"], "pos": [0, 800], "size": [140, 46], "flags": {},
                         "order": 5, "mode": 0, "inputs": [], "outputs": [], "properties": {}})
    wf = from_document(doc)
    assert "16" not in wf.nodes and "nothing_yet" not in wf.subgraphs
    assert "subgraph instance 16 (Nothing yet): left as its inner nodes (none of its nodes converted)" in \
        wf.imported.notes


def test_the_docs_subgraph_command_runs_as_written_and_says_what_the_text_says(tmp_path):
    text = (Path(__file__).parent.parent / "docs" / "comfyui.md").read_text(encoding="utf-8")
    commands = [line.strip() for line in text.splitlines() if line.startswith("    nodegraph ")]
    assert commands == ["nodegraph import tests/comfy_files/ui_subgraph_nested.json -o touch.json --json"]
    os.symlink(Path(__file__).parent.parent / "tests", tmp_path / "tests")
    argv = shlex.split(commands[0])
    done = subprocess.run([NODEGRAPH, *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["subgraphs"] == 2
    ours = nodegraph.load(tmp_path / "touch.json", strict=False)
    assert sorted(ours.subgraphs) == ["crop_to_size", "touch_up"]
    assert ours.nodes["11"].params["width"] == 40 and ours.nodes["12"].params["width"] == 32


def test_a_slot_name_that_is_not_a_name_here_is_made_into_one():
    doc = raw("ui_subgraph")
    doc["definitions"]["subgraphs"][0]["inputs"][1]["name"] = "positive prompt"
    node_of(doc, 30)["inputs"][1]["name"] = "positive prompt"
    wf = from_document(doc)
    definition = wf.subgraphs["sample_and_decode"]
    assert [s.name for s in definition.inputs] == ["model", "positive_prompt", "negative", "latent_image", "vae"]
    assert "26.conditioning -> 30.positive_prompt" in {str(l) for l in wf.links}


def test_a_seeds_control_after_generate_value_among_an_instances_widget_values_is_skipped():
    """ComfyUI's blueprints link definition inputs to inner widgets (seed, cfg here); files from some
    frontends keep the seed's control_after_generate value after it in the instance's widgets_values."""
    doc = raw("ui_subgraph")
    definition = doc["definitions"]["subgraphs"][0]
    sampler, instance = node_of(definition, 1), node_of(doc, 30)
    del instance["properties"]["proxyWidgets"]
    for slot, (name, kind) in enumerate((("seed", "INT"), ("cfg", "FLOAT")), start=5):
        definition["inputs"].append({"id": f"0000000{slot}-0000-4000-8000-000000000000", "name": name, "type": kind,
                                     "linkIds": [slot + 3], "pos": [60, 300 + 20 * slot]})
        sampler["inputs"].append({"localized_name": name, "name": name, "type": kind, "widget": {"name": name},
                                  "link": slot + 3})
        definition["links"].append({"id": slot + 3, "origin_id": -10, "origin_slot": slot, "target_id": 1,
                                    "target_slot": len(sampler["inputs"]) - 1, "type": kind})
        instance["inputs"].append({"name": name, "type": kind, "widget": {"name": name}, "link": None})
    instance["widgets_values"] = [42, "randomize", 6.5]
    wf = from_document(doc)
    assert wf.nodes["30"].params == {"seed": 42, "cfg": 6.5}
    assert [(p.name, p.to) for p in wf.subgraphs["sample_and_decode"].params] == [("seed", [("1", "seed")]),
                                                                                 ("cfg", [("1", "cfg")])]
    assert not [n for n in wf.imported.notes if "leads nowhere" in n]
