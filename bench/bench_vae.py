"""VAE Decode speed: SD 1.5's AutoencoderKL against a tiny VAE (AutoencoderTiny, TAESD's default size).

    python bench/bench_vae.py [--device cpu] [--sizes 256] [--repeat 5]

Both VAEs are built from their configs with random weights (SD 1.5's from the config this package ships,
TAESD's from AutoencoderTiny's defaults), float16 on a GPU and float32 on the CPU, and decode one latent through
VAE Decode's run function with a bare context. The time of a decode does not depend on the weights' values.
Medians; "MP/s" is output megapixels per second.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="256", help="picture sides, comma-separated")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import torch

    from bare_context import BareContext
    from diffusers import AutoencoderKL, AutoencoderTiny

    from nodes._diffusion_types import Latent
    from nodes.latent import vae_decode
    from nodes.models import make_vae

    ctx = BareContext(torch.device(args.device))
    dtype = torch.float16 if ctx.device.type == "cuda" else torch.float32
    config = AutoencoderKL.load_config(ROOT / "nodes" / "configs" / "sd15" / "vae")
    vaes = {"AutoencoderKL (SD 1.5)": make_vae(AutoencoderKL.from_config(config).to(ctx.device, dtype)),
            "AutoencoderTiny (TAESD)": make_vae(AutoencoderTiny().to(ctx.device, dtype))}
    print(f"device {args.device}, torch {torch.__version__}, {dtype}, median of {args.repeat}")
    print("| VAE | picture | ms | MP/s |")
    print("| --- | --- | ---: | ---: |")
    for size in (int(s) for s in args.sizes.split(",")):
        samples = torch.randn(1, 4, size // 8, size // 8, generator=torch.Generator().manual_seed(0))
        latent = Latent(samples.to(ctx.device, dtype), 4)
        for name, vae in vaes.items():
            def decode():
                vae_decode(ctx, vae, latent, tiled=False, tile_size=512)
                if ctx.device.type == "cuda":
                    torch.cuda.synchronize()
            decode()  # warm-up: kernels chosen
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                decode()
                times.append(time.perf_counter() - start)
            ms = statistics.median(times) * 1e3
            print(f"| {name} | {size}² | {ms:.1f} | {size * size / 1e6 / (ms / 1e3):.2f} |")


if __name__ == "__main__":
    main()
