"""Property tests over random DAGs: the engine runs exactly the dirty ancestors of its targets."""

import json
import subprocess
import sys

import networkx as nx
from hypothesis import HealthCheck, given, settings, strategies as st

import nodegraph

from conftest import REPO, TEST_NODES


@st.composite
def dags(draw):
    """A random DAG of test.add nodes (each input linked from an earlier node or left empty) and targets."""
    n = draw(st.integers(2, 12))
    wf = nodegraph.Workflow(registry=TEST_NODES)
    for i in range(n):
        wf.add_node("test.add", f"n{i}", params={"k": draw(st.integers(-5, 5))})
        for port in ("a", "b"):
            if i and draw(st.booleans()):
                wf.connect(f"n{draw(st.integers(0, i - 1))}", "value", f"n{i}", port)
    targets = draw(st.lists(st.sampled_from(sorted(wf.nodes)), min_size=1, max_size=3, unique=True))
    edits = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(-5, 5)), max_size=8))
    return wf, targets, edits


def oracle_fingerprints(wf):
    """Independent Merkle hash: a node's k and its parents' fingerprints by port."""
    graph = nx.DiGraph([(l.source, l.target) for l in wf.links])
    graph.add_nodes_from(wf.nodes)
    fps = {}
    for node_id in nx.topological_sort(graph):
        parents = sorted((l.input, fps[l.source]) for l in wf.links if l.target == node_id)
        fps[node_id] = (wf.nodes[node_id].params["k"], tuple(parents))
    return fps, graph


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_executed_set_is_exactly_the_dirty_ancestors_of_the_targets(case):
    wf, targets, edits = case
    engine = nodegraph.Engine(device="cpu")
    seen: set = set()  # fingerprints whose result the (unbounded) cache holds
    for step in [None, *edits]:
        if step is not None:
            wf.set_param(f"n{step[0]}", "k", step[1])
        fps, graph = oracle_fingerprints(wf)
        needed = set(targets).union(*(nx.ancestors(graph, t) for t in targets))
        unseen = {fps[n] for n in needed} - seen  # identical nodes share one result, like any cache hit
        assert {fps[n] for n in engine.dirty(wf, targets)} == unseen
        result = engine.run(wf, targets=targets)
        assert {fps[n] for n in result.executed} == unseen and len(result.executed) == len(unseen)
        assert set(result.cached) == needed - set(result.executed)
        order = {n: i for i, n in enumerate(result.executed)}
        assert all(order[a] < order[b] for a, b in graph.edges if a in order and b in order)
        seen |= {fps[n] for n in needed}
        for t in targets:  # and the values are right
            assert result.outputs[t]["value"] == _value(wf, t)


def _value(wf, node_id):
    links = wf.links_into(node_id)
    return wf.nodes[node_id].params["k"] + sum(_value(wf, l.source) for l in links.values())


@settings(max_examples=40, deadline=None)
@given(dags())
def test_fingerprints_survive_save_and_load(case):
    wf, targets, _ = case
    before = nodegraph.Engine(device="cpu").fingerprints(wf, targets)
    again = nodegraph.loads(wf.dumps(), registry=TEST_NODES)
    assert nodegraph.Engine(device="cpu").fingerprints(again, targets) == before


def test_fingerprints_are_the_same_in_another_process():
    code = (
        "import json, nodegraph; wf = nodegraph.load('workflows/load-save.json');"
        "print(json.dumps(nodegraph.Engine(device='cpu').fingerprints(wf)))"
    )
    runs = [subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
            for _ in range(2)]
    first, second = (json.loads(r.stdout) for r in runs)
    assert first == second and set(first) == {"load", "save"}
    here = nodegraph.Engine(device="cpu").fingerprints(nodegraph.load(f"{REPO}/workflows/load-save.json"))
    assert here["save"] != first["save"] or here == first  # same file on disk: identical keys
    assert here == first
