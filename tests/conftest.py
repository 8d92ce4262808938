"""Shared fixtures. Test node types live in their own Registry so they never show in `nodegraph nodes`."""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_HOME = tempfile.mkdtemp(prefix="nodegraph-tests-")  # settings, QSettings and the hash cache stay out of ~
os.environ["XDG_CONFIG_HOME"] = os.path.join(_HOME, "config")
os.environ["XDG_CACHE_HOME"] = os.path.join(_HOME, "cache")
for _name in ("NODEGRAPH_SETTINGS", "NODEGRAPH_COMFYUI", "NODEGRAPH_COMFYUI_EXTRA_PATHS", "NODEGRAPH_SUBGRAPHS"):  # a user's own install
    os.environ.pop(_name, None)

import pytest  # noqa: E402

import nodegraph  # noqa: E402
from nodegraph import Input, NodeUserError, Output, Param, PortType as T, Registry, node  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_NODES = Registry(discover=False)
CALLS: dict[str, int] = {}


def moved_copy_of(reopened: nodegraph.Workflow, original: nodegraph.Workflow) -> list[str]:
    """``reopened`` (read from a file in another folder) is ``original`` except for relative paths that
    reach the same files from its folder; returns the "node.param" whose text changed (and sets those back
    in ``reopened`` to compare everything else)."""
    moved = []
    for node_id, item in original.nodes.items():
        for name, value in item.params.items():
            other = reopened.nodes[node_id].params[name]
            if other != value:
                assert Path(reopened.base_dir, other).resolve() == Path(original.base_dir, value).resolve()
                moved.append(f"{node_id}.{name}")
    for node_id, name in (m.split(".", 1) for m in moved):
        reopened.nodes[node_id].params[name] = original.nodes[node_id].params[name]
    assert reopened.dumps() == original.dumps()
    return moved


def _count(ctx):
    CALLS[ctx.node_id] = CALLS.get(ctx.node_id, 0) + 1


@node("test.const", title="Const", category="test", params=[Param("value", T.INT, 0, min=-10**9, max=10**9)],
      outputs=[Output("value", T.INT)], registry=TEST_NODES)
def const(ctx, value):
    _count(ctx)
    return {"value": value}


@node("test.add", title="Add", category="test",
      inputs=[Input("a", T.INT, optional=True), Input("b", T.INT, optional=True)],
      params=[Param("k", T.INT, 0, min=-10**9, max=10**9)], outputs=[Output("value", T.INT)], registry=TEST_NODES)
def add(ctx, a, b, k):
    _count(ctx)
    return {"value": k + (a or 0) + (b or 0)}


@node("test.need", title="Needs an input", category="test", inputs=[Input("x", T.INT)],
      params=[Param("k", T.INT, 0, min=0, max=100)], outputs=[Output("value", T.INT)], registry=TEST_NODES)
def need(ctx, x, k):
    _count(ctx)
    return {"value": x + k}


@node("test.clamp", title="Clamp", category="test", inputs=[Input("x", T.INT)],
      params=[Param("max", T.INT, 3, min=-10**9, max=10**9)], outputs=[Output("value", T.INT)], registry=TEST_NODES)
def clamp(ctx, x, max):
    _count(ctx)
    return {"value": min(x, max)}


@node("test.sink", title="Sink", category="test", inputs=[Input("x", T.INT)], outputs=[Output("value", T.INT)],
      output=True, registry=TEST_NODES)
def sink(ctx, x):
    _count(ctx)
    return {"value": x}


@node("test.fail", title="Fail", category="test", inputs=[Input("x", T.INT)],
      params=[Param("fail", T.BOOL, True), Param("user_error", T.BOOL, False)], outputs=[Output("value", T.INT)],
      registry=TEST_NODES)
def fail(ctx, x, fail, user_error):
    _count(ctx)
    if fail and user_error:
        raise NodeUserError("the frobnicator is unset")
    if fail:
        raise RuntimeError("boom")
    return {"value": x}


@node("test.slow", title="Slow", category="test", inputs=[Input("x", T.INT)],
      params=[Param("steps", T.INT, 5, min=1, max=1000)],
      outputs=[Output("value", T.INT)], registry=TEST_NODES)
def slow(ctx, x, steps):
    _count(ctx)
    for i in range(steps):
        ctx.progress((i + 1) / steps)
    return {"value": x + steps}


@node("test.always", title="Always", category="test", params=[Param("value", T.INT, 1, min=0, max=100)],
      outputs=[Output("value", T.INT)], always_run=True, registry=TEST_NODES)
def always(ctx, value):
    _count(ctx)
    return {"value": value}


@node("test.tensor", title="Tensor", category="test", params=[Param("size", T.INT, 256, min=1, max=10**7),
      Param("fill", T.FLOAT, 0.0)], outputs=[Output("value", T.IMAGE)], registry=TEST_NODES)
def tensor(ctx, size, fill):
    import torch

    _count(ctx)
    return {"value": torch.full((size,), fill, dtype=torch.float32)}


OOM_STATE = {"raise": 0}


@node("test.oom", title="Runs out of memory once", category="test", inputs=[Input("x", T.IMAGE)],
      outputs=[Output("value", T.IMAGE)], registry=TEST_NODES)
def oom(ctx, x):
    import torch

    _count(ctx)
    if OOM_STATE["raise"] > 0:
        OOM_STATE["raise"] -= 1
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return {"value": x * 2}


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()
    yield


@pytest.fixture
def wf():
    return nodegraph.Workflow(registry=TEST_NODES)


@pytest.fixture
def engine():
    return nodegraph.Engine(device="cpu")


@pytest.fixture
def window(qtbot, tmp_path):
    """The editor's main window, shown offscreen, with its own output folder; closed without prompts."""
    pytest.importorskip("PySide6")
    from gui.window import MainWindow

    w = MainWindow(None, engine=nodegraph.Engine(device="cpu"), output_dir=str(tmp_path / "out"))
    w.resize(1400, 900)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.saved_text = w.workflow.dumps()  # the unsaved-changes prompt is for people, not for test teardown
    w.close()
    w.deleteLater()
    w.prefs.qt.clear()  # each test starts from the default preferences
