"""A Flux-dev-size transformer stored in float8, as ComfyUI users keep it, loaded and run: memory and speed.

    python bench/bench_fp8_load.py [--workdir DIR] [--repeat 5]
    python bench/bench_fp8_load.py --config tiny/config.json --device cpu --side 8   # a quick check of the script

Random weights at Flux-dev's real size (the config that ships in nodes/configs/flux, 11.9 B parameters) are
made on the GPU in bfloat16 and timed there as the baseline; then saved as one float8 (e4m3fn) file in Black
Forest Labs' key layout (what `flux1-dev-fp8.safetensors` files hold) and loaded, in a fresh process, by Load
Diffusion Model through the engine, which keeps the weights in float8 and upcasts layer by layer. Reported:
load time, peak host memory of the loading process, GPU memory held by the loaded model, and the median time
of one transformer forward pass at 1024x1024 (4,096 image tokens, 512 text tokens, guidance on), and how far
its output is from the bfloat16 model's (the norm of the difference over the norm of the output).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # split_layouts: our model in the original single-file layout

CONFIG = ROOT / "nodes" / "configs" / "flux" / "transformer" / "config.json"


def inputs(config: dict, side: int, device, dtype):
    """One forward pass's inputs: side x side 2x2-packed latent tokens (64: a 1024x1024 picture), 512 text tokens,
    the widths the config's T5 and CLIP inputs have."""
    import torch

    g = torch.Generator(device).manual_seed(0)
    tokens, text = side * side, 512
    ids = torch.zeros(tokens, 3, device=device)
    ids[:, 1] = torch.arange(side, device=device).repeat_interleave(side)
    ids[:, 2] = torch.arange(side, device=device).repeat(side)
    return dict(hidden_states=torch.randn(1, tokens, config["in_channels"], generator=g, device=device, dtype=dtype),
                encoder_hidden_states=torch.randn(1, text, config["joint_attention_dim"], generator=g, device=device,
                                                  dtype=dtype),
                pooled_projections=torch.randn(1, config["pooled_projection_dim"], generator=g, device=device,
                                               dtype=dtype),
                timestep=torch.tensor([0.5], device=device, dtype=dtype),
                guidance=torch.tensor([3.5], device=device, dtype=torch.float32),
                img_ids=ids, txt_ids=torch.zeros(text, 3, device=device), return_dict=False)


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def memory(kind: str, device: str) -> int:
    import torch

    if device != "cuda":
        return 0
    return torch.cuda.memory_allocated() if kind == "held" else torch.cuda.max_memory_allocated()


def forward_ms(model, args, repeat: int):
    """(median ms of a forward pass, its output)."""
    import torch

    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    given = inputs(dict(model.config), args.side, args.device, dtype)
    times = []
    with torch.inference_mode():
        for i in range(repeat + 2):
            sync(args.device)
            start = time.perf_counter()
            out = model(**given)[0]
            sync(args.device)
            if i >= 2:  # two warm-ups
                times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, out.float().cpu()


def make(workdir: Path, args) -> dict:
    import torch
    from diffusers import FluxTransformer2DModel

    import split_layouts

    config = json.loads(Path(args.config).read_text())
    with torch.device(args.device):
        model = FluxTransformer2DModel.from_config(config)
    model = model.to(torch.bfloat16 if args.device == "cuda" else torch.float32).eval()
    params = sum(p.numel() for p in model.parameters())
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    held = memory("held", args.device)
    ms, out = forward_ms(model, args, args.repeat)
    peak = memory("peak", args.device)
    torch.save(out, workdir / "bf16-out.pt")
    state = {k: v.to(torch.float8_e4m3fn).cpu() for k, v in split_layouts.flux_keys(model.state_dict()).items()}
    del model
    if args.device == "cuda":
        torch.cuda.empty_cache()
    path = workdir / "flux1-dev-fp8.safetensors"
    start = time.perf_counter()
    split_layouts.save(state, path)
    return {"params": params, "bf16_held": held, "bf16_peak": peak, "bf16_ms": ms, "file": str(path),
            "file_bytes": path.stat().st_size, "save_s": time.perf_counter() - start}


def load(path: str, args) -> dict:
    import torch

    import nodegraph

    wf = nodegraph.Workflow()
    config = {} if args.config == str(CONFIG) else {"config": str(Path(args.config).parent)}
    wf.add_node("model.denoiser", "unet", params={"model": path, "dtype": "bfloat16" if args.device == "cuda"
                                                  else "float32", **config})
    engine = nodegraph.Engine(device=args.device)
    start = time.perf_counter()
    model = engine.run(wf, targets=["unet"]).outputs["unet"]["model"]
    seconds = time.perf_counter() - start
    held = memory("held", args.device)
    dtypes: dict[str, int] = {}
    for p in model.denoiser.parameters():
        dtypes[str(p.dtype).removeprefix("torch.")] = dtypes.get(str(p.dtype).removeprefix("torch."), 0) + p.numel()
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    ms, out = forward_ms(model.denoiser, args, args.repeat)
    reference = torch.load(Path(path).parent / "bf16-out.pt", weights_only=True)
    error = float((out - reference).norm() / reference.norm())
    return {"error": error, "load_s": seconds, "host_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "fp8_held": held, "fp8_peak": memory("peak", args.device), "fp8_ms": ms, "dtypes": dtypes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/bench-fp8")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--config", default=str(CONFIG), help="a Flux transformer config.json (default: Flux-dev's)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--side", type=int, default=64, help="packed latent tokens per side (64: 1024x1024)")
    parser.add_argument("--load", metavar="FILE", help=argparse.SUPPRESS)  # the fresh loading process
    args = parser.parse_args()
    if args.load:
        print(json.dumps(load(args.load, args)))
        return
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    made = make(workdir, args)
    print(f"made {made['params'] / 1e9:.2f} B parameters; saved {made['file_bytes'] / 1e9:.1f} GB in "
          f"{made['save_s']:.1f} s", flush=True)
    done = subprocess.run([sys.executable, __file__, "--load", made["file"], "--repeat", str(args.repeat),
                           "--config", args.config, "--device", args.device, "--side", str(args.side)],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the loading process failed:\n{done.stderr}")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    gb = 1e9
    print("| case | GPU memory held (GB) | peak during a forward (GB) | forward at 1024² (ms) | output off by |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| bfloat16 weights, made in place | {made['bf16_held'] / gb:.1f} | {made['bf16_peak'] / gb:.1f} | "
          f"{made['bf16_ms']:.1f} | - |")
    print(f"| float8 file through Load Diffusion Model | {got['fp8_held'] / gb:.1f} | {got['fp8_peak'] / gb:.1f} | "
          f"{got['fp8_ms']:.1f} | {got['error']:.4f} |")
    print(f"\nload: {got['load_s']:.1f} s, peak host memory of the loading process {got['host_peak'] / gb:.1f} GB "
          f"(file {made['file_bytes'] / gb:.1f} GB); parameters by dtype: "
          + ", ".join(f"{k} {v / 1e9:.2f} B" for k, v in sorted(got["dtypes"].items())))


if __name__ == "__main__":
    main()
