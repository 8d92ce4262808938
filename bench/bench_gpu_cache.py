"""The cache on a real GPU: spill to host and restore, a real out-of-memory retry, and image-ops on CUDA.

    python bench/bench_gpu_cache.py          # needs a CUDA device

1. Six 1 GiB outputs against a 4 GiB device budget: the oldest spill to host memory; re-running a
   spilled node restores it (timed) instead of recomputing it.
2. Fill most of the GPU with cached outputs, then run a node that needs more than is free: the first
   attempt raises torch.OutOfMemoryError, the engine spills the cache and retries once, and it succeeds.
3. workflows/image-ops.json with device=cuda: cold and all-cached run times, and the largest pixel
   difference from the same workflow run on the CPU.
"""

from __future__ import annotations

import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import nodegraph  # noqa: E402
from nodegraph import Input, Output, Param, PortType as T, Registry, node  # noqa: E402

GiB = 1024**3
BENCH = Registry(discover=False)
CALLS: dict[str, int] = {}


@node("bench.fill", title="Fill", category="bench", params=[Param("mib", T.INT, 1024, min=1, max=10**7),
      Param("value", T.FLOAT, 1.0)], outputs=[Output("value", T.IMAGE)], registry=BENCH)
def fill(ctx, mib, value):
    CALLS[ctx.node_id] = CALLS.get(ctx.node_id, 0) + 1
    return {"value": torch.full((mib * 1024 * 1024 // 4,), value, device=ctx.device)}


@node("bench.double", title="Double", category="bench", inputs=[Input("x", T.IMAGE)],
      params=[Param("extra_mib", T.INT, 0, min=0, max=10**7)], outputs=[Output("value", T.IMAGE)], registry=BENCH)
def double(ctx, x, extra_mib):
    CALLS[ctx.node_id] = CALLS.get(ctx.node_id, 0) + 1
    scratch = torch.empty(extra_mib * 1024 * 1024, dtype=torch.uint8, device=ctx.device)  # the big allocation
    del scratch
    return {"value": x[:16] * 2}


def sync_time(fn):
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start, out


def spill_case(rows):
    engine = nodegraph.Engine(device="cuda", cache_bytes=4 * GiB, spill_bytes=16 * GiB)
    wf = nodegraph.Workflow(registry=BENCH)
    for i in range(6):
        wf.add_node("bench.fill", f"f{i}", params={"mib": 1024, "value": float(i)})
    compute = []
    for i in range(6):
        seconds, _ = sync_time(lambda: engine.run(wf, targets=[f"f{i}"]))
        compute.append(seconds)
    stats = dict(engine.cache.stats)
    rows.append(("spill: resident / spilled after 6 x 1 GiB, 4 GiB budget",
                 f"{engine.cache.resident_bytes / GiB:.0f} / {engine.cache.spilled_bytes / GiB:.0f} GiB"))
    rows.append(("spill: entries spilled to host", stats["spills"]))
    seconds, result = sync_time(lambda: engine.run(wf, targets=["f0"]))
    ok = result.cached == ["f0"] and result.outputs["f0"]["value"].is_cuda and float(result.outputs["f0"]["value"][0]) == 0.0
    rows.append(("restore a spilled 1 GiB output (cached, back on GPU)", f"{seconds * 1e3:.1f} ms ({1 / seconds:.1f} GiB/s), correct={ok}"))
    seconds, result = sync_time(lambda: engine.run(wf, targets=["f5"]))
    rows.append(("serve a resident 1 GiB output", f"{seconds * 1e3:.2f} ms, cached={result.cached == ['f5']}"))
    rows.append(("compute a 1 GiB output (median of 6)", f"{sorted(compute)[3] * 1e3:.1f} ms"))


def oom_case(rows):
    free, total = torch.cuda.mem_get_info()
    engine = nodegraph.Engine(device="cuda", cache_bytes=total, spill_bytes=total)
    wf = nodegraph.Workflow(registry=BENCH)
    chunk = 4 * 1024  # MiB
    n = int(free * 0.6 // (chunk * 1024 * 1024))
    for i in range(n):
        wf.add_node("bench.fill", f"hold{i}", params={"mib": chunk, "value": float(i)})
        engine.run(wf, targets=[f"hold{i}"])
    free_now, _ = torch.cuda.mem_get_info()
    need_mib = int(free_now * 1.3 // (1024 * 1024))
    wf.add_node("bench.double", "big", params={"extra_mib": need_mib})
    wf.connect("hold0", "value", "big", "x")
    CALLS.clear()
    seconds, result = sync_time(lambda: engine.run(wf, targets=["big"]))
    rows.append(("oom: cached before the big node", f"{n} x {chunk // 1024} GiB, {free_now / GiB:.1f} GiB free"))
    rows.append(("oom: big node asks for", f"{need_mib / 1024:.1f} GiB"))
    rows.append(("oom: attempts / status", f"{CALLS.get('big')} / {result.status}, spills={engine.cache.stats['spills']}"))
    rows.append(("oom: run time including spill and retry", f"{seconds:.2f} s"))


def image_ops_case(rows):
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "workflows", "image-ops.json")
    outputs = {}
    for device in ("cpu", "cuda"):
        engine = nodegraph.Engine(device=device)
        wf = nodegraph.load(path)
        cold, result = sync_time(lambda: engine.run(wf, output_dir=f"/tmp/bench-out-{device}"))
        warm, again = sync_time(lambda: engine.run(wf, output_dir=f"/tmp/bench-out-{device}"))
        outputs[device] = result.outputs
        on_gpu = all(v["image"].device.type == device for k, v in result.outputs.items() if k.startswith("save"))
        rows.append((f"image-ops on {device}: cold / all-cached", f"{cold * 1e3:.1f} / {warm * 1e3:.2f} ms, "
                     f"{len(result.executed)} ran then {len(again.cached)} cached, outputs on {device}={on_gpu}"))
    diff = max(float((outputs["cpu"][k]["image"] - outputs["cuda"][k]["image"].cpu()).abs().max())
               for k in outputs["cpu"] if k.startswith("save"))
    rows.append(("image-ops: largest CPU/CUDA pixel difference", f"{diff:.4f}"))


def main():
    if not torch.cuda.is_available():
        sys.exit("this benchmark needs a CUDA device")
    rows = [("device", torch.cuda.get_device_name(0)), ("torch", torch.__version__)]
    spill_case(rows)
    torch.cuda.empty_cache()
    oom_case(rows)
    torch.cuda.empty_cache()
    image_ops_case(rows)
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
