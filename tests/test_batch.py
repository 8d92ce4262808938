"""Batch runs on the local engine: job files, sweeps and image folders; a manifest that resumes; shared work once."""

import collections
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import tiny_models
from conftest import REPO
from PIL import Image

import nodegraph
from nodegraph.batching import BatchCancelled, read_jobs
from nodegraph.cli import main

EXAMPLE = os.path.join(REPO, "workflows", "image-ops.json")
TXT2IMG = os.path.join(REPO, "workflows", "txt2img.json")
SAMPLE = os.path.join(REPO, "workflows", "assets", "sample.png")


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def manifest_rows(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def executions(rows):
    return collections.Counter(node for row in rows for node in row["executed"])


def write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(str(c) for c in row) for row in rows]) + "\n")
    return path


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """These models are tiny: a second intra-op thread only adds waiting (4x slower on 2 busy cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sd_model(tmp_path_factory):
    return tiny_models.sd_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


def small_txt2img(model):
    """txt2img.json as a sweep base: the tiny model, 32x32, two steps, one picture per job."""
    return {"checkpoint.model": str(model), "sampler.steps": 2, "size.width": 32, "size.height": 32,
            "size.batch_size": 1}


def test_a_seed_sweep_loads_the_model_and_encodes_the_prompt_once(sd_model, tmp_path):
    spec = tmp_path / "seeds.json"
    spec.write_text(json.dumps({"sweep": {"sampler.seed": {"range": [0, 100]}}, "set": small_txt2img(sd_model)}))
    rows = nodegraph.batch(TXT2IMG, spec, output_dir=tmp_path / "out", device="cpu")
    assert len(rows) == 100 and {r["status"] for r in rows} == {"done"}
    assert [r["overrides"]["sampler.seed"] for r in rows] == list(range(100))
    runs = executions(rows)
    assert runs["checkpoint"] == 1 and runs["prompt"] == 1 and runs["size"] == 1
    assert runs["sampler"] == runs["decode"] == runs["save"] == 100
    pictures = set()
    for row in rows:
        assert row["outputs"] == [f"{row['job']}/txt2img_00001.png"]
        pictures.add((tmp_path / "out" / row["outputs"][0]).read_bytes())
    assert len(pictures) == 100  # every seed drew its own picture


def test_jobs_are_ordered_so_each_model_loads_once(sd_model, tmp_path):
    other = tmp_path / "tiny-sd-copy"
    shutil.copytree(sd_model, other)
    weights = sum(f.stat().st_size for f in sd_model.rglob("*.safetensors"))
    jobs = [{**small_txt2img(model), "sampler.seed": seed}
            for seed in range(4) for model in (sd_model, other)]  # seed-major: the models alternate
    base = nodegraph.load(TXT2IMG)

    # Run one after another in the given order, with a cache that holds one model: every job loads one.
    plain = nodegraph.Engine(device="cpu", cache_bytes=int(weights * 1.5))
    loads = 0
    for job in jobs:
        for key, value in job.items():
            base.set_param(*key.split("."), value)
        loads += plain.run(base, output_dir=tmp_path / "plain").executed.count("checkpoint")
    assert loads == 8

    engine = nodegraph.Engine(device="cpu", cache_bytes=int(weights * 1.5))
    rows = nodegraph.batch(TXT2IMG, jobs, engine=engine, output_dir=tmp_path / "out")
    assert executions(rows)["checkpoint"] == 2 and executions(rows)["sampler"] == 8
    ran = [row["overrides"]["checkpoint.model"] for row in manifest_rows(tmp_path / "out")]
    assert ran == [str(sd_model)] * 4 + [str(other)] * 4
    assert [row["overrides"]["sampler.seed"] for row in rows] == [0, 0, 1, 1, 2, 2, 3, 3]  # rows in job order


def thumb_jobs(tmp_path, widths):
    return write_csv(tmp_path / "jobs.csv", ["thumb.width"], [[w] for w in widths])


def test_an_interrupted_batch_resumes_and_runs_no_job_twice(tmp_path):
    jobs, out = thumb_jobs(tmp_path, range(40, 52)), tmp_path / "out"
    engine = nodegraph.Engine(device="cpu")

    class Stop(Exception):
        pass

    def stop_after_five(row):
        if len(manifest_rows(out)) == 5:
            raise Stop

    with pytest.raises(Stop):
        nodegraph.batch(EXAMPLE, jobs, engine=engine, output_dir=out, on_row=stop_after_five)
    first = manifest_rows(out)
    assert len(first) == 5 and not (out / ".partial").exists()
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(r["job"] for r in first)

    again = []
    rows = nodegraph.batch(EXAMPLE, jobs, engine=engine, output_dir=out, on_row=again.append)
    assert len(again) == 7 and not {r["job"] for r in again} & {r["job"] for r in first}
    lines = manifest_rows(out)
    assert len(lines) == 12 and len({r["job"] for r in lines}) == 12
    assert [r["job"] for r in rows] == [j.id for j in read_jobs(jobs, nodegraph.load(EXAMPLE))[0]]
    runs = executions(lines)
    assert runs["thumb"] == 12 and runs["save_thumb"] == 12 and runs["load"] == 1  # the engine stayed warm
    for row in rows:
        thumb = out / row["job"] / "thumb_00001.jpeg"
        assert Image.open(thumb).size == (row["overrides"]["thumb.width"], 160)
        assert sorted(row["outputs"]) == sorted(f"{row['job']}/{p.name}" for p in (out / row["job"]).iterdir())

    rows = nodegraph.batch(EXAMPLE, jobs, engine=engine, output_dir=out, on_row=again.append)
    assert len(again) == 7 and len(manifest_rows(out)) == 12 and len(rows) == 12  # all done: nothing runs


def test_a_job_cancelled_halfway_leaves_no_folder_and_runs_again_whole(tmp_path):
    jobs, out = thumb_jobs(tmp_path, [60, 61, 62, 63]), tmp_path / "out"
    state = {"rows": 0, "checks": 0}

    def count(row):
        state["rows"] += 1

    def cancel():  # asked before each job and before every node: say yes a few nodes into the third job
        if state["rows"] == 2:
            state["checks"] += 1
        return state["checks"] > 5

    with pytest.raises(BatchCancelled, match="cancelled after 2 of 4 jobs"):
        nodegraph.batch(EXAMPLE, jobs, output_dir=out, cancel=cancel, on_row=count, device="cpu")
    done = manifest_rows(out)
    assert len(done) == 2
    assert sorted(p.name for p in out.iterdir()) == sorted([".lock", "manifest.jsonl"] + [r["job"] for r in done])
    rows = nodegraph.batch(EXAMPLE, jobs, output_dir=out, device="cpu")
    assert [r["status"] for r in rows] == ["done"] * 4 and len(manifest_rows(out)) == 4
    assert {Image.open(out / r["job"] / "thumb_00001.jpeg").size[0] for r in rows} == {60, 61, 62, 63}


def test_csv_jsonl_json_and_sweep_name_the_same_jobs_the_same_way(tmp_path):
    wf = nodegraph.load(EXAMPLE)
    csv_file = write_csv(tmp_path / "a.csv", ["thumb.width", "save_thumb.filename_prefix"],
                         [[64, "small"], [96, "1984"], [64, "small"]])
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"thumb.width": 64, "save_thumb.filename_prefix": "small"}\n\n'
                     '{"thumb.width": "96", "save_thumb.filename_prefix": "1984"}\n')
    listed = tmp_path / "a.json"
    listed.write_text(json.dumps([{"thumb.width": 64, "save_thumb.filename_prefix": "small"},
                                  {"thumb.width": 96.0, "save_thumb.filename_prefix": "1984"}]))
    from_csv, dropped = read_jobs(csv_file, wf)
    assert dropped == 1 and [j.overrides for j in from_csv] == [
        {"thumb.width": 64, "save_thumb.filename_prefix": "small"},
        {"thumb.width": 96, "save_thumb.filename_prefix": "1984"},  # a prompt-like text stays text
    ]
    for other in (jsonl, listed):
        assert [j.id for j in read_jobs(other, wf)[0]] == [j.id for j in from_csv]
    assert [j.id for j in read_jobs([j.overrides for j in from_csv], wf)[0]] == [j.id for j in from_csv]

    sweep = tmp_path / "grid.json"
    sweep.write_text(json.dumps({"sweep": {"contrast.factor": {"range": [0.5, 1.0, 0.25]}, "thumb.width": [64, 96]},
                                 "set": {"canny.low_threshold": 50}}))
    grid, _ = read_jobs(sweep, wf)
    assert [(j.overrides["contrast.factor"], j.overrides["thumb.width"]) for j in grid] == [
        (0.5, 64), (0.5, 96), (0.75, 64), (0.75, 96)]
    assert all(j.overrides["canny.low_threshold"] == 50 for j in grid)
    assert grid[0].id.startswith("factor0.5_width64-")


def test_a_yaml_sweep_reads_like_json(tmp_path):
    pytest.importorskip("yaml")
    wf = nodegraph.load(EXAMPLE)
    (tmp_path / "s.yaml").write_text("sweep:\n  thumb.width: {range: [10, 40, 10]}\n")
    (tmp_path / "s.json").write_text('{"sweep": {"thumb.width": [10, 20, 30]}}')
    assert [j.id for j in read_jobs(tmp_path / "s.yaml", wf)[0]] == [j.id for j in read_jobs(tmp_path / "s.json", wf)[0]]


def test_a_folder_of_images_feeds_the_load_image_node(tmp_path, capsys):
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for n, size in enumerate([(100, 50), (60, 80), (90, 90)]):
        Image.open(SAMPLE).convert("RGB").resize(size).save(pictures / f"p{n}.png")
    (pictures / "notes.txt").write_text("not a picture")
    out = tmp_path / "out"
    code, _, err = cli(capsys, "batch", EXAMPLE, "--jobs", pictures, "--output-dir", out, "--device", "cpu")
    assert code == 0 and "3 of 3 jobs done, 0 failed" in err
    rows = manifest_rows(out)
    assert [os.path.basename(r["overrides"]["load.path"]) for r in rows] == ["p0.png", "p1.png", "p2.png"]
    for row, size in zip(rows, [(100, 50), (60, 80), (90, 90)]):
        assert row["job"].startswith(f"p{rows.index(row)}.png-")
        padded = Image.open(out / row["job"] / "outpaint-canvas_00001.png")
        assert padded.size == (size[0] + 128, size[1] + 64)  # the pad node saw this job's picture

    two = json.loads(Path(EXAMPLE).read_text())
    two["nodes"].append({"id": "load2", "type": "image.load", "version": 1, "params": {"path": "assets/sample.png"}})
    (tmp_path / "assets").mkdir()
    shutil.copy(SAMPLE, tmp_path / "assets" / "sample.png")
    (tmp_path / "two.json").write_text(json.dumps(two))
    code, _, err = cli(capsys, "batch", tmp_path / "two.json", "--jobs", pictures, "--output-dir", tmp_path / "o2")
    assert code == 1 and "2 Load Image nodes (load, load2): choose one with --input NODE" in err
    code, _, err = cli(capsys, "batch", tmp_path / "two.json", "--jobs", pictures, "--input", "load2",
                       "--output-dir", tmp_path / "o2")
    assert code == 0 and all(list(r["overrides"]) == ["load2.path"] for r in manifest_rows(tmp_path / "o2"))


def test_a_failing_job_is_recorded_and_the_batch_goes_on(tmp_path, capsys):
    jobs = write_csv(tmp_path / "jobs.csv", ["load.path", "thumb.width"],
                     [[SAMPLE, 50], [tmp_path / "missing.png", 51], [SAMPLE, 52]])
    out = tmp_path / "out"
    code, _, err = cli(capsys, "batch", EXAMPLE, "--jobs", jobs, "--output-dir", out)
    assert code == 1 and "2 of 3 jobs done, 1 failed" in err
    assert "missing.png" in err and "failed: node 'load' failed: no such image file" in err
    rows = sorted(manifest_rows(out), key=lambda r: r["overrides"]["thumb.width"])
    assert [r["status"] for r in rows] == ["done", "failed", "done"]
    assert rows[1]["outputs"] == [] and not (out / rows[1]["job"]).exists()

    code, _, err = cli(capsys, "batch", EXAMPLE, "--jobs", jobs, "--output-dir", out)  # failed jobs stay failed
    assert code == 1 and len(manifest_rows(out)) == 3
    Image.open(SAMPLE).save(tmp_path / "missing.png")
    code, _, err = cli(capsys, "batch", EXAMPLE, "--jobs", jobs, "--output-dir", out, "--retry-failed")
    assert code == 0 and "3 of 3 jobs done" in err
    assert [r["status"] for r in manifest_rows(out)][3:] == ["done"] and len(manifest_rows(out)) == 4


def test_outputs_stay_inside_each_jobs_folder(tmp_path):
    out = tmp_path / "out"
    jobs = [{"save_thumb.filename_prefix": "../../escape"}, {"save_thumb.filename_prefix": "a/b/c"}]
    rows = nodegraph.batch(EXAMPLE, jobs, output_dir=out, device="cpu")
    assert rows[0]["status"] == "failed" and "outside the output folder" in rows[0]["error"]
    assert rows[1]["status"] == "done" and f"{rows[1]['job']}/a/b/c_00001.jpeg" in rows[1]["outputs"]
    assert rows[1]["job"].startswith("a_b_c-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert not list(tmp_path.glob("*.jpeg")) and not list(out.glob("*.jpeg"))


def test_a_changed_workflow_does_not_mix_with_an_old_batch(tmp_path, capsys):
    jobs, out = thumb_jobs(tmp_path, [30, 31]), tmp_path / "out"
    assert cli(capsys, "batch", EXAMPLE, "--jobs", jobs, "--output-dir", out)[0] == 0
    changed = json.loads(Path(EXAMPLE).read_text())
    changed["nodes"][0]["params"]["low_threshold"] = 10
    (tmp_path / "assets").mkdir()
    shutil.copy(SAMPLE, tmp_path / "assets" / "sample.png")
    (tmp_path / "changed.json").write_text(json.dumps(changed))
    code, _, err = cli(capsys, "batch", tmp_path / "changed.json", "--jobs", jobs, "--output-dir", out)
    assert code == 1 and "run with another version of this workflow" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("j.csv", "thumb.width\n64\n0\n", ("j.csv row 3, column 'thumb.width': node 'thumb' parameter 'width': "
                                         "0 is below the minimum 1")),
        ("j.csv", "thumb.width,nope.x\n64,1\n", "j.csv row 1, column 'nope.x': no node with id 'nope'"),
        ("j.csv", "thumb.colour\n1\n", "j.csv row 1, column 'thumb.colour': node 'thumb' parameter 'colour': no such"),
        ("j.csv", "thumbwidth\n1\n", "j.csv row 1, column 'thumbwidth': name it NODE.PARAM"),
        ("j.csv", "thumb.width\n64,65\n", "j.csv row 2: 2 cells, but the header names 1 columns"),
        ("j.csv", "thumb.mode\nstretch\n", ("j.csv row 2, column 'thumb.mode': node 'thumb' parameter 'mode': "
                                          "'stretch' is not one of exact, fit, fill")),
        ("j.csv", "", "j.csv: empty"),
        ("j.csv", "id,thumb.width\n../up,3\n", "j.csv row 2, column 'id': '../up' is not a usable job id"),
        ("j.csv", "id,thumb.width\na,3\na,4\n", "j.csv row 3: job id 'a' is also used by"),
        ("j.jsonl", '{"thumb.width": 64}\n{"thumb.width": 64\n', "j.jsonl line 2: not valid JSON"),
        ("j.jsonl", '[1]\n', "j.jsonl line 1: each line is a JSON object"),
        ("j.jsonl", '{"thumb.width": true}\n', ("j.jsonl line 1, key 'thumb.width': node 'thumb' parameter 'width': "
                                               "expected an integer, got True")),
        ("s.json", '{"sweep": {"thumb.width": {"range": [1, 10, 0]}}}', "sweep 'thumb.width': a range step of 0"),
        ("s.json", '{"sweep": {"thumb.width": []}}', "s.json: sweep 'thumb.width': an empty list of values"),
        ("s.json", '{"sweep": {"thumb.width": [64, -1]}}', "s.json: sweep 'thumb.width' value -1: node 'thumb'"),
        ("s.json", '{"sweep": {"thumb.width": {"range": [1, 1002]}, "thumb.height": {"range": [1, 1002]}}}',
         "s.json: the sweep makes 1,002,001 jobs, over the 1,000,000 job limit"),
        ("s.json", '{"sweep": {"nope.x": [1]}}', "s.json: sweep 'nope.x': no node with id 'nope'"),
        ("s.json", '{"sweeps": {}}', "a sweep spec is an object with 'sweep'"),
        ("s.json", '{"sweep": {"thumb.width": [1]}, "zip": true}', "unknown key 'zip'"),
        ("s.txt", "x", "give a .csv, .jsonl, .json or .yaml file, or a folder of images"),
        ("missing.csv", None, "missing.csv: no such file or folder"),
        ("folder", "", "folder: no images in it"),
    ],
)
def test_bad_job_files_give_one_line_naming_file_row_and_column(tmp_path, capsys, name, text, message):
    path = tmp_path / name
    if name == "folder":
        path.mkdir()
    elif text is not None:
        path.write_text(text)
    out = tmp_path / "out"
    code, _, err = cli(capsys, "batch", EXAMPLE, "--jobs", path, "--output-dir", out)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_options_that_need_ray_and_a_missing_ray_are_explained(tmp_path, capsys, monkeypatch):
    jobs = thumb_jobs(tmp_path, [5])
    code, _, err = cli(capsys, "batch", EXAMPLE, "--jobs", jobs, "--workers", "2")
    assert code == 1 and err.strip() == "error: --workers is for --engine ray"
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    code, _, err = cli(capsys, "batch", EXAMPLE, "--jobs", jobs, "--engine", "ray", "--output-dir", tmp_path / "o")
    assert code == 1 and err.strip() == "error: --engine ray needs Ray: pip install 'nodegraph[ray]'"
    assert not (tmp_path / "o").exists()


def test_a_second_batch_into_the_same_folder_at_once_is_refused(tmp_path):
    jobs, out = thumb_jobs(tmp_path, [7, 8]), tmp_path / "out"
    seen = []

    def start_another(row):
        with pytest.raises(nodegraph.NodegraphError, match="another batch is writing into"):
            nodegraph.batch(EXAMPLE, jobs, output_dir=out, device="cpu")
        seen.append(row)

    nodegraph.batch(EXAMPLE, jobs, output_dir=out, device="cpu", on_row=start_another)
    assert len(seen) == 2 and len(manifest_rows(out)) == 2


def test_a_warm_engine_writes_a_jobs_files_again_when_its_folder_is_gone(tmp_path):
    jobs, out = thumb_jobs(tmp_path, [20, 21]), tmp_path / "out"
    engine = nodegraph.Engine(device="cpu")
    first = nodegraph.batch(EXAMPLE, jobs, engine=engine, output_dir=out)
    shutil.rmtree(out)
    again = nodegraph.batch(EXAMPLE, jobs, engine=engine, output_dir=out)
    assert [r["job"] for r in again] == [r["job"] for r in first]
    for row in again:
        assert "load" not in row["executed"] and "save_thumb" in row["executed"]  # warm, but the files are new
        assert len(row["outputs"]) == 6 and all((out / name).is_file() for name in row["outputs"])


def test_a_job_id_reused_for_other_values_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    jobs = write_csv(tmp_path / "jobs.csv", ["id", "thumb.width"], [["small", 32]])
    assert cli(capsys, "batch", EXAMPLE, "--jobs", jobs, "--output-dir", out)[0] == 0
    assert (out / "small" / "thumb_00001.jpeg").is_file()
    write_csv(jobs, ["id", "thumb.width"], [["small", 33]])
    code, _, err = cli(capsys, "batch", EXAMPLE, "--jobs", jobs, "--output-dir", out)
    assert code == 1 and "job 'small' there was run with other values" in err and len(err.splitlines()) == 1


def test_an_output_folder_that_is_a_file_is_reported(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    code, _, err = cli(capsys, "batch", EXAMPLE, "--jobs", thumb_jobs(tmp_path, [5]), "--output-dir", tmp_path / "taken")
    assert code == 1 and "cannot create the output folder" in err
