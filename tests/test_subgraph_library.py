"""The subgraph library, and subgraphs from the command line and in batch job files, with real image nodes."""

import json
import os

import pytest
from PIL import Image

import nodegraph
from nodegraph import library
from nodegraph.batching import read_jobs
from nodegraph.cli import main
from nodegraph.subgraph_edit import make_subgraph, promote

from conftest import REPO

SAMPLE = os.path.join(REPO, "workflows", "assets", "sample.png")  # 384 x 256


def thumbnail_workflow():
    """load -> [resize -> flip] -> save, the bracketed part made into subgraph "thumbnail" (instance "thumb")."""
    wf = nodegraph.Workflow()
    wf.add_node("image.load", "load", params={"path": SAMPLE})
    wf.add_node("image.resize", "resize", params={"width": 96, "height": 64, "mode": "exact"}, position=(300, 0))
    wf.add_node("image.flip", "flip", position=(600, 0))
    wf.add_node("image.save", "save", params={"filename_prefix": "thumb"}, position=(900, 0))
    wf.connect("load", "image", "resize", "image")
    wf.connect("resize", "image", "flip", "image")
    wf.connect("flip", "image", "save", "image")
    make_subgraph(wf, ["resize", "flip"], title="Thumbnail", sub_id="thumbnail")
    promote(wf.subgraphs["thumbnail"], "resize", "height", "size")
    return wf


@pytest.fixture
def shelf(tmp_path, monkeypatch):
    """A library folder found through $NODEGRAPH_SUBGRAPHS, holding the published thumbnail subgraph."""
    folder = tmp_path / "library"
    monkeypatch.setenv("NODEGRAPH_SUBGRAPHS", str(folder))
    library.publish(thumbnail_workflow(), "thumbnail", folder)
    return folder


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def uses_only_the_library(tmp_path) -> str:
    """A hand-written workflow naming the library subgraph without carrying its definition."""
    path = tmp_path / "uses-library.json"
    path.write_text(json.dumps({
        "format": "nodegraph-workflow", "version": 2,
        "nodes": [{"id": "load", "type": "image.load", "version": 1, "params": {"path": SAMPLE}},
                  {"id": "thumb", "type": "subgraph:thumbnail", "version": 1},
                  {"id": "save", "type": "image.save", "version": 1, "params": {"filename_prefix": "t"}}],
        "links": [{"from": "load.image", "to": "thumb.image"}, {"from": "thumb.image", "to": "save.image"}],
    }))
    return str(path)


def test_published_subgraphs_are_listed_with_their_declaration(shelf):
    found = library.entries()
    assert found["thumbnail"].title == "Thumbnail" and found["thumbnail"].version == 1
    assert found["thumbnail"].path == shelf / "thumbnail.json"
    assert "hires_fix" in found  # the one the node library ships
    doc = json.loads((shelf / "thumbnail.json").read_text())
    assert doc["format"] == "nodegraph-subgraph" and doc["subgraph"] == "thumbnail"


def test_a_workflow_naming_a_library_subgraph_runs_and_then_carries_it(shelf, tmp_path, capsys):
    path = uses_only_the_library(tmp_path)
    code, out, err = cli(capsys, "run", path, "--output-dir", tmp_path / "out", "--set", "thumb.size=40",
                         "--set", "thumb.resize.width=50", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert [e["node"] for e in report["executed"]] == ["load", "thumb/resize", "thumb/flip", "save"]
    assert Image.open(tmp_path / "out" / "t_00001.png").size == (50, 40)
    embedded = json.loads(Image.open(tmp_path / "out" / "t_00001.png").info["workflow"])
    assert [s["id"] for s in embedded["subgraphs"]] == ["thumbnail"]  # the picture reopens without the library
    assert next(n for n in embedded["nodes"] if n["id"] == "thumb")["overrides"] == {"resize": {"width": 50}}


def test_a_workflow_keeps_its_copy_when_the_library_changes(shelf, tmp_path):
    wf = nodegraph.load(uses_only_the_library(tmp_path))
    saved = tmp_path / "saved.json"
    nodegraph.save(wf, saved)
    newer = thumbnail_workflow()
    newer.subgraphs["thumbnail"].body.set_param("resize", "width", 30)
    assert library.publish(newer, "thumbnail", shelf) == shelf / "thumbnail.json"
    assert newer.subgraphs["thumbnail"].version == 2 and newer.nodes["thumbnail"].version == 2
    assert library.entries()["thumbnail"].version == 2
    again = nodegraph.load(saved)
    assert again.subgraphs["thumbnail"].body.nodes["resize"].params["width"] == 96
    assert library.updates(again) == {"thumbnail": (1, 2)}
    picture = nodegraph.Engine(device="cpu").run(again, output_dir=tmp_path / "o").outputs["thumb/flip"]["image"]
    assert tuple(picture.shape[-2:]) == (64, 96)
    library.publish(newer, "thumbnail", shelf)  # the same content again: no new version
    assert library.entries()["thumbnail"].version == 2


def test_a_broken_library_file_is_named_and_the_rest_still_listed(shelf):
    (shelf / "broken.json").write_text('{"format": "nodegraph-subgraph", "version": 2, "subgraph": "x",'
                                       ' "subgraphs": [{"id": "x", "nodes": [{"id": "n", "type": "no.such"}]}]}')
    said = []
    found = library.entries(log=said.append)
    assert "thumbnail" in found and "x" not in found
    assert said and "broken.json" in said[0] and "'version' must be a positive integer" in said[0]


def test_an_unknown_subgraph_is_a_clear_problem(tmp_path, capsys):
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"format": "nodegraph-workflow", "version": 2, "links": [],
                                "nodes": [{"id": "x", "type": "subgraph:nowhere", "version": 1}]}))
    code, _, err = cli(capsys, "validate", path)
    assert code == 1 and "node 'x': unknown node type 'subgraph:nowhere'" in err


@pytest.mark.parametrize("setting, message", [
    ("thumb.nothing.width=3", "no node with id 'nothing' in subgraph 'thumbnail'"),
    ("thumb.resize.colour=3", "node 'thumb/resize' parameter 'colour': no such parameter"),
    ("thumb.resize.width=0", "node 'thumb/resize' parameter 'width': 0 is below the minimum 1"),
    ("load.image.path=x", "node 'load' is not a subgraph, so 'load/image' names nothing"),
])
def test_a_wrong_path_in_set_says_what_is_wrong(shelf, tmp_path, capsys, setting, message):
    code, _, err = cli(capsys, "run", uses_only_the_library(tmp_path), "--set", setting, "--output-dir", tmp_path)
    assert code == 1 and message in err, err


def test_batch_jobs_reach_inner_and_promoted_parameters(shelf, tmp_path):
    wf = nodegraph.load(uses_only_the_library(tmp_path))
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([{"thumb.resize.width": 40, "thumb.size": 30}, {"thumb.size": 20}]))
    parsed, _ = read_jobs(jobs, wf)
    assert [j.overrides for j in parsed] == [{"thumb.resize.width": 40, "thumb.size": 30}, {"thumb.size": 20}]
    rows = nodegraph.batch(wf, jobs, output_dir=tmp_path / "runs", device="cpu")
    sizes = [Image.open(tmp_path / "runs" / r["job"] / "t_00001.png").size for r in rows]
    assert sizes == [(40, 30), (96, 20)]  # the second job's width follows the definition again
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps({"sweep": {"thumb.resize.width": [10, 20]}}))
    assert [j.overrides for j in read_jobs(sweep, wf)[0]] == [{"thumb.resize.width": 10}, {"thumb.resize.width": 20}]


def test_nodegraph_nodes_lists_the_library_subgraphs_with_their_ports(shelf, capsys):
    code, out, _ = cli(capsys, "nodes", "--json")
    listed = {t["id"]: t for t in json.loads(out)}
    assert code == 0
    assert [p["name"] for p in listed["subgraph:thumbnail"]["params"]] == ["size"]
    hires = listed["subgraph:hires_fix"]
    assert [i["name"] for i in hires["inputs"]] == ["latent", "model", "conditioning", "vae"]
    assert [p["name"] for p in hires["params"]] == ["scale", "strength", "steps"]
