"""How fast the bundled demo model draws on this machine: a 64x64 txt2img, 20 steps, CFG, batch 1.

    python bench/bench_demo.py [--repeat 5] [--device cpu]

The workflow is workflows/txt2img.json with batch 1. 'cold' includes loading the model and encoding the
prompt; 'new seed' is what a user waits for after changing the seed (the model and prompt come from the
engine's cache, so only the Sampler, VAE Decode and the grid run). Medians, seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch  # noqa: E402

import nodegraph  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    wf = nodegraph.load(os.path.join(ROOT, "workflows", "txt2img.json"))
    wf.set_param("size", "batch_size", 1)
    out = tempfile.mkdtemp()
    engine = nodegraph.Engine(device=args.device)
    start = time.perf_counter()
    engine.run(wf, output_dir=out)
    cold = time.perf_counter() - start
    times, ran = [], []
    for seed in range(1, args.repeat + 1):
        wf.set_param("sampler", "seed", seed)
        start = time.perf_counter()
        result = engine.run(wf, output_dir=out)
        times.append(time.perf_counter() - start)
        ran = result.executed
    print(f"device: {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'case':<52} {'s':>7}")
    print(f"{'cold run (load model, encode prompt, sample, decode)':<52} {cold:7.3f}")
    print(f"{'new seed: ' + ', '.join(ran):<52} {statistics.median(times):7.3f}")


if __name__ == "__main__":
    main()
