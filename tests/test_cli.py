"""The command line as a user meets it: bad input gives one clear line and an exit code, never a traceback."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from nodegraph.cli import main

from conftest import REPO

EXAMPLE = os.path.join(REPO, "workflows", "image-ops.json")


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_run_writes_the_pictures_and_reports_them(tmp_path, capsys):
    code, out, err = cli(capsys, "run", EXAMPLE, "--output-dir", tmp_path / "out", "--json", "--device", "cpu")
    assert code == 0
    report = json.loads(out)
    assert report["status"] == "ok" and report["cached"] == []
    names = sorted(os.path.basename(f) for f in report["files"])
    assert names == ["color-pop_00001.png", "edges_00001.png", "graded_00001.png", "outpaint-canvas_00001.png",
                     "outpaint-mask_00001.png", "thumb_00001.jpeg"]
    assert Image.open(tmp_path / "out" / "outpaint-canvas_00001.png").size == (384 + 128, 256 + 64)
    assert Image.open(tmp_path / "out" / "thumb_00001.jpeg").size == (160, 160)
    edges = np.asarray(Image.open(tmp_path / "out" / "edges_00001.png").convert("L"))
    white = float((edges > 128).mean())
    assert 0.005 < white < 0.2  # thin lines on black
    by_node = {e["node"]: e["reason"] for e in report["executed"]}
    assert by_node["load"] == "not cached before" and len(by_node) == 19


def test_run_twice_numbers_files_instead_of_overwriting(tmp_path, capsys):
    for _ in range(2):
        assert cli(capsys, "run", EXAMPLE, "--target", "save_edges", "--output-dir", tmp_path)[0] == 0
    assert sorted(os.listdir(tmp_path)) == ["edges_00001.png", "edges_00002.png"]


def test_set_overrides_a_parameter(tmp_path, capsys):
    code, out, _ = cli(capsys, "run", EXAMPLE, "--target", "save_thumb", "--set", "thumb.width=64",
                       "--set", "save_thumb.filename_prefix=small/t", "--output-dir", tmp_path, "--json")
    assert code == 0
    assert Image.open(tmp_path / "small" / "t_00001.jpeg").size == (64, 160)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "thumb.width=0"], "node 'thumb' parameter 'width': 0 is below the minimum 1"),
        (["--set", "nope.width=3"], "no node with id 'nope'"),
        (["--set", "thumbwidth"], "write NODE.PARAM=VALUE"),
        (["--set", "thumb.colour=3"], "node 'thumb' parameter 'colour': no such parameter"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--target", "ghost"], "no node with id 'ghost'"),
    ],
)
def test_bad_arguments_give_one_line(tmp_path, capsys, args, message):
    code, _, err = cli(capsys, "run", EXAMPLE, "--output-dir", tmp_path, *args)
    assert code == 1
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("prefix", ["../escape", "../../etc/x", "/tmp/abs", "a/../../up", "~/home"])
def test_save_never_writes_outside_the_output_folder(tmp_path, capsys, prefix):
    out = tmp_path / "out"
    code, _, err = cli(capsys, "run", EXAMPLE, "--target", "save_edges", "--set",
                       f"save_edges.filename_prefix={prefix}", "--output-dir", out)
    assert code == 1 and "node 'save_edges' failed" in err and "outside the output folder" in err
    assert [p.name for p in tmp_path.iterdir()] in ([], ["out"])
    assert not out.exists() or list(out.rglob("*.png")) == []


def test_a_symlink_out_of_the_output_folder_is_refused(tmp_path, capsys):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir(), elsewhere.mkdir()
    (out / "link").symlink_to(elsewhere)
    code, _, err = cli(capsys, "run", EXAMPLE, "--target", "save_edges", "--set",
                       "save_edges.filename_prefix=link/x", "--output-dir", out)
    assert code == 1 and "outside the output folder" in err
    assert list(elsewhere.iterdir()) == []


def _fuzz_files(tmp_path):
    good = open(EXAMPLE, encoding="utf-8").read()
    doc = json.loads(good)
    cases = {
        "truncated": good[: len(good) // 2],
        "empty": "",
        "not-json": "nodes: [load, save]",
        "list-at-top": "[1, 2, 3]",
        "wrong-types": json.dumps({**doc, "nodes": "load"}),
        "wrong-version-type": json.dumps({**doc, "version": "1"}),
        "nan": good.replace('"factor": 1.5', '"factor": NaN'),
        "huge-float": good.replace('"factor": 1.5', '"factor": 1e400'),
        "huge-int": good.replace('"pixels": 4', '"pixels": 1' + "0" * 5000),
        "deep-nesting": '{"format": "nodegraph-workflow", "version": 1, "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "bad-link": good.replace('"to": "save_edges.image"', '"to": "save_edges.imag"'),
    }
    paths = {}
    for name, text in cases.items():
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(text, encoding="utf-8")
    paths["binary"] = tmp_path / "binary.json"
    paths["binary"].write_bytes(bytes(range(256)) * 10)
    paths["folder"] = tmp_path / "afolder"
    paths["folder"].mkdir()
    paths["missing"] = tmp_path / "missing.json"
    return paths


@pytest.mark.parametrize("command", ["run", "validate"])
def test_fuzzed_workflow_files_give_a_clear_error(tmp_path, capsys, command):
    expected = {
        "truncated": "not valid JSON",
        "empty": "not valid JSON",
        "not-json": "not valid JSON",
        "list-at-top": "top level must be a JSON object",
        "wrong-types": "'nodes' must be a list",
        "wrong-version-type": "'version' must be an integer",
        "nan": "NaN is not allowed",
        "huge-float": "node 'saturate' port 'factor': expected a finite number",
        "huge-int": "not valid JSON",
        "deep-nesting": "nested too deeply",
        "bad-link": "node 'save_edges' port 'imag': 'image.save' has no input or parameter 'imag'",
        "binary": "not UTF-8",
        "folder": "not a file",
        "missing": "no such file",
    }
    out_dir = tmp_path / "out"
    for name, path in _fuzz_files(tmp_path).items():
        args = [command, path] + (["--output-dir", out_dir] if command == "run" else [])
        code, _, err = cli(capsys, *args)
        assert code == 1, name
        assert expected[name] in err, (name, err)
    assert not out_dir.exists()


def test_a_hundred_thousand_nodes_are_all_checked_and_the_list_is_capped(tmp_path, capsys):
    nodes = [{"id": f"g{i}", "type": "image.grayscale", "version": 1} for i in range(100_000)]
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"format": "nodegraph-workflow", "version": 1, "nodes": nodes, "links": []}))
    code, _, err = cli(capsys, "validate", path)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 51
    assert lines[0].endswith("node 'g0' port 'image': required IMAGE input is not connected")
    assert lines[-1].endswith("... and 99950 more problems")


def test_decompression_bombs_are_refused_before_decoding(tmp_path, capsys):
    for name, size in (("over-our-limit", (9000, 9000)), ("over-pillow-limit", (20000, 20000))):
        Image.new("1", size).save(tmp_path / f"{name}.png")
        code, _, err = cli(capsys, "run", EXAMPLE, "--target", "save_edges", "--set",
                           f"load.path={tmp_path / name}.png", "--output-dir", tmp_path / "out")
        assert code == 1 and "node 'load' failed" in err and ("pixel limit" in err or "too large" in err), err


def test_a_broken_image_file_names_the_node_and_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    code, _, err = cli(capsys, "run", EXAMPLE, "--set", f"load.path={bad}", "--output-dir", tmp_path / "o")
    assert code == 1 and err.startswith("error: node 'load' failed: ") and str(bad) in err


def test_validate_lists_every_problem(tmp_path, capsys):
    doc = json.loads(open(EXAMPLE).read())
    assert doc["nodes"][0]["id"] == "canny" and doc["links"][0]["to"] == "canny.image"
    doc["nodes"][0]["params"]["factor"] = 99
    doc["links"] = doc["links"][1:]
    path = tmp_path / "w.json"
    path.write_text(json.dumps(doc))
    code, out, err = cli(capsys, "validate", path, "--json")
    assert code == 1
    assert json.loads(out)["problems"] == [
        {"node": "canny", "port": "factor", "message": "unknown parameter"},
        {"node": "canny", "port": "image", "message": "required IMAGE input is not connected"},
    ]
    assert cli(capsys, "validate", EXAMPLE)[0] == 0


def test_nodes_lists_every_type_as_table_and_json(capsys):
    code, out, _ = cli(capsys, "nodes")
    assert code == 0 and "image.load" in out and "mask.grow" in out
    code, out, _ = cli(capsys, "nodes", "--json")
    types = {t["id"]: t for t in json.loads(out)}
    assert types["image.resize"]["params"][2]["choices"] == ["exact", "fit", "fill"]
    assert not any(t.startswith("test.") for t in types)


def test_the_library_has_a_hundred_node_types_each_described_for_the_palette(capsys):
    types = json.loads(cli(capsys, "nodes", "--json")[1])
    assert len(types) >= 100
    undescribed = [t["id"] for t in types if len(t["description"]) < 20 or not t["category"]]
    assert undescribed == []
    families = {"analyze.segment", "analyze.detect", "analyze.clipseg", "analyze.florence", "analyze.depth",
                "image.upscale_model", "cond.set_area", "cond.timestep_range", "model.pag",
                "model.differential_diffusion", "cond.reference_latent", "subgraph:text_to_masks"}
    assert families <= {t["id"] for t in types}


def test_the_installed_console_script_runs(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "nodegraph")
    done = subprocess.run([exe, "run", EXAMPLE, "--target", "save_graded", "--output-dir", tmp_path],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "graded_00001.png")
    assert "1 node" not in done.stderr and "ran" in done.stderr
