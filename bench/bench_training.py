"""How fast the demo models train: pictures per second of the SD and Sana stages for some batch sizes and
data worker counts, and what preparing one batch costs the CPU.

    python bench/bench_training.py [--stages sd,sana] [--batches 256,1024] [--workers 0,4] [--steps 120]
                                   [--compile off,on] [--device cuda]
    python bench/bench_training.py --ops [--stages sd,sana] [--batches 256]

Each (stage, batch, workers) trains in its own process (``python -m nodegraph_demo.train``, starting from
the shipped weights in a scratch folder) for --steps steps; the rate is the training log's for the second
half of them, after the start-up (with --compile on, after torch.compile's first steps too). 'prepare' is
one batch's CPU work (scenes, captions, tokenizer calls), measured here in one process: what the data
workers, or the loop itself with 0 workers, must keep up with. --ops instead counts, on the CPU, the
operations one step dispatches per module: the launches a GPU step pays for whatever the batch.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import torch  # noqa: E402

from nodegraph_demo import architectures as A  # noqa: E402
from nodegraph_demo import train  # noqa: E402

MODELS = ROOT / "nodegraph_demo" / "models"


def prepare_ms(stage_name: str, batch: int, work: Path) -> float:
    """Median CPU time of one batch's prepare() for this stage, in milliseconds."""
    run = train.Run(work=work, arch=A.FULL, device=torch.device("cpu"), batch=batch)
    stage = train.STAGE_CLASSES[stage_name](run)
    stage.modules = stage.build()
    times = []
    for step in range(5):
        start = time.perf_counter()
        stage.prepare(step)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1000


def op_counts(stage_name: str, batch: int, work: Path) -> dict[str, int]:
    """The aten operations one training step's forward and backward pass dispatch, by the module running
    them: on a GPU each is about one kernel launch, the per-step cost that does not shrink with the batch.
    Counted on the CPU (the same graph; fused optimizer and EMA updates not included)."""
    from collections import Counter

    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.where, self.counts = ["other (data, noise, loss)"], Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.counts[self.where[-1]] += 1
            return func(*args, **(kwargs or {}))

    run = train.Run(work=work, arch=A.FULL, device=torch.device("cpu"), batch=batch)
    stage = train.STAGE_CLASSES[stage_name](run)
    stage.modules = stage.build()
    counter = Count()
    named = dict(stage.modules)
    named.update({n: m for n, m in vars(stage).items() if isinstance(m, torch.nn.Module) and m not in named.values()})
    for name, module in named.items():  # children too: an autoencoder's encode() skips its own forward()
        for part in (module, *module.children()):
            part.register_forward_pre_hook(lambda *_, name=name: counter.where.append(f"{name} forward"))
            part.register_forward_hook(lambda *_: None if counter.where.pop() else None)  # must return None
    prepared = stage.prepare(0)
    if prepared.answers:
        stage.text.tokenizer.provide(prepared.answers)
    with counter:
        loss = stage.loss(0, prepared, run.generator(stage_name, 0))
        counter.where.append("backward")
        loss.backward()
    return dict(counter.counts)


def train_rate(stage: str, batch: int, workers: int, steps: int, device: str, compiled: bool) -> float:
    """Pictures per second over the second half of ``steps`` training steps."""
    with tempfile.TemporaryDirectory() as work:
        cmd = [sys.executable, "-m", "nodegraph_demo.train", "--stage", stage, "--work", work,
               "--init-from", str(MODELS), "--steps", str(steps), "--batch", str(batch), "--workers", str(workers),
               "--log-every", str(steps // 2), "--minutes", "30", "--split", f"{stage}=1", "--device", device]
        cmd += ["--compile"] if compiled else []
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if out.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
        rates = re.findall(r"(\d+) img/s", out.stdout)
        return float(rates[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stages", default="sd,sana")
    p.add_argument("--batches", default="256,1024")
    p.add_argument("--workers", default="0,4")
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--compile", default="off", help="off, on, or off,on: train with torch.compile's denoiser")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--ops", action="store_true", help="only count one step's operations per module (CPU)")
    args = p.parse_args()
    if args.ops:
        with tempfile.TemporaryDirectory() as work:
            train.import_exports(MODELS, train.Run(work=Path(work), arch=A.FULL, device=torch.device("cpu")))
            print("| stage | batch | where | aten operations |\n| --- | ---: | --- | ---: |")
            for stage in args.stages.split(","):
                counts = op_counts(stage, int(args.batches.split(",")[0]), Path(work))
                for where, n in sorted(counts.items(), key=lambda kv: -kv[1]):
                    print(f"| {stage} | {args.batches.split(',')[0]} | {where} | {n} |")
                print(f"| {stage} | | all | {sum(counts.values())} |", flush=True)
        return
    stages = args.stages.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    runs = [(w, c == "on") for c in args.compile.split(",") for w in workers]
    with tempfile.TemporaryDirectory() as work:
        train.import_exports(MODELS, train.Run(work=Path(work), arch=A.FULL, device=torch.device("cpu")))
        columns = [f"{w} workers{', compiled' if c else ''} (pictures/s)" for w, c in runs]
        print("| stage | batch | prepare (CPU, ms) | " + " | ".join(columns) + " |")
        print("| --- | ---: | ---: | " + " | ".join("---:" for _ in runs) + " |")
        for stage in stages:
            for batch in batches:
                cpu = prepare_ms(stage, batch, Path(work))
                rates = [train_rate(stage, batch, w, args.steps, args.device, c) for w, c in runs]
                print(f"| {stage} | {batch} | {cpu:.0f} | " + " | ".join(f"{r:.0f}" for r in rates) + " |", flush=True)


if __name__ == "__main__":
    main()
