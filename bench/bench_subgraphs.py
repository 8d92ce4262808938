"""What subgraphs cost the engine: the same 1,000-node chain flat, and as 100 instances of one 10-node subgraph.

    python bench/bench_subgraphs.py [--repeat 7]

Each instance is expanded into its inner nodes before the engine plans, and again (parameters only) after
each edit, so the cost shows in the edit loop: change one parameter near the end, re-run. Printed times
are medians of the repeats; nodes are trivial integer additions, so the time is the engine's own.
"""

from __future__ import annotations

import argparse

from bench_engine import timed  # the same median-of-repeats timer

import nodegraph
from nodegraph import Input, Output, Param, PortType as T, Registry, node
from nodegraph.subgraph_edit import add_output, make_subgraph

BENCH = Registry(discover=False)


@node("bench.add", title="Add", category="bench", inputs=[Input("a", T.INT, optional=True)],
      params=[Param("k", T.INT, 1, min=-10**9, max=10**9)], outputs=[Output("value", T.INT)], registry=BENCH)
def add(ctx, a, k):
    return {"value": (k + (a or 0)) & 0xFFFF}


def chain(blocks: int, size: int) -> nodegraph.Workflow:
    wf = nodegraph.Workflow(registry=BENCH)
    for i in range(blocks * size):
        wf.add_node("bench.add", f"n{i}", params={"k": i % 7})
        if i:
            wf.links.append(nodegraph.Link(f"n{i - 1}", "value", f"n{i}", "a"))
    wf._touch()
    return wf


def grouped(blocks: int, size: int) -> nodegraph.Workflow:
    """The chain with each run of ``size`` nodes one instance of a single shared definition."""
    wf = nodegraph.Workflow(registry=BENCH)
    wf.add_node("bench.add", "first")
    make_subgraph(_one_block(wf, size), [f"b{j}" for j in range(size)], title="Block", sub_id="block")
    add_output(wf.subgraphs["block"], f"b{size - 1}", "value")
    for i in range(1, blocks):
        wf.add_node("subgraph:block", f"block{i + 1}")
        wf.connect(f"block{i}" if i > 1 else "block", "value", f"block{i + 1}", "a")
    return wf


def _one_block(wf, size):
    for j in range(size):
        wf.add_node("bench.add", f"b{j}", params={"k": j % 7})
        wf.connect("first" if j == 0 else f"b{j - 1}", "value", f"b{j}", "a")
    return wf


def edit_loop(wf, target: str, edit, repeat: int) -> tuple[float, float]:
    engine = nodegraph.Engine(device="cpu")
    engine.run(wf, targets=[target])
    flip = [0]

    def one_edit():
        flip[0] ^= 1
        edit(flip[0])
        engine.run(wf, targets=[target])

    return timed(one_edit, repeat), timed(lambda: engine.run(wf, targets=[target]), repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    blocks, size = 100, 10
    flat = chain(blocks, size)
    last = f"n{blocks * size - 1}"
    flat_edit, flat_cached = edit_loop(flat, last, lambda v: flat.set_param(f"n{blocks * size - 3}", "k", v),
                                       args.repeat)
    wf = grouped(blocks, size)
    top = f"block{blocks}"
    sub_edit, sub_cached = edit_loop(wf, top, lambda v: wf.set_param(f"{top}/b{size - 3}", "k", v), args.repeat)
    rows = [("1,000 nodes flat: edit one parameter, re-run", flat_edit),
            ("1,000 nodes flat: all cached, re-run", flat_cached),
            ("100 instances x 10 nodes: edit one inner parameter, re-run", sub_edit),
            ("100 instances x 10 nodes: all cached, re-run", sub_cached)]
    width = max(len(r[0]) for r in rows)
    print(f"{'case':<{width}}  ms")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds * 1000:8.2f}")


if __name__ == "__main__":
    main()
