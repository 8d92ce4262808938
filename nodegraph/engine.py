"""The engine: plans a workflow as a networkx DiGraph and runs only what its cache lacks.

Each node's cache key is a Merkle hash of its type, version and parameters, the
identity of any file it reads, and the *value ids* of its inputs. A value id is
normally ``<producer key>:<output>``, so the key is the node's fingerprint and a
change invalidates exactly what lies downstream. When a node re-runs and its
output equals what it produced before, the output keeps its old value id; the
nodes below then find their old keys in the cache and do not run (early cutoff).
Every executed node is given the reason it ran.
"""

from __future__ import annotations

import gc
import hashlib
import json
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import networkx as nx

from .cache import Cache, Entry, run_release_hooks, same_value
from .document import embedded_text
from .errors import NodeFailed, NodegraphError, NodeUserError, ParamError, RunCancelled, WorkflowInvalid
from .events import Event
from .expand import flat_targets, flatten
from .files import inside, write_new_file
from .validate import validate
from .workflow import Workflow, natural_key

DEFAULT_CACHE_BYTES = 4 * 1024**3


@dataclass
class RunResult:
    """What one run did. ``outputs`` maps each node that produced values to its outputs by name."""

    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # node -> why it did not run (muted, ...)
    bypassed: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # executed node -> why it ran
    seconds: dict[str, float] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    status: str = "ok"  # ok | failed | cancelled
    error: str | None = None
    failed_node: str | None = None

    def report(self) -> dict[str, Any]:
        """JSON-ready summary (the CLI's ``--json`` output)."""
        return {
            "status": self.status,
            "error": self.error,
            "failed_node": self.failed_node,
            "executed": [
                {"node": n, "reason": self.reasons.get(n, ""), "seconds": round(self.seconds.get(n, 0.0), 6)}
                for n in self.executed
            ],
            "cached": list(self.cached),
            "bypassed": list(self.bypassed),
            "skipped": [{"node": n, "reason": r} for n, r in self.skipped.items()],
            "files": [str(p) for p in self.files],
        }


@dataclass
class _Record:
    """What the engine last ran or served for a node id: enough to say why it runs again."""

    key: str
    params: dict[str, Any]
    inputs: dict[str, tuple[str, str, str]]  # port -> (source node, output, value id)
    identity: Any


@dataclass
class _Plan:
    order: list[str]
    links_into: dict[str, dict[str, Any]]
    flat: Workflow  # the workflow with its subgraph instances expanded (the workflow itself if it has none)
    revision: int  # the workflow revision ``flat`` was expanded at


class Context:
    """What a node's ``run`` may use besides its values: device, progress, cancellation, files."""

    def __init__(self, engine: "Engine", run: "_Run", node_id: str):
        self._engine, self._run, self.node_id = engine, run, node_id

    @property
    def device(self):
        return self._engine.torch_device

    @property
    def output_dir(self) -> Path:
        return self._run.output_dir

    def workflow_text_for(self, folder: str | Path) -> str:
        """The workflow's JSON for a file written into ``folder`` (a PNG that carries it): relative input
        paths rewritten to reach the same files from there, so the PNG reopens and runs where it lies."""
        return self._run.workflow_text(Path(folder))

    def input_path(self, path: str) -> Path:
        """A user-given input path; relative paths are relative to the workflow file's folder."""
        p = Path(path).expanduser()
        if not p.is_absolute() and self._run.base_dir is not None:
            p = self._run.base_dir / p
        return p

    def check_cancelled(self) -> None:
        if self._run.cancelled():
            raise RunCancelled(self.node_id)

    def progress(self, fraction: float, preview: Any = None) -> None:
        """Report progress in [0, 1]; also a cancellation point.

        ``preview`` is an IMAGE, or a function returning one: it is only called when someone is
        listening, so a GPU loop is not made to wait for a copy nobody will look at.
        """
        if self._run.listening:
            if callable(preview):
                preview = preview()
            self._run.emit(Event("progress", self.node_id, fraction=float(fraction), preview=preview))
        self.check_cancelled()

    def report_file(self, path: Path) -> None:
        self._run.result.files.append(Path(path))

    def new_output_file(self, prefix: str, suffix: str, write) -> Path:
        """Write ``<prefix>_00001<suffix>`` (the first free number) in the output folder and report it.

        ``prefix`` may name sub-folders but never leaves the output folder; ``write(tmp_path)`` fills a
        temporary file that then takes the final name atomically, so nothing is overwritten or half-written.
        """
        try:
            first = inside(self.output_dir, f"{prefix}_00001{suffix}")
        except NodegraphError as e:
            raise NodeUserError(f"filename_prefix {prefix!r}: {e}") from None
        stem = first.name[: -len(f"_00001{suffix}")]
        try:
            path = write_new_file(first.parent, lambda n: f"{stem}_{n:05d}{suffix}", write)
        except OSError as e:
            raise NodeUserError(f"cannot write into {first.parent}: {e.strerror or e}") from None
        self.report_file(path)
        return path


class _Run:
    def __init__(self, workflow: Workflow, output_dir: Path, on_event, cancel):
        self.result = RunResult()
        self.output_dir = output_dir
        self.base_dir = workflow.base_dir
        self._workflow = workflow
        self._texts: dict[Path, str] = {}  # per folder files carrying the workflow are written into
        self._on_event = on_event
        self.listening = on_event is not None
        self.cancelled = _cancel_check(cancel)

    def emit(self, event: Event) -> None:
        if self._on_event is not None:
            self._on_event(event)

    def workflow_text(self, folder: Path) -> str:
        if folder not in self._texts:
            self._texts[folder] = embedded_text(self._workflow, folder)
        return self._texts[folder]


def _cancel_check(cancel) -> Callable[[], bool]:
    if cancel is None:
        return lambda: False
    if hasattr(cancel, "is_set"):
        return cancel.is_set
    if callable(cancel):
        return lambda: bool(cancel())
    raise TypeError("cancel must be a threading.Event-like object or a callable")


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


class Engine:
    """Runs workflows, keeping node outputs between runs.

    ``device``: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    ``cache_bytes``: budget for outputs resident on their device; ``spill_bytes``: budget for
    GPU outputs spilled to host memory before they are dropped (default: same as ``cache_bytes``).
    """

    def __init__(self, device: str = "auto", cache_bytes: int = DEFAULT_CACHE_BYTES, spill_bytes: int | None = None):
        self.device_name = device
        self._torch_device = None
        self.cache = Cache(cache_bytes, cache_bytes if spill_bytes is None else spill_bytes)
        self._last: dict[str, _Record] = {}
        self._failed: dict[str, str] = {}
        self._plans: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    @property
    def torch_device(self):
        """The torch device nodes should compute on (imports torch on first use)."""
        if self._torch_device is None:
            import torch

            name = self.device_name
            if name == "auto":
                name = "cuda" if torch.cuda.is_available() else "cpu"
            try:
                device = torch.device(name)
            except RuntimeError:
                raise NodegraphError(f"unknown device {name!r}: use cpu, cuda, cuda:N or auto") from None
            if device.type == "cuda" and not torch.cuda.is_available():
                raise NodegraphError(f"device {name!r} was asked for but CUDA is not available here")
            self._torch_device = device
        return self._torch_device

    # ----- planning ---------------------------------------------------------------------------
    def plan(self, workflow: Workflow, targets: list[str] | None = None) -> list[str]:
        """The nodes a run of ``targets`` touches, in the order it visits them."""
        return self._plan(workflow, targets).order

    def _plan(self, workflow: Workflow, targets) -> _Plan:
        # Parameter edits are checked by set_param and never change the plan: only structure counts.
        # They do change the values subgraph instances write into their inner nodes: those are re-expanded.
        memo_key = (workflow.structure_revision, tuple(targets) if targets is not None else None)
        memo = self._plans.get(workflow)
        if memo is not None and memo[0] == memo_key:
            plan = memo[1]
            if plan.revision != workflow.revision:
                plan.flat, plan.revision = flatten(workflow), workflow.revision
            return plan
        problems = validate(workflow)
        if problems:
            raise WorkflowInvalid(problems)
        flat = flatten(workflow)
        registry = workflow.registry
        if targets is None:
            targets = [n.id for n in flat.nodes.values() if n.mode == "active" and registry.get(n.type).output]
        else:
            targets = flat_targets(workflow, flat, list(targets))
        links_into: dict[str, dict[str, Any]] = {}
        for link in flat.links:
            links_into.setdefault(link.target, {})[link.input] = link
        needed, stack = set(), list(targets)
        while stack:
            node_id = stack.pop()
            if node_id in needed:
                continue
            needed.add(node_id)
            if flat.nodes[node_id].mode != "muted":
                stack.extend(link.source for link in links_into.get(node_id, {}).values())
        graph = nx.DiGraph()
        graph.add_nodes_from(needed)
        graph.add_edges_from((l.source, l.target) for l in flat.links if l.target in needed and l.source in needed)
        order = list(nx.lexicographical_topological_sort(graph, key=natural_key))
        plan = _Plan(order, links_into, flat, workflow.revision)
        self._plans[workflow] = (memo_key, plan)
        return plan

    def dirty(self, workflow: Workflow, targets: list[str] | None = None, output_dir: str | Path = "output") -> set[str]:
        """Nodes a run would execute now (assuming no early cutoff), without running anything."""
        return set(self._walk(workflow, targets, None, None, Path(output_dir), dry=True).executed)

    def fingerprints(self, workflow: Workflow, targets=None, output_dir: str | Path = "output") -> dict[str, str]:
        """Each planned node's cache key as a run would compute it now, without running anything."""
        return self._walk(workflow, targets, None, None, Path(output_dir), dry=True).fingerprints

    # ----- running ----------------------------------------------------------------------------
    def run(
        self,
        workflow: Workflow,
        targets: list[str] | None = None,
        on_event: Callable[[Event], None] | None = None,
        cancel=None,
        output_dir: str | Path = "output",
    ) -> RunResult:
        """Run ``targets`` (default: every output node) and what they need that is not cached.

        Raises :class:`NodeFailed` or :class:`RunCancelled`, each carrying the partial
        ``result``; nodes that finished before stay cached.
        """
        with self._lock:
            return self._walk(workflow, targets, on_event, cancel, Path(output_dir), dry=False)

    def _walk(self, workflow, targets, on_event, cancel, output_dir, dry: bool) -> RunResult:
        plan = self._plan(workflow, targets)
        run = _Run(workflow, output_dir, on_event, cancel)
        result = run.result
        values: dict[str, dict[str, Any]] = {}
        ids: dict[str, dict[str, str]] = {}
        planned: dict[str, Entry] = {}  # dry walks only: keys this walk would compute
        registry = workflow.registry
        for node_id in plan.order:
            if run.cancelled():
                run.emit(Event("cancelled", node_id))
                result.status = "cancelled"
                raise RunCancelled(node_id, result)
            node = plan.flat.nodes[node_id]
            node_type = registry.get(node.type)
            if node.mode == "muted":
                result.skipped[node_id] = "muted"
                run.emit(Event("skipped", node_id, message="muted"))
                continue

            # Gather inputs (links into inputs or parameters) and their value ids.
            links = plan.links_into.get(node_id, {})
            inputs: dict[str, Any] = {}
            refs: dict[str, tuple[str, str, str]] = {}
            missing = None
            for port, link in links.items():
                if link.source in values and link.output in values[link.source]:
                    inputs[port] = values[link.source][link.output]
                    refs[port] = (link.source, link.output, ids[link.source][link.output])
                else:
                    state = "is muted" if result.skipped.get(link.source) == "muted" else "gives no value"
                    missing = missing or f"input '{port}' comes from node '{link.source}', which {state}"
            if node.mode == "bypassed":
                values[node_id], ids[node_id] = self._bypass(node_type, inputs, refs)
                result.bypassed.append(node_id)
                run.emit(Event("skipped", node_id, message="bypassed"))
                continue
            optional = {i.name for i in node_type.inputs if i.optional}
            if missing and any(port not in inputs and port not in optional for port in links):
                result.skipped[node_id] = missing
                run.emit(Event("skipped", node_id, message=missing))
                continue

            try:
                # a dry walk has no values for what it would compute: a parameter they feed keeps its own
                given = {k: v for k, v in inputs.items() if not (dry and v is None and k in refs)}
                params = self._params(node, node_type, given)
                kwargs = {i.name: inputs.get(i.name) for i in node_type.inputs}
                kwargs.update(params)
                ctx = Context(self, run, node_id)
                identity = node_type.identity(params, ctx) if node_type.identity else None
            except NodegraphError as e:
                self._fail(run, node_id, str(e).removeprefix(f"node '{node_id}' "))
            except OSError as e:  # its input files could not be looked at
                self._fail(run, node_id, f"cannot read its input files: {e.strerror or e}", cause=e)
            key = _hash(
                node.digest(),
                "" if identity is None else json.dumps(identity, sort_keys=True, default=str),
                "|".join(f"{port}={refs[port][2]}" for port in sorted(refs)),
                f"{node_id}|{output_dir}" if node_type.output else "",  # side effects belong to one node
            )
            result.fingerprints[node_id] = key
            entry = None if node_type.always_run else self.cache.get(key)
            if dry and entry is None and key in planned:  # an identical node earlier in this walk
                entry = planned[key]
            record = _Record(key, dict(node.params), refs, identity)
            if entry is not None:
                values[node_id], ids[node_id] = entry.outputs, entry.value_ids
                result.cached.append(node_id)
                self._last[node_id] = record
                run.emit(Event("cached", node_id))
                continue

            result.reasons[node_id] = self._why(node_id, node_type, record)
            result.executed.append(node_id)
            if dry:
                out_ids = {o.name: f"{key}:{o.name}" for o in node_type.outputs}
                planned[key] = Entry({name: None for name in out_ids}, out_ids)
                values[node_id], ids[node_id] = planned[key].outputs, out_ids
                continue
            run.emit(Event("started", node_id, message=result.reasons[node_id]))
            start = time.perf_counter()
            outputs = self._execute(run, node_id, node_type, ctx, kwargs)
            result.seconds[node_id] = time.perf_counter() - start
            values[node_id], ids[node_id] = self._identify(node_id, key, outputs)
            self.cache.put(key, Entry(values[node_id], ids[node_id], device=_device_of(values[node_id])))
            self._last[node_id] = record
            self._failed.pop(node_id, None)
            run.emit(Event("finished", node_id, seconds=result.seconds[node_id]))
        result.outputs = values
        return result

    def _params(self, node, node_type, inputs) -> dict[str, Any]:
        params = dict(node.params)
        for param in node_type.params:
            if param.name in inputs:
                try:
                    params[param.name] = param.coerce(inputs[param.name])
                except ValueError as e:
                    raise ParamError(node.id, param.name, f"linked value refused: {e}") from None
        return params

    @staticmethod
    def _bypass(node_type, inputs, refs):
        """A bypassed node passes its first input of each output's type straight through."""
        values, ids = {}, {}
        for out in node_type.outputs:
            for port in node_type.inputs:
                if port.type == out.type and port.name in inputs:
                    values[out.name] = inputs[port.name]
                    ids[out.name] = refs[port.name][2]
                    break
        return values, ids

    def _why(self, node_id: str, node_type, record: _Record) -> str:
        if node_type.always_run:
            return "always runs"
        if self.cache.was_evicted(record.key):
            return "its cached output was evicted"
        if self._failed.get(node_id):
            return "it failed last time"
        prev = self._last.get(node_id)
        if prev is None:
            return "not cached before"
        if prev.key == record.key:
            return "its cached output was evicted"
        reasons = []
        for name, value in record.params.items():
            if name in prev.params and prev.params[name] != value:
                reasons.append(f"parameter '{name}' changed ({_short(prev.params[name])} -> {_short(value)})")
        for port in sorted(set(record.inputs) | set(prev.inputs)):
            now, before = record.inputs.get(port), prev.inputs.get(port)
            if now is None:
                reasons.append(f"input '{port}' was disconnected")
            elif before is None or before[:2] != now[:2]:
                reasons.append(f"input '{port}' now comes from node '{now[0]}'")
            elif before[2] != now[2]:
                reasons.append(f"input '{port}' from node '{now[0]}' changed")
        if prev.identity != record.identity:
            reasons.append("its input file changed")
        return "; ".join(reasons) or "not cached before"

    def _execute(self, run: _Run, node_id: str, node_type, ctx: Context, kwargs) -> dict[str, Any]:
        for attempt in (1, 2):
            try:
                outputs = node_type.run(ctx, **kwargs)
                break
            except RunCancelled as e:
                run.emit(Event("cancelled", node_id))
                run.result.status = "cancelled"
                e.node, e.result = node_id, run.result
                raise
            except NodegraphError as e:
                self._fail(run, node_id, str(e))
            except Exception as e:  # a bug in a node, or the device ran out of memory
                if attempt == 1 and _is_out_of_memory(e):
                    self._free_device_memory()
                    continue
                self._fail(run, node_id, f"{type(e).__name__}: {e}", cause=e)
        outputs = dict(outputs or {})
        declared = {o.name for o in node_type.outputs}
        if set(outputs) != declared:
            self._fail(run, node_id, f"returned outputs {sorted(outputs)}, declared {sorted(declared)}")
        return outputs

    def _fail(self, run: _Run, node_id: str, message: str, cause: BaseException | None = None):
        self._failed[node_id] = message
        run.result.status, run.result.error, run.result.failed_node = "failed", message, node_id
        run.emit(Event("failed", node_id, message=message))
        raise NodeFailed(node_id, message, run.result) from cause

    def _identify(self, node_id: str, key: str, outputs: dict[str, Any]):
        """Give each output a value id, keeping the previous id (and object) when the value is unchanged."""
        prev = self._last.get(node_id)
        before = self.cache.peek(prev.key) if prev is not None else None  # read before the new entry replaces it
        ids = {}
        for name, value in outputs.items():
            if before is not None and name in before.outputs and same_value(value, before.outputs[name]):
                outputs[name] = before.outputs[name]
                ids[name] = before.value_ids[name]
            else:
                ids[name] = f"{key}:{name}"
        return outputs, ids

    def _free_device_memory(self) -> None:
        self.cache.release_device()
        run_release_hooks()
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()


def _is_out_of_memory(e: BaseException) -> bool:
    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    return (oom is not None and isinstance(e, oom)) or isinstance(e, MemoryError)


def _device_of(outputs: dict[str, Any]) -> str:
    torch = sys.modules.get("torch")
    if torch is not None:
        for value in outputs.values():
            if isinstance(value, torch.Tensor):
                return str(value.device)
            if isinstance(value, torch.nn.Module):
                p = next(value.parameters(), None)
                if p is not None:
                    return str(p.device)
    return "cpu"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 30 else text[:27] + "..."
