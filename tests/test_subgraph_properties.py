"""Property tests: a workflow with subgraphs and its fully expanded flat form run the same nodes to the
same values, before and after any edit (outside, inside one instance, in the definition, promoted)."""

from hypothesis import HealthCheck, given, settings, strategies as st

import nodegraph
from nodegraph.expand import flatten
from nodegraph.subgraph_edit import make_subgraph, promote

from conftest import TEST_NODES


@st.composite
def cases(draw):
    n = draw(st.integers(3, 10))
    wf = nodegraph.Workflow(registry=TEST_NODES)
    for i in range(n):
        wf.add_node("test.add", f"n{i}", params={"k": draw(st.integers(-5, 5))})
        for port in ("a", "b"):
            if i and draw(st.booleans()):
                wf.connect(f"n{draw(st.integers(0, i - 1))}", "value", f"n{i}", port)
    # a contiguous run of ids is always a selection no path leaves and re-enters (links only go forward)
    start = draw(st.integers(0, n - 2))
    chosen = [f"n{i}" for i in range(start, draw(st.integers(start + 1, n)))]
    instance = make_subgraph(wf, chosen, title="Block")
    sub = wf.subgraphs[instance.id]
    if len(chosen) > 2 and draw(st.booleans()):  # a subgraph inside it
        make_subgraph(sub.body, chosen[1:3], title="Deeper")
    plain = [n for n in sorted(sub.body.nodes) if sub.body.nodes[n].type == "test.add"]
    if plain and draw(st.booleans()):
        promote(sub, plain[0], "k", "boost")
    edits = draw(st.lists(st.tuples(st.sampled_from(["outside", "inside", "definition", "promoted"]),
                                    st.integers(0, 100), st.integers(-5, 5)), max_size=6))
    return wf, instance.id, edits


def _apply(wf, instance_id, edit):
    where, pick, value = edit
    sub = wf.subgraphs[wf.nodes[instance_id].type.split(":", 1)[1]]
    inner = sorted(n.removeprefix(f"{instance_id}/") for n in flatten(wf).nodes if n.startswith(f"{instance_id}/"))
    if where == "outside":
        outside = [n for n in sorted(wf.nodes) if n != instance_id]
        if outside:
            wf.set_param(outside[pick % len(outside)], "k", value)
    elif where == "inside" and inner:  # this instance's own value, maybe two levels down
        wf.set_param(f"{instance_id}/{inner[pick % len(inner)]}", "k", value)
    elif where == "definition" and inner:  # the definition's value (an override of its own inner instance)
        sub.body.set_param(inner[pick % len(inner)], "k", value)
    elif where == "promoted" and sub.params:
        wf.set_param(instance_id, sub.params[0].name, value)


def _oracle(graph, node_id, env=(), output="value"):
    """The value the document means, read from the definitions themselves (no expansion): ``env`` is the
    chain of (instance, its definition, the graph it sits in, that graph's env), innermost first."""
    node = graph.nodes[node_id]
    if node.type.startswith("subgraph:"):  # an instance's one output: the inner node behind it
        sub = graph.subgraphs[node.type.split(":", 1)[1]]
        inner, port = next(o.source for o in sub.outputs if o.name == output)
        return _oracle(sub.body, inner, ((node, sub, graph, env),), port)
    k = node.params["k"]
    if env:
        instance, sub, _, _ = env[0]
        k = next((instance.params[p.name] for p in sub.params if (node_id, "k") in p.to), k)
        path, level = node_id, env
        chain = []
        while level:  # innermost instance's own values first, the outermost's last (they win)
            inst = level[0][0]
            chain.append(inst.overrides.get(path, {}))
            path, level = f"{inst.id}/{path}", level[0][3]
        for values in chain:
            k = values.get("k", k)
    return k + _input(graph, node_id, "a", env) + _input(graph, node_id, "b", env)


def _input(graph, node_id, port, env):
    """What feeds ``node_id.port``: a link at this level, else the enclosing instance's input (followed
    outwards, level by level), else nothing."""
    link = graph.links_into(node_id).get(port)
    if link is not None:
        return _oracle(graph, link.source, env, link.output)
    if env:
        instance, sub, outer, outer_env = env[0]
        slot = next((s for s in sub.inputs if (node_id, port) in s.to), None)
        if slot is not None:
            return _input(outer, instance.id, slot.name, outer_env)
    return 0


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_a_workflow_and_its_flat_form_execute_the_same_nodes_to_the_same_values(case):
    wf, instance_id, edits = case
    with_subgraphs, flat_engine = nodegraph.Engine(device="cpu"), nodegraph.Engine(device="cpu")
    targets = sorted(wf.nodes)
    for edit in [None, *edits]:
        if edit is not None:
            _apply(wf, instance_id, edit)
        flat = flatten(wf)
        flat_targets = sorted(flat.nodes)
        ran = with_subgraphs.run(wf, targets=targets)
        ran_flat = flat_engine.run(flat, targets=flat_targets)
        assert sorted(ran.executed) == sorted(ran_flat.executed)
        assert ran.reasons == ran_flat.reasons
        assert sorted(ran.cached) == sorted(ran_flat.cached)
        for node_id in flat_targets:
            assert ran.outputs[node_id]["value"] == ran_flat.outputs[node_id]["value"]
        for node_id in targets:  # what a user reads off the outer nodes is what the document means
            if not wf.nodes[node_id].type.startswith("subgraph:"):
                assert ran.outputs[node_id]["value"] == _oracle(wf, node_id)
    again = nodegraph.loads(wf.dumps(), registry=TEST_NODES)
    assert again.dumps() == wf.dumps()
    assert nodegraph.Engine(device="cpu").fingerprints(again, targets) == with_subgraphs.fingerprints(wf, targets)
