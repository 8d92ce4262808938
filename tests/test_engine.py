"""The scheduler and cache as a user sees them: what ran, what was cached, and why."""

import threading

import pytest

import nodegraph
from nodegraph.cache import Cache, Entry

from conftest import CALLS, OOM_STATE


def chain(wf):
    """c1 -> a1 -> a2 -> out, plus c2 -> a2 (a small diamond-free DAG)."""
    wf.add_node("test.const", "c1", params={"value": 5})
    wf.add_node("test.const", "c2", params={"value": 100})
    wf.add_node("test.add", "a1", params={"k": 1})
    wf.add_node("test.add", "a2", params={"k": 10})
    wf.add_node("test.sink", "out")
    wf.connect("c1", "value", "a1", "a")
    wf.connect("a1", "value", "a2", "a")
    wf.connect("c2", "value", "a2", "b")
    wf.connect("a2", "value", "out", "x")
    return wf


def test_first_run_executes_everything_in_order_then_all_cached(wf, engine):
    chain(wf)
    first = engine.run(wf)
    assert first.executed == ["c1", "a1", "c2", "a2", "out"]  # topological, ties broken by id
    assert first.outputs["out"]["value"] == 5 + 1 + 10 + 100
    assert all(first.reasons[n] == "not cached before" for n in first.executed)
    second = engine.run(wf)
    assert second.executed == []
    assert sorted(second.cached) == ["a1", "a2", "c1", "c2", "out"]
    assert second.outputs["out"]["value"] == 116


def test_changing_a_downstream_param_reruns_only_it_and_its_descendants(wf, engine):
    chain(wf)
    engine.run(wf)
    wf.set_param("a2", "k", 20)
    result = engine.run(wf)
    assert result.executed == ["a2", "out"]
    assert set(result.cached) == {"c1", "c2", "a1"}
    assert result.outputs["out"]["value"] == 126


def test_reverting_a_change_finds_the_old_results_again(wf, engine):
    chain(wf)
    engine.run(wf)
    wf.set_param("c1", "value", 6)
    assert engine.run(wf).executed == ["c1", "a1", "a2", "out"]
    wf.set_param("c1", "value", 5)
    result = engine.run(wf)
    assert result.executed == []
    assert result.outputs["out"]["value"] == 116


def test_rerun_reasons_name_the_parameter_and_the_upstream_node(wf, engine):
    chain(wf)
    engine.run(wf)
    wf.set_param("a1", "k", 2)
    result = engine.run(wf)
    assert result.reasons["a1"] == "parameter 'k' changed (1 -> 2)"
    assert result.reasons["a2"] == "input 'a' from node 'a1' changed"
    assert result.reasons["out"] == "input 'x' from node 'a2' changed"
    wf.connect("c2", "value", "a2", "a")  # rewire: a2.a now comes from c2
    assert engine.run(wf).reasons["a2"] == "input 'a' now comes from node 'c2'"
    assert engine.run(wf).report()["executed"] == []


def test_early_cutoff_stops_at_a_node_whose_output_did_not_change(wf, engine):
    wf.add_node("test.const", "c", params={"value": 5})
    wf.add_node("test.clamp", "clamp", params={"max": 3})
    wf.add_node("test.add", "after", params={"k": 1})
    wf.add_node("test.sink", "out")
    wf.connect("c", "value", "clamp", "x")
    wf.connect("clamp", "value", "after", "a")
    wf.connect("after", "value", "out", "x")
    engine.run(wf)
    wf.set_param("c", "value", 9)  # clamp still gives 3
    result = engine.run(wf)
    assert result.executed == ["c", "clamp"]
    assert set(result.cached) == {"after", "out"}
    assert result.outputs["out"]["value"] == 4
    wf.set_param("clamp", "max", 4)  # now the value does change and flows on
    result = engine.run(wf)
    assert result.executed == ["clamp", "after", "out"]
    assert result.outputs["out"]["value"] == 5


def test_always_run_nodes_run_every_time_but_cut_off_when_unchanged(wf, engine):
    wf.add_node("test.always", "clock", params={"value": 7})
    wf.add_node("test.sink", "out")
    wf.connect("clock", "value", "out", "x")
    engine.run(wf)
    result = engine.run(wf)
    assert result.executed == ["clock"]
    assert result.reasons["clock"] == "always runs"
    assert result.cached == ["out"]


def test_failing_node_is_named_and_the_next_run_redoes_only_it_and_downstream(wf, engine):
    wf.add_node("test.const", "c", params={"value": 1})
    wf.add_node("test.add", "pre", params={"k": 1})
    wf.add_node("test.fail", "bad")
    wf.add_node("test.sink", "out")
    wf.connect("c", "value", "pre", "a")
    wf.connect("pre", "value", "bad", "x")
    wf.connect("bad", "value", "out", "x")
    with pytest.raises(nodegraph.NodeFailed) as info:
        engine.run(wf)
    assert info.value.node == "bad"
    assert "node 'bad' failed: RuntimeError: boom" in str(info.value)
    assert info.value.result.executed == ["c", "pre", "bad"]
    assert info.value.result.status == "failed"
    wf.set_param("bad", "fail", False)
    result = engine.run(wf)
    assert result.executed == ["bad", "out"]
    assert set(result.cached) == {"c", "pre"}


def test_a_user_error_in_a_node_reads_as_one_line(wf, engine):
    wf.add_node("test.const", "c")
    wf.add_node("test.fail", "bad", params={"user_error": True})
    wf.add_node("test.sink", "out")
    wf.connect("c", "value", "bad", "x")
    wf.connect("bad", "value", "out", "x")
    with pytest.raises(nodegraph.NodeFailed) as info:
        engine.run(wf)
    assert str(info.value) == "node 'bad' failed: the frobnicator is unset"
    again = pytest.raises(nodegraph.NodeFailed, engine.run, wf)
    assert again.value.result.reasons["bad"] == "it failed last time"


def test_events_arrive_in_order_with_progress(wf, engine):
    wf.add_node("test.const", "c")
    wf.add_node("test.slow", "s", params={"steps": 4})
    wf.add_node("test.sink", "out")
    wf.connect("c", "value", "s", "x")
    wf.connect("s", "value", "out", "x")
    events = []
    engine.run(wf, on_event=events.append)
    kinds = [(e.kind, e.node) for e in events]
    assert kinds[:2] == [("started", "c"), ("finished", "c")]
    assert [e.fraction for e in events if e.kind == "progress"] == [0.25, 0.5, 0.75, 1.0]
    assert kinds[-2:] == [("started", "out"), ("finished", "out")]
    assert events[0].message == "not cached before"
    events.clear()
    engine.run(wf, on_event=events.append)
    assert {(e.kind, e.node) for e in events} == {("cached", "c"), ("cached", "s"), ("cached", "out")}


def test_cancel_inside_a_long_node_stops_the_run_and_keeps_finished_work(wf, engine):
    wf.add_node("test.const", "c")
    wf.add_node("test.slow", "s", params={"steps": 100})
    wf.add_node("test.sink", "out")
    wf.connect("c", "value", "s", "x")
    wf.connect("s", "value", "out", "x")
    cancel = threading.Event()

    def listener(event):
        if event.kind == "progress" and event.fraction >= 0.3:
            cancel.set()  # what the editor's Cancel button does

    with pytest.raises(nodegraph.RunCancelled) as info:
        engine.run(wf, on_event=listener, cancel=cancel)
    assert info.value.node == "s"
    assert info.value.result.executed == ["c", "s"]
    assert "out" not in CALLS
    result = engine.run(wf)
    assert result.executed == ["s", "out"]
    assert result.cached == ["c"]


def test_cancel_before_start_runs_nothing(wf, engine):
    chain(wf)
    with pytest.raises(nodegraph.RunCancelled):
        engine.run(wf, cancel=lambda: True)
    assert CALLS == {}


def test_muted_node_and_what_depends_on_it_do_not_run(wf, engine):
    wf.add_node("test.const", "c", params={"value": 2})
    wf.add_node("test.need", "n", params={"k": 1})
    wf.add_node("test.sink", "out")
    wf.add_node("test.const", "lone")
    wf.add_node("test.need", "n2")
    wf.add_node("test.sink", "side")
    wf.connect("c", "value", "n", "x")
    wf.connect("n", "value", "out", "x")
    wf.connect("lone", "value", "n2", "x")
    wf.connect("n2", "value", "side", "x")
    wf.set_mode("n", "muted")
    result = engine.run(wf)
    assert result.skipped["n"] == "muted"
    assert result.skipped["out"] == "input 'x' comes from node 'n', which is muted"
    assert result.executed == ["lone", "n2", "side"]
    assert "c" not in CALLS  # it feeds only the muted node


def test_an_optional_input_from_a_muted_node_is_left_empty(wf, engine):
    chain(wf)
    wf.set_mode("a1", "muted")
    result = engine.run(wf)
    assert result.outputs["out"]["value"] == 10 + 100  # a2 runs without its 'a' input
    assert result.reasons["a2"] == "not cached before"


def test_bypassed_node_passes_its_input_through(wf, engine):
    chain(wf)
    engine.run(wf)
    wf.set_mode("a1", "bypassed")
    result = engine.run(wf)
    assert result.bypassed == ["a1"]
    assert result.outputs["out"]["value"] == 5 + 10 + 100  # a1's +1 is skipped
    assert result.reasons["a2"] == "input 'a' from node 'a1' changed"


def test_a_param_can_be_driven_by_a_link(wf, engine):
    wf.add_node("test.const", "k", params={"value": 40})
    wf.add_node("test.const", "c", params={"value": 2})
    wf.add_node("test.add", "a")
    wf.add_node("test.sink", "out")
    wf.connect("c", "value", "a", "a")
    wf.connect("k", "value", "a", "k")  # the parameter 'k' becomes a socket
    wf.connect("a", "value", "out", "x")
    assert engine.run(wf).outputs["out"]["value"] == 42
    wf.set_param("a", "k", 1000)  # the widget value is kept but the link wins
    assert engine.run(wf).outputs["out"]["value"] == 42


def test_a_linked_param_out_of_range_names_node_and_param(wf, engine):
    wf.add_node("test.const", "c", params={"value": 500})
    wf.add_node("test.const", "x")
    wf.add_node("test.need", "n")
    wf.add_node("test.sink", "out")
    wf.connect("x", "value", "n", "x")
    wf.connect("c", "value", "n", "k")
    wf.connect("n", "value", "out", "x")
    with pytest.raises(nodegraph.NodeFailed) as info:
        engine.run(wf)
    assert "node 'n'" in str(info.value) and "parameter 'k'" in str(info.value) and "maximum 100" in str(info.value)


def test_targets_run_only_their_ancestors(wf, engine):
    chain(wf)
    result = engine.run(wf, targets=["a1"])
    assert result.executed == ["c1", "a1"]
    assert result.outputs["a1"]["value"] == 6
    assert engine.dirty(wf) == {"c2", "a2", "out"}


def test_dirty_predicts_what_will_run(wf, engine):
    chain(wf)
    assert engine.dirty(wf) == {"c1", "c2", "a1", "a2", "out"}
    engine.run(wf)
    assert engine.dirty(wf) == set()
    wf.set_param("a1", "k", 3)
    predicted = engine.dirty(wf)
    assert predicted == {"a1", "a2", "out"}
    assert set(engine.run(wf).executed) == predicted


def test_dirty_before_any_run_takes_a_linked_parameter_as_it_will_be(wf, engine):
    wf.add_node("test.const", "c", params={"value": 4})
    wf.add_node("test.add", "n")
    wf.add_node("test.sink", "out")
    wf.connect("c", "value", "n", "k")  # a parameter fed by a node that has not run yet
    wf.connect("n", "value", "out", "x")
    assert engine.dirty(wf) == {"c", "n", "out"}
    result = engine.run(wf)
    assert result.reasons["n"] == "not cached before"  # the dry walk did not mark it failed


def test_budget_evicts_least_recently_used_and_says_so(wf):
    engine = nodegraph.Engine(device="cpu", cache_bytes=3000)  # room for two 1 KiB tensors
    for name, fill in (("t1", 1.0), ("t2", 2.0), ("t3", 3.0)):
        wf.add_node("test.tensor", name, params={"size": 256, "fill": fill})
    engine.run(wf, targets=["t1"])
    engine.run(wf, targets=["t2"])
    engine.run(wf, targets=["t3"])  # pushes out t1, the least recently used
    assert engine.cache.resident_bytes <= 3000
    assert engine.run(wf, targets=["t2"]).cached == ["t2"]
    result = engine.run(wf, targets=["t1"])
    assert result.executed == ["t1"]
    assert result.reasons["t1"] == "its cached output was evicted"


def test_out_of_memory_evicts_and_retries_once(wf, engine):
    wf.add_node("test.tensor", "t", params={"size": 8})
    wf.add_node("test.oom", "o")
    wf.connect("t", "value", "o", "x")
    wf.add_node("test.tensor", "other", params={"size": 16})
    engine.run(wf, targets=["other"])
    OOM_STATE["raise"] = 1
    result = engine.run(wf, targets=["o"])
    assert result.executed == ["t", "o"] and CALLS["o"] == 2
    assert float(result.outputs["o"]["value"].sum()) == 0.0
    OOM_STATE["raise"] = 2  # fails again after the retry: reported, not retried forever
    wf.set_param("t", "fill", 1.0)
    with pytest.raises(nodegraph.NodeFailed, match="OutOfMemoryError"):
        engine.run(wf, targets=["o"])
    OOM_STATE["raise"] = 0


def test_spill_moves_device_entries_to_host_before_dropping():
    import torch

    moves = []

    def record_move(value, device):  # no GPU in CI: record the moves, keep the tensors where they are
        moves.append(device)
        return value

    cache = Cache(budget=2048, spill_budget=2048, mover=record_move)
    for i in range(3):  # three 1 KiB "GPU" entries against a 2 KiB budget
        cache.put(f"k{i}", Entry({"v": torch.zeros(256)}, {"v": f"k{i}:v"}, device="cuda:0"))
    assert cache.peek("k0").spilled and not cache.peek("k2").spilled
    assert cache.resident_bytes == 2048 and cache.spilled_bytes == 1024
    assert cache.get("k0") is not None and not cache.peek("k0").spilled  # restored on use
    assert cache.stats["restores"] == 1 and cache.peek("k1").spilled
    assert moves == ["cpu", "cuda:0", "cpu"]  # k0 out, k0 back, k1 out to make room
    cache.put("k3", Entry({"v": torch.zeros(768)}, {"v": "k3:v"}, device="cuda:0"))  # 3 KiB: too big to keep
    assert "k3" not in cache and cache.was_evicted("k3")


def test_invalid_workflow_is_refused_before_anything_runs(wf, engine):
    chain(wf)
    wf.disconnect("out", "x")
    with pytest.raises(nodegraph.WorkflowInvalid) as info:
        engine.run(wf)
    assert str(info.value.problems[0]) == "node 'out' port 'x': required INT input is not connected"
    assert CALLS == {}


def test_connect_refuses_incompatible_types_and_cycles(wf):
    chain(wf)
    wf.add_node("test.tensor", "img")
    with pytest.raises(nodegraph.LinkError, match="an IMAGE output cannot feed an INT input"):
        wf.connect("img", "value", "a1", "b")
    with pytest.raises(nodegraph.LinkError, match="cycle"):
        wf.connect("out", "value", "c1", "value")


def test_an_identity_that_cannot_read_its_file_fails_the_node_in_words(engine):
    from nodegraph import Output, Param, PortType as T, Registry, node

    reg = Registry(discover=False)

    def unreadable(params, ctx):
        raise PermissionError(13, "Permission denied")

    @node("test.reader", title="Reader", category="test", params=[Param("path", T.STRING, "x")],
          outputs=[Output("value", T.INT)], output=True, identity=unreadable, registry=reg)
    def reader(ctx, path):
        return {"value": 1}

    wf = nodegraph.Workflow(registry=reg)
    wf.add_node("test.reader", "r")
    with pytest.raises(nodegraph.NodeFailed, match="node 'r' failed: cannot read its input files: Permission denied"):
        engine.run(wf)


def test_out_of_memory_also_empties_caches_that_node_modules_keep(wf, engine):
    from nodegraph import cache

    released = []
    cache.on_release(lambda: released.append(True))
    wf.add_node("test.tensor", "t", params={"size": 8})
    wf.add_node("test.oom", "o")
    wf.connect("t", "value", "o", "x")
    OOM_STATE["raise"] = 1
    engine.run(wf, targets=["o"])
    assert released == [True]
