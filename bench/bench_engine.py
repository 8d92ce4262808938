"""Engine overhead: time per node on 1,000 and 10,000 trivial nodes, and an all-cached re-run.

    python bench/bench_engine.py [--repeat 5]

Each graph is a random DAG (fixed seed) of trivial integer nodes: node i takes one input from node i-1
and one from a random earlier node, so every node is an ancestor of the target. Printed times are the
median of the repeats; "per node" divides by the number of nodes executed or served from the cache.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import nodegraph
from nodegraph import Input, Output, Param, PortType as T, Registry, node

BENCH = Registry(discover=False)


@node("bench.add", title="Add", category="bench", inputs=[Input("a", T.INT, optional=True), Input("b", T.INT, optional=True)],
      params=[Param("k", T.INT, 1, min=-10**9, max=10**9)], outputs=[Output("value", T.INT)], registry=BENCH)
def add(ctx, a, b, k):
    return {"value": k + (a or 0) + (b or 0) & 0xFFFF}


def build(n: int, seed: int = 0) -> nodegraph.Workflow:
    rng = random.Random(seed)
    wf = nodegraph.Workflow(registry=BENCH)
    for i in range(n):
        wf.add_node("bench.add", f"n{i}", params={"k": rng.randint(0, 9)})
        if i:
            wf.links.append(nodegraph.Link(f"n{i - 1}", "value", f"n{i}", "a"))
            wf.links.append(nodegraph.Link(f"n{rng.randrange(i)}", "value", f"n{i}", "b"))
    wf._touch()  # links were appended directly for speed: tell the engine the structure changed
    return wf


def timed(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for n in (1_000, 10_000):
        target = [f"n{n - 1}"]
        wf = build(n)
        cold = timed(lambda: nodegraph.Engine(device="cpu").run(wf, targets=target), args.repeat)
        rows.append((f"cold run, {n:,} nodes (plan + validate + execute)", cold, n))
        engine = nodegraph.Engine(device="cpu")
        engine.run(wf, targets=target)
        cached = timed(lambda: engine.run(wf, targets=target), args.repeat)
        rows.append((f"all-cached re-run, {n:,} nodes", cached, n))
        middle = f"n{n // 2}"
        values = iter(range(10**6))
        edit = timed(lambda: (wf.set_param(middle, "k", next(values)), engine.run(wf, targets=target)), args.repeat)
        rows.append((f"edit one param mid-graph, {n:,} nodes (about half re-run)", edit, n))
    width = max(len(r[0]) for r in rows)
    print(f"{'case':<{width}}  {'total ms':>9}  {'µs/node':>8}")
    for name, seconds, n in rows:
        print(f"{name:<{width}}  {seconds * 1e3:9.2f}  {seconds / n * 1e6:8.1f}")


if __name__ == "__main__":
    main()
