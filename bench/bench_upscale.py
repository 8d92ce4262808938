"""Upscale Image speed: a tiny random upscale model over one picture, whole and in overlapping tiles.

    python bench/bench_upscale.py [--size 512] [--repeat 5] [--device cpu] [--threads N]

The models are those of the tests (tests/tiny_upscalers.py): the example's 2x Real-ESRGAN (8 features, one
RRDB block) and a 4x Compact (8 features, 2 convolutions), saved as .safetensors and loaded by Load Upscale
Model. Upscale Image's run function is called with a bare context (no events; the engine's own overhead per
node is bench_engine's), so the figures are the model, the tiling and the cross-fade. Medians; "ms/MP" is per
megapixel of input.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))  # tiny_upscalers: random-weight models in the released layouts

TILINGS = [(0, 0), (256, 32), (128, 16), (128, 0)]  # (tile, overlap); 0: the whole picture at once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="the picture's side in pixels")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()

    import torch

    from bare_context import BareContext

    import tiny_upscalers
    from nodes import _tiling, upscale

    if args.threads:
        torch.set_num_threads(args.threads)
    ctx = BareContext(torch.device(args.device))
    picture = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)).to(ctx.device)
    megapixels = args.size * args.size / 1e6
    folder = Path(tempfile.mkdtemp(prefix="bench-upscale-"))
    models = {
        "Real-ESRGAN 2x": tiny_upscalers.demo_esrgan_x2(folder / "demo-esrgan-x2.safetensors"),
        "Compact 4x": tiny_upscalers.write_safetensors(tiny_upscalers.compact_state_dict(scale=4),
                                                       folder / "compact-x4.safetensors"),
    }
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.size}x{args.size} input, median of {args.repeat}")
    print("| model | tile / overlap | tiles | ms | ms/MP |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, path in models.items():
        model = upscale.load_upscale_model(ctx, model=str(path), dtype="auto")["upscale_model"]
        for tile, overlap in TILINGS:
            upscale.upscale_image(ctx, model, picture, tile, overlap)  # warm-up: first calls pick kernels
            times = []
            for _ in range(args.repeat):
                if ctx.device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                upscale.upscale_image(ctx, model, picture, tile, overlap)
                if ctx.device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
            ms = statistics.median(times) * 1e3
            tiles = _tiling.count(args.size, args.size, tile, overlap)
            label = "whole picture" if tile == 0 else f"{tile} / {overlap}"
            print(f"| {name} | {label} | {tiles} | {ms:.1f} | {ms / megapixels:.0f} |")


if __name__ == "__main__":
    main()
