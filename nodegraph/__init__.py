"""nodegraph: a node-graph engine for AI image work that re-runs only what changed.

The public API, shared by the CLI and the editor::

    import nodegraph
    wf = nodegraph.load("workflows/image-ops.json")
    wf.set_param("blur", "radius", 4.0)
    result = nodegraph.Engine(device="cpu").run(wf, output_dir="out")
    result.executed, result.cached, result.outputs
    nodegraph.save(wf, "tweaked.json")
    rows = nodegraph.batch(wf, "sweep.json", engine="local", output_dir="runs")   # one row per job
"""

from .batching import batch
from .document import load, loads, rebase, save
from .engine import Context, Engine, RunResult
from .errors import (
    NodeFailed,
    NodegraphError,
    NodeUserError,
    ParamError,
    Problem,
    RunCancelled,
    WorkflowFileError,
    WorkflowInvalid,
)
from .events import Event
from .node import Input, NodeType, Output, Param
from .registry import REGISTRY, Registry, node
from .types import PortType, compatible
from .validate import validate
from .workflow import Link, LinkError, Node, Workflow

__version__ = "0.1.0"

__all__ = [
    "Context", "Engine", "Event", "Input", "Link", "LinkError", "Node", "NodeFailed", "NodeType",
    "NodeUserError", "NodegraphError", "Output", "Param", "ParamError", "PortType", "Problem", "REGISTRY",
    "Registry", "RunCancelled", "RunResult", "Workflow", "WorkflowFileError", "WorkflowInvalid",
    "batch", "compatible", "load", "loads", "node", "rebase", "save", "validate",
]
