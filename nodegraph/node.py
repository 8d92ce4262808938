"""The node contract: a node type is declared once, as data, and registered.

The declaration (``NodeType``) is enough to list a node, validate a workflow
that uses it and draw it with a form; its ``run`` function is only called by
the engine. ``run(ctx, **values)`` receives every input and every parameter by
name and returns a dict with one entry per declared output. It must be a pure
function of those values and must not modify them in place (they are shared
with the cache).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .model_kinds import KINDS
from .types import SCALAR_TYPES, PortType

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TYPE_ID_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
SUBGRAPH_TYPE_RE = re.compile(r"^subgraph:[A-Za-z0-9_-]{1,64}$")  # an instance of a workflow's own subgraph
SEED_MAX = 2**64 - 1


@dataclass(frozen=True)
class Input:
    """A socket that takes a value from another node's output."""

    name: str
    type: PortType
    optional: bool = False
    description: str = ""


@dataclass(frozen=True)
class Output:
    name: str
    type: PortType
    description: str = ""


@dataclass(frozen=True)
class Param:
    """A widget value stored in the workflow; a link may feed it instead.

    ``hint`` tells the editor which widget fits beyond the type: ``"file"``
    (an input file picker), ``"multiline"``, ``"color"`` (``#rrggbb``), ``"model"``
    (a model picker). With ``hint="model"``, ``kind`` names the kind of model as
    ComfyUI does (``"checkpoints"``, ``"loras"``, ...: ``nodegraph.model_kinds``),
    so ComfyUI names resolve in that kind's folders and the picker lists that kind.
    """

    name: str
    type: PortType
    default: Any
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    hint: str = ""
    description: str = ""
    kind: str = ""

    def coerce(self, value: Any) -> Any:
        """Return ``value`` in canonical form, or raise ``ValueError`` saying why not."""
        kind = self.type
        if kind in (PortType.INT, PortType.SEED):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"expected an integer, got {_show(value)}")
            if isinstance(value, float):
                if not math.isfinite(value) or not value.is_integer():
                    raise ValueError(f"expected an integer, got {_show(value)}")
                value = int(value)
            if kind is PortType.SEED and not 0 <= value <= SEED_MAX:
                raise ValueError(f"seed {value} is outside 0..{SEED_MAX}")
        elif kind is PortType.FLOAT:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"expected a number, got {_show(value)}")
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"expected a finite number, got {value}")
        elif kind is PortType.BOOL:
            if not isinstance(value, bool):
                raise ValueError(f"expected true or false, got {_show(value)}")
        elif kind is PortType.STRING:
            if not isinstance(value, str):
                raise ValueError(f"expected text, got {_show(value)}")
        elif kind is PortType.ENUM:
            if value not in self.choices:
                raise ValueError(f"{_show(value)} is not one of {', '.join(self.choices)}")
        if self.min is not None and value < self.min:
            raise ValueError(f"{value} is below the minimum {_num(self.min)}")
        if self.max is not None and value > self.max:
            raise ValueError(f"{value} is above the maximum {_num(self.max)}")
        return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


@dataclass(frozen=True)
class NodeType:
    """The declaration of one node type. See the module docstring for ``run``.

    ``identity(params, ctx)`` returns extra data that must change the node's
    fingerprint (a file's size and mtime, say); ``always_run`` marks nodes that
    execute on every run whatever their fingerprint; ``output`` marks nodes with
    side effects (save, preview), which are what a run without targets runs.
    ``upgrades`` maps an older type version to a function turning its params
    into the next version's.
    """

    id: str
    version: int
    title: str
    category: str
    run: Callable[..., Mapping[str, Any]]
    inputs: tuple[Input, ...] = ()
    outputs: tuple[Output, ...] = ()
    params: tuple[Param, ...] = ()
    description: str = ""
    output: bool = False
    always_run: bool = False
    identity: Callable[[Mapping[str, Any], Any], Any] | None = None
    upgrades: Mapping[int, Callable[[dict], dict]] = field(default_factory=dict)

    def __post_init__(self):
        if not (TYPE_ID_RE.match(self.id) or SUBGRAPH_TYPE_RE.match(self.id)):
            raise ValueError(f"node type id {self.id!r} must look like 'family.name'")
        names = [p.name for p in (*self.inputs, *self.params)]
        for name in names + [o.name for o in self.outputs]:
            if not NAME_RE.match(name):
                raise ValueError(f"{self.id}: port name {name!r} is not an identifier")
        if len(set(names)) != len(names):
            raise ValueError(f"{self.id}: input and parameter names must be unique")
        for p in self.params:
            if p.type not in SCALAR_TYPES:
                raise ValueError(f"{self.id}: parameter {p.name} has non-scalar type {p.type}")
            p.coerce(p.default)  # a default outside its own range is a bug in the declaration
            if p.kind and (p.hint != "model" or p.kind not in KINDS):
                raise ValueError(f"{self.id}: parameter {p.name} has kind {p.kind!r}: a kind goes with "
                                 f"hint='model' and is one of {', '.join(KINDS)}")

    def input(self, name: str) -> Input | None:
        return next((i for i in self.inputs if i.name == name), None)

    def output_port(self, name: str) -> Output | None:
        return next((o for o in self.outputs if o.name == name), None)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def target_type(self, name: str) -> PortType | None:
        """The type a link into ``name`` must carry: an input, or a parameter driven by a link."""
        port = self.input(name) or self.param(name)
        return port.type if port else None

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def describe(self) -> dict[str, Any]:
        """The declaration as plain data (``nodegraph nodes --json``, the editor's palette)."""

        def param(p: Param) -> dict[str, Any]:
            d = {"name": p.name, "type": str(p.type), "default": p.default}
            for key in ("min", "max", "step", "hint", "kind", "description"):
                if getattr(p, key) not in (None, ""):
                    d[key] = getattr(p, key)
            if p.choices:
                d["choices"] = list(p.choices)
            return d

        return {
            "id": self.id,
            "version": self.version,
            "title": self.title,
            "category": self.category,
            "description": self.description,
            "output": self.output,
            "always_run": self.always_run,
            "inputs": [
                {"name": i.name, "type": str(i.type), "optional": i.optional, "description": i.description}
                for i in self.inputs
            ],
            "outputs": [{"name": o.name, "type": str(o.type), "description": o.description} for o in self.outputs],
            "params": [param(p) for p in self.params],
        }
