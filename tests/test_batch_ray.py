"""Batch runs on a local Ray cluster: warm actors, a worker killed mid-batch, failed jobs recorded."""

import collections
import json
import os

import numpy as np
import pytest
from conftest import REPO
from PIL import Image

import nodegraph
from nodegraph.cli import main

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]'")

EXAMPLE = os.path.join(REPO, "workflows", "image-ops.json")
SAMPLE = os.path.join(REPO, "workflows", "assets", "sample.png")


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def manifest_rows(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def two_pictures(tmp_path):
    """Two input pictures of different sizes, so each job's outputs show which one it read."""
    paths = []
    for name, size in (("wide.png", (120, 60)), ("tall.png", (60, 120))):
        Image.open(SAMPLE).convert("RGB").resize(size).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    return paths


def grid(tmp_path, pictures):
    """50 jobs: 2 pictures x 25 thumbnail widths."""
    spec = tmp_path / "grid.json"
    spec.write_text(json.dumps({"sweep": {"load.path": pictures, "thumb.width": {"range": [40, 65]}}}))
    return spec


def check_outputs(out, row):
    picture = Image.open(row["overrides"]["load.path"])
    assert Image.open(out / row["job"] / "thumb_00001.jpeg").size == (row["overrides"]["thumb.width"], 160)
    canvas = Image.open(out / row["job"] / "outpaint-canvas_00001.png")
    assert canvas.size == (picture.width + 128, picture.height + 64)
    assert sorted(row["outputs"]) == sorted(f"{row['job']}/{p.name}" for p in (out / row["job"]).iterdir())
    assert len(row["outputs"]) == 6


def test_fifty_jobs_on_two_warm_workers_match_the_local_engine(tmp_path):
    pictures = two_pictures(tmp_path)
    out = tmp_path / "out"
    rows = nodegraph.batch(EXAMPLE, grid(tmp_path, pictures), engine="ray", workers=2, output_dir=out)
    assert len(rows) == 50 and {r["status"] for r in rows} == {"done"}
    lines = manifest_rows(out)
    assert len(lines) == 50 and len({r["job"] for r in lines}) == 50
    for row in rows:
        check_outputs(out, row)

    by_worker = collections.defaultdict(list)
    for row in lines:
        by_worker[row["worker"]].append(row)
    assert len(by_worker) == 2  # two actors, each with its own engine
    for worker_rows in by_worker.values():  # each actor read each picture at most once: its cache kept it
        runs = collections.Counter(n for r in worker_rows for n in r["executed"])
        assert runs["load"] == len({r["overrides"]["load.path"] for r in worker_rows})
        assert runs["thumb"] == len(worker_rows)
    # similar jobs go to the same actor: each started on a run of one picture's jobs, so one of them saw only one
    assert min(len({r["overrides"]["load.path"] for r in w}) for w in by_worker.values()) == 1

    local = nodegraph.batch(EXAMPLE, [rows[0]["overrides"]], output_dir=tmp_path / "local", device="cpu")
    assert local[0]["job"] == rows[0]["job"]
    for name in rows[0]["outputs"]:
        a = np.asarray(Image.open(out / name))
        b = np.asarray(Image.open(tmp_path / "local" / name))
        assert a.shape == b.shape and np.array_equal(a, b)


@pytest.mark.parametrize("restart", [True, False], ids=["ray-restarts-it", "killed-for-good"])
def test_a_worker_killed_mid_batch_loses_no_job_and_runs_none_twice(tmp_path, restart):
    pictures = two_pictures(tmp_path)
    out = tmp_path / "out"
    killed = []

    def kill_a_worker(row):
        if len(manifest_rows(out)) == 10:
            name = min(n for n in ray.util.list_named_actors() if n.startswith("nodegraph-batch-"))
            ray.kill(ray.get_actor(name), no_restart=not restart)
            killed.append(name)

    rows = nodegraph.batch(EXAMPLE, grid(tmp_path, pictures), engine="ray", workers=2, retries=2, output_dir=out,
                           on_row=kill_a_worker)
    assert len(killed) == 1
    lines = manifest_rows(out)
    assert len(lines) == 50 and collections.Counter(r["job"] for r in lines).most_common(1)[0][1] == 1
    assert {r["status"] for r in lines} == {"done"}
    # the two first workers, and the restarted or replacing one when jobs were still queued for it (the other
    # worker may have taken them all first: how many worker names appear depends on timing)
    assert len({r["worker"] for r in lines}) >= 2
    for row in rows:
        check_outputs(out, row)
    assert not (out / ".partial").exists()


def test_failed_jobs_are_recorded_with_their_error_and_the_batch_goes_on(tmp_path, capsys):
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(f"load.path,thumb.width\n{SAMPLE},50\n{tmp_path / 'missing.png'},51\n{SAMPLE},52\n")
    out = tmp_path / "out"
    code = main(["batch", EXAMPLE, "--jobs", str(jobs), "--engine", "ray", "--workers", "2", "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "2 of 3 jobs done, 1 failed" in err and "Traceback" not in err
    rows = {r["overrides"]["thumb.width"]: r for r in manifest_rows(out)}
    assert len(rows) == 3 and rows[50]["status"] == rows[52]["status"] == "done"
    assert rows[51]["status"] == "failed" and "node 'load' failed: no such image file" in rows[51]["error"]
    assert rows[51]["outputs"] == [] and not (out / rows[51]["job"]).exists()

    code = main(["batch", EXAMPLE, "--jobs", str(jobs), "--engine", "ray", "--gpus-per-worker", "1",
                 "--output-dir", str(tmp_path / "o2")])
    err = capsys.readouterr().err
    assert code == 1 and err.strip() == "error: the Ray cluster has no GPUs: use --gpus-per-worker 0 to run on CPUs"
