"""The workflow file: one canonical form, migrations, a schema, and every problem reported at once."""

import glob
import json
import os
from pathlib import Path

import jsonschema
import pytest
import torch

import nodegraph
from nodegraph.schema import workflow_schema_path

from conftest import REPO, TEST_NODES, moved_copy_of

EXAMPLES = sorted(glob.glob(os.path.join(REPO, "workflows", "*.json")))


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_example_files_are_canonical_and_match_the_schema(path, tmp_path):
    text = open(path, encoding="utf-8").read()
    wf = nodegraph.load(path)
    assert wf.dumps() == text  # load -> save is byte-identical
    nodegraph.save(wf, tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text(encoding="utf-8") == text
    jsonschema.validate(json.loads(text), json.loads(workflow_schema_path().read_text()))


def test_an_edited_workflow_saves_canonically_whatever_the_edit_order(tmp_path):
    def build(order):
        wf = nodegraph.Workflow(registry=TEST_NODES)
        for node_id in order:
            wf.add_node("test.const", node_id, params={"value": 1}, position=(10.04, 3))
        wf.add_node("test.add", "a1")
        wf.connect("n2", "value", "a1", "a")
        wf.connect("n10", "value", "a1", "b")
        wf.metadata = {"z": 1, "a": {"y": 2, "b": 3}}
        return wf

    one, two = build(["n2", "n10", "n1"]), build(["n10", "n1", "n2"])
    assert one.dumps() == two.dumps()
    ids = [n["id"] for n in json.loads(one.dumps())["nodes"]]
    assert ids == ["a1", "n1", "n2", "n10"]  # natural order, not n1, n10, n2
    assert '"position": [10, 3]' in one.dumps()
    reloaded = nodegraph.loads(one.dumps(), registry=TEST_NODES)
    assert reloaded.dumps() == one.dumps()


def test_floats_and_missing_params_are_canonicalised_on_load():
    doc = {
        "format": "nodegraph-workflow",
        "version": 1,
        "nodes": [{"id": "s", "type": "image.save", "version": 1, "params": {"quality": 80.0}}],
        "links": [],
    }
    wf = nodegraph.loads(json.dumps(doc), strict=False)
    assert wf.nodes["s"].params == {"filename_prefix": "nodegraph", "format": "png", "quality": 80, "embed_workflow": True}
    assert wf.nodes["s"].mode == "active"


def test_a_version_0_file_is_migrated():
    v0 = {
        "version": 0,
        "nodes": {
            "c": {"type": "test.const", "params": {"value": 3}, "pos": [5, 6]},
            "out": {"type": "test.sink", "muted": True},
        },
        "links": [["c", "value", "out", "x"]],
    }
    wf = nodegraph.loads(json.dumps(v0), registry=TEST_NODES)
    assert wf.nodes["c"].params == {"value": 3}
    assert wf.nodes["c"].position == (5, 6)
    assert wf.nodes["out"].mode == "muted"
    assert [str(l) for l in wf.links] == ["c.value -> out.x"]
    assert json.loads(wf.dumps())["version"] == 1


def test_a_newer_file_is_refused_with_a_clear_message():
    with pytest.raises(nodegraph.WorkflowFileError, match="newer nodegraph.*version 7.*reads up to 2"):
        nodegraph.loads('{"format": "nodegraph-workflow", "version": 7, "nodes": [], "links": []}')


def test_every_problem_is_reported_with_its_node_and_port():
    doc = {
        "format": "nodegraph-workflow",
        "version": 1,
        "nodes": [
            {"id": "c", "type": "test.const", "version": 1, "params": {"value": 3, "colour": 1}},
            {"id": "n", "type": "test.need", "version": 1, "params": {"k": 500}},
            {"id": "ghost", "type": "test.nope", "version": 1},
            {"id": "old", "type": "test.add", "version": 9},
            {"id": "t", "type": "test.tensor", "version": 1},
            {"id": "a", "type": "test.add", "version": 1},
            {"id": "b", "type": "test.add", "version": 1},
            {"id": "s", "type": "test.sink", "version": 1},
        ],
        "links": [
            {"from": "t.value", "to": "s.x"},
            {"from": "missing.value", "to": "a.a"},
            {"from": "a.value", "to": "b.a"},
            {"from": "b.value", "to": "a.b"},
        ],
    }
    with pytest.raises(nodegraph.WorkflowInvalid) as info:
        nodegraph.loads(json.dumps(doc), registry=TEST_NODES)
    found = {str(p) for p in info.value.problems}
    assert found == {
        "node 'c' port 'colour': unknown parameter",
        "node 'n' port 'k': 500 is above the maximum 100",
        "node 'n' port 'x': required INT input is not connected",
        "node 'ghost': unknown node type 'test.nope'",
        "node 'old': 'test.add' version 9 is not supported (this install has version 1)",
        "node 's' port 'x': an IMAGE output cannot feed an INT input (from t.value)",
        "node 'a' port 'a': link from missing node 'missing'",
        "node 'a': cycle: a -> b -> a",
    }


def test_structural_problems_are_all_listed_and_nothing_raises_a_traceback():
    doc = {
        "format": "nodegraph-workflow",
        "version": 1,
        "nodes": [
            {"id": "x y", "type": "test.const", "version": 1},
            {"id": "c", "type": 5, "version": "one", "mode": "sleeping", "position": "here"},
            {"id": "d", "type": "test.const", "version": 1},
            {"id": "d", "type": "test.const", "version": 1},
            "not a node",
        ],
        "links": [{"from": "c", "to": "d.value"}, ["c", "value", "d", "value"]],
        "extra": True,
    }
    with pytest.raises(nodegraph.WorkflowInvalid) as info:
        nodegraph.loads(json.dumps(doc), registry=TEST_NODES)
    text = "\n".join(str(p) for p in info.value.problems)
    for expected in (
        "nodes[0]: id must be",
        "node 'c': 'type' must be a string",
        "node 'c': 'version' must be a positive integer",
        "node 'c': 'mode' must be one of active, muted, bypassed",
        "node 'c': 'position' must be two finite numbers",
        "node 'd': node id is used twice",
        "nodes[4] must be an object",
        "link ends must be written 'node.port'",
        "a link must be",
        "unknown top-level key 'extra'",
    ):
        assert expected in text


def test_set_param_checks_names_types_and_ranges(wf):
    wf.add_node("test.need", "n")
    wf.set_param("n", "k", 7.0)
    assert wf.nodes["n"].params["k"] == 7 and isinstance(wf.nodes["n"].params["k"], int)
    with pytest.raises(nodegraph.ParamError, match="node 'n' parameter 'k': 101 is above the maximum 100"):
        wf.set_param("n", "k", 101)
    with pytest.raises(nodegraph.ParamError, match="no such parameter"):
        wf.set_param("n", "kk", 1)
    with pytest.raises(nodegraph.ParamError, match="expected an integer"):
        wf.set_param("n", "k", "seven")


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path, wf):
    wf.add_node("test.const", "c")
    target = tmp_path / "w.json"
    nodegraph.save(wf, target)
    target.write_text("old")  # an existing file is replaced whole
    nodegraph.save(wf, target)
    assert target.read_text() == wf.dumps()
    assert os.listdir(tmp_path) == ["w.json"]


def test_a_png_written_by_save_image_opens_as_its_workflow(tmp_path):
    wf = nodegraph.load(os.path.join(REPO, "workflows", "load-save.json"))
    result = nodegraph.Engine(device="cpu").run(wf, output_dir=tmp_path)
    [png] = result.files
    reopened = nodegraph.load(png)  # from the output folder: its Load Image path now reaches the picture from there
    assert moved_copy_of(reopened, wf) == ["load.path"]
    again = nodegraph.Engine(device="cpu").run(nodegraph.load(png), output_dir=tmp_path / "again")
    assert torch.equal(again.outputs["load"]["image"], result.outputs["load"]["image"])


def test_a_node_saved_by_an_older_node_type_version_is_upgraded():
    from nodegraph import Output, Param, PortType as T, Registry, node

    reg = Registry(discover=False)

    @node("demo.scale", title="Scale", category="demo", version=2, registry=reg,
          params=[Param("factor", T.FLOAT, 1.0, min=0, max=10)], outputs=[Output("value", T.FLOAT)],
          upgrades={1: lambda p: {"factor": p.pop("percent", 100) / 100}})
    def scale(ctx, factor):
        return {"value": factor}

    doc = {"format": "nodegraph-workflow", "version": 1, "links": [],
           "nodes": [{"id": "s", "type": "demo.scale", "version": 1, "params": {"percent": 250}}]}
    wf = nodegraph.loads(json.dumps(doc), registry=reg)
    assert (wf.nodes["s"].version, wf.nodes["s"].params) == (2, {"factor": 2.5})


def test_a_workflow_saved_into_another_folder_still_finds_its_input_picture(tmp_path):
    """Save As elsewhere: the relative "assets/shapes.png" of the img2img example is rewritten to reach the
    same file from the new folder; the model name and every other parameter stay as they were."""
    wf = nodegraph.load(os.path.join(REPO, "workflows", "img2img.json"))
    before = {n: dict(node.params) for n, node in wf.nodes.items()}
    target = tmp_path / "mine" / "edit.json"
    target.parent.mkdir()
    assert nodegraph.rebase(wf, target.parent) == ["picture.path"]
    nodegraph.save(wf, target)
    again = nodegraph.load(target)
    moved = again.nodes["picture"].params["path"]
    assert not os.path.isabs(moved)
    assert (target.parent / moved).resolve() == Path(REPO, "workflows", "assets", "shapes.png").resolve()
    after = {n: dict(node.params) for n, node in again.nodes.items()}
    after["picture"].pop("path"), before["picture"].pop("path")
    assert after == before and again.nodes["checkpoint"].params["model"] == "demo-sd"
    engine = nodegraph.Engine(device="cpu")
    pictures = [engine.run(w, targets=["picture"], output_dir=tmp_path / "out").outputs["picture"]["image"]
                for w in (nodegraph.load(os.path.join(REPO, "workflows", "img2img.json")), again)]
    assert torch.equal(*pictures)
