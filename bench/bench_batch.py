"""Batch runs: jobs per second on 1 and 2 Ray workers, and the node executions the local engine saves.

    python bench/bench_batch.py [--jobs 60] [--seeds 100] [--repeat 3]

Throughput: two workloads, each run by the local engine and by Ray with 1 and 2 workers (a local cluster,
``ray.init(num_cpus=2)``). ``image-ops`` is workflows/image-ops.json with a thumbnail-width sweep (Pillow
work and six PNG/JPEG writes a job); ``txt2img`` is workflows/txt2img.json on a tiny random-weight SD model
(64x64, 8 steps) with a seed sweep (torch work; Ray gives each 1-CPU actor one torch thread, and this process
uses ``--torch-threads``, 1 by default, so that one worker means one core everywhere). "jobs/s" counts from the first finished job to the last, so
actor start-up (and the first model load) is left out; "wall s" is the whole batch as a user waits for it.
Best of ``--repeat``.

Savings: a seed sweep on txt2img run as a batch, against the same jobs each run on its own (``nodegraph run``
per job: every node every time); and a grid of 2 models x seeds listed seed-major with a cache that holds one
model, run in the given order against the batch's order.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # tiny_models: random-weight models built offline

import nodegraph

EXAMPLE = ROOT / "workflows" / "image-ops.json"
TXT2IMG = ROOT / "workflows" / "txt2img.json"


def tiny_sd(folder: Path) -> Path:
    import tiny_models

    return tiny_models.sd_pipeline(folder / "tiny-sd")


def small(model: Path, size: int = 64, steps: int = 8) -> dict:
    return {"checkpoint.model": str(model), "sampler.steps": steps, "size.width": size, "size.height": size,
            "size.batch_size": 1}


def timed_batch(workflow, jobs, **options) -> tuple[float, float, list[dict]]:
    """(jobs/s from the first finished job to the last, wall seconds, rows)."""
    stamps = []
    out = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    start = time.perf_counter()
    try:
        rows = nodegraph.batch(workflow, jobs, output_dir=out, progress=False,
                               on_row=lambda row: stamps.append(time.perf_counter()), **options)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    wall = time.perf_counter() - start
    assert all(r["status"] == "done" for r in rows), [r["error"] for r in rows if r["error"]][:3]
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")
    return rate, wall, rows


def throughput(args, model: Path) -> list[tuple]:
    import ray

    workloads = {
        "image-ops": (EXAMPLE, [{"thumb.width": 40 + i} for i in range(args.jobs)]),
        "txt2img": (TXT2IMG, [{**small(model), "sampler.seed": i} for i in range(args.jobs)]),
    }
    table = []
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for name, (workflow, jobs) in workloads.items():
            cases = [("local", {"engine": "local", "device": "cpu"})]
            cases += [(f"ray, {w} worker{'s' * (w > 1)}", {"engine": "ray", "workers": w}) for w in (1, 2)]
            for label, options in cases:
                best = max((timed_batch(workflow, jobs, **options)[:2] for _ in range(args.repeat)),
                           key=lambda r: r[0])
                table.append((name, label, len(jobs), *best))
    finally:
        ray.shutdown()
    return table


def savings(args, model: Path) -> list[tuple]:
    table = []
    wf = nodegraph.load(TXT2IMG)
    nodes = len(wf.nodes)
    seeds = [{**small(model, 32, 2), "sampler.seed": s} for s in range(args.seeds)]
    out = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    start, alone = time.perf_counter(), 0
    for n, job in enumerate(seeds):  # what a loop of `nodegraph run --set ...` does, less the start-up
        for key, value in job.items():
            wf.set_param(*key.split("."), value)
        alone += len(nodegraph.Engine(device="cpu").run(wf, output_dir=out / str(n)).executed)
    alone_s = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    _, wall, rows = timed_batch(TXT2IMG, seeds, engine="local", device="cpu")
    ran = sum(len(r["executed"]) for r in rows)
    assert alone == nodes * len(seeds)
    table.append((f"{args.seeds}-seed sweep: each job alone (a fresh engine per job)", alone, "-", alone_s))
    table.append((f"{args.seeds}-seed sweep: batch, local engine", ran, f"{1 - ran / alone:.1%}", wall))

    other = model.parent / "tiny-sd-copy"
    if not other.exists():
        shutil.copytree(model, other)
    weights = sum(f.stat().st_size for f in model.rglob("*.safetensors"))
    grid = [{**small(m, 32, 2), "sampler.seed": s} for s in range(args.seeds // 2) for m in (model, other)]
    budget = int(weights * 1.5)  # one model fits, two do not
    engine = nodegraph.Engine(device="cpu", cache_bytes=budget)
    given = collections.Counter()
    out = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    start = time.perf_counter()
    for n, job in enumerate(grid):  # the given order, one engine, no reordering
        for key, value in job.items():
            wf.set_param(*key.split("."), value)
        given.update(engine.run(wf, output_dir=out / str(n)).executed)
    given_s = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    _, wall, rows = timed_batch(TXT2IMG, grid, engine=nodegraph.Engine(device="cpu", cache_bytes=budget))
    ordered = collections.Counter(n for r in rows for n in r["executed"])
    label = f"2 models x {args.seeds // 2} seeds, cache fits one model"
    table.append((f"{label}: given order, one engine ({given['checkpoint']} model loads)", sum(given.values()),
                  "-", given_s))
    table.append((f"{label}: batch order ({ordered['checkpoint']} model loads)", sum(ordered.values()),
                  f"{1 - sum(ordered.values()) / sum(given.values()):.1%}", wall))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch threads of the local engine")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.torch_threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    folder = Path(tempfile.mkdtemp(prefix="bench-models-"))
    try:
        model = tiny_sd(folder)
        if not args.skip_ray:
            rows = throughput(args, model)
            print(f"\n{'workload':<10} {'engine':<16} {'jobs':>5} {'jobs/s':>8} {'wall s':>8}")
            for name, label, n, rate, wall in rows:
                print(f"{name:<10} {label:<16} {n:>5} {rate:>8.1f} {wall:>8.2f}")
            by = {(r[0], r[1]): r[3] for r in rows}
            for name in ("image-ops", "txt2img"):
                ratio = by[(name, "ray, 2 workers")] / by[(name, "ray, 1 worker")]
                print(f"{name}: 2 workers / 1 worker = {ratio:.2f}x")
        print(f"\n{'case':<78} {'node runs':>10} {'saved':>7} {'seconds':>8}")
        for label, count, saved, seconds in savings(args, model):
            print(f"{label:<78} {count:>10} {saved:>7} {seconds:>8.2f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
