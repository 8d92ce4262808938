"""The benchmarks docs/benchmarks.md quotes still run and print their tables (figures are never checked)."""

import os
import subprocess
import sys

from conftest import REPO


def bench(*args) -> str:
    done = subprocess.run([sys.executable, os.path.join(REPO, "bench", args[0]), *args[1:]], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_analyze_benchmark_prints_a_row_per_node():
    rows = [line for line in bench("bench_analyze.py", "--repeat", "1").splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[0][2:] for r in rows[2:]] == [
        "Segment (SAM), a box and a point", "Detect Objects (OWL-ViT), 2 labels", "Text to Mask (CLIPSeg), 2 texts",
        "Florence-2 caption, 20 new tokens"]


def test_the_upscale_benchmark_prints_every_tiling():
    rows = [line for line in bench("bench_upscale.py", "--size", "128", "--repeat", "1", "--threads", "1").splitlines()
            if line.startswith("| ")]
    assert len(rows) == 2 + 8


def test_the_vae_benchmark_prints_both_vaes():
    rows = [line for line in bench("bench_vae.py", "--sizes", "64", "--repeat", "1").splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[0][2:] for r in rows[2:]] == ["AutoencoderKL (SD 1.5)", "AutoencoderTiny (TAESD)"]
