"""Subgraphs: a group of nodes defined once in a workflow and used as one node, any number of times.

A definition holds its own nodes and links (``body``, a :class:`Workflow` that shares the outer
workflow's node types) and an interface: typed inputs that feed inner ports, outputs that come from
inner ports, and promoted parameters that drive inner parameters. A node of type ``subgraph:<id>``
is an instance; its parameters are the promoted ones, and ``overrides`` may set any inner parameter
of that one instance (``nodegraph run --set hires.sampler.seed=3``).

Definitions live at the top of the document and may use each other (they nest); the engine expands
instances into inner nodes with path ids (``hires/sampler``) before it plans, so nothing below the
planner knows subgraphs exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .node import Input, NodeType, Output, Param
from .types import PortType

if TYPE_CHECKING:
    from .workflow import Workflow

PREFIX = "subgraph:"
SUBGRAPH_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CATEGORY = "subgraphs"
MAX_DEPTH = 16  # subgraphs inside subgraphs, at most this deep


def type_id(subgraph_id: str) -> str:
    return PREFIX + subgraph_id


def subgraph_id(type_id: str) -> str | None:
    """The definition id an instance's type names, or None for any other type."""
    return type_id[len(PREFIX):] if type_id.startswith(PREFIX) else None


@dataclass
class InputSlot:
    """An input of the subgraph: a value from outside, fed to every inner port in ``to``."""

    name: str
    type: PortType
    to: list[tuple[str, str]] = field(default_factory=list)  # (inner node, input or parameter)
    description: str = ""


@dataclass
class OutputSlot:
    """An output of the subgraph: the value of one inner node's output."""

    name: str
    type: PortType
    source: tuple[str, str] | None = None  # (inner node, output)
    description: str = ""


@dataclass
class PromotedParam:
    """An inner parameter shown on the instance: its value drives every inner parameter in ``to``."""

    name: str
    to: list[tuple[str, str]] = field(default_factory=list)  # (inner node, parameter)
    default: Any = None
    title: str = ""


@dataclass
class Subgraph:
    """One definition. Change it through the outer workflow's methods or call ``touch`` after."""

    id: str
    title: str
    body: "Workflow"
    version: int = 1
    description: str = ""
    category: str = CATEGORY
    inputs: list[InputSlot] = field(default_factory=list)
    outputs: list[OutputSlot] = field(default_factory=list)
    params: list[PromotedParam] = field(default_factory=list)
    _type: tuple | str | None = field(default=None, repr=False, compare=False)

    @property
    def type_id(self) -> str:
        return type_id(self.id)

    def touch(self) -> None:
        """Record an interface change: instances are re-declared and the outer workflow re-planned."""
        self._type = None
        self.body._touch()

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def copy_into(self, owner: "Workflow") -> "Subgraph":
        """A copy of this definition for the workflow ``owner`` (its body's nodes and interface copied)."""
        import copy

        body = type(self.body)(owner=owner)
        self.body._copy_graph_into(body)
        return Subgraph(self.id, self.title, body, self.version, self.description, self.category,
                        copy.deepcopy(self.inputs), copy.deepcopy(self.outputs), copy.deepcopy(self.params))

    def slot(self, name: str):
        return next((s for s in (*self.inputs, *self.outputs, *self.params) if s.name == name), None)

    def node_type(self) -> NodeType:
        """The declaration instances are drawn, validated and wired by (recomputed after a change)."""
        stamp = self.body.root().revision  # an inner subgraph's change can change this declaration too
        if self._type is None or self._type[0] != stamp:
            if self._type == "declaring":  # it contains itself (validate says so): declare the bare interface
                return _bare(self)
            self._type = "declaring"
            try:
                self._type = (stamp, _declare(self))
            except BaseException:
                self._type = None
                raise
        return self._type[1]


def _declare(sub: Subgraph) -> NodeType:
    types = sub.body.registry

    def inner_decl(node_id: str, port: str):
        node = sub.body.nodes.get(node_id)
        spec = types.get(node.type) if node is not None and subgraph_id(node.type) != sub.id else None
        if spec is None:
            return None, None
        return spec.input(port), spec.param(port)

    inputs = []
    for slot in sub.inputs:
        required = False
        for node_id, port in slot.to:
            inp, _ = inner_decl(node_id, port)
            required |= inp is not None and not inp.optional
        inputs.append(Input(slot.name, slot.type, optional=not required, description=slot.description))
    params = []
    for promoted in sub.params:
        decl = next((p for p in (inner_decl(n, p)[1] for n, p in promoted.to) if p is not None), None)
        if decl is None:
            continue  # reported by validate()
        default = promoted.default if promoted.default is not None else decl.default
        try:
            default = decl.coerce(default)
        except ValueError:
            default = decl.default  # reported by validate()
        params.append(Param(promoted.name, decl.type, default, decl.min, decl.max, decl.step, decl.choices,
                            decl.hint, promoted.title or decl.description, decl.kind))
    outputs = [Output(s.name, s.type, s.description) for s in sub.outputs]
    has_output = any(
        (spec := types.get(n.type)) is not None and spec.output and subgraph_id(n.type) != sub.id
        for n in sub.body.nodes.values()
    )
    try:
        return NodeType(type_id(sub.id), sub.version, sub.title or sub.id, sub.category or CATEGORY, _never_run,
                        tuple(inputs), tuple(outputs), tuple(params), sub.description, output=has_output)
    except ValueError:  # clashing or malformed slot names: validate() names them; declare what is sound
        named = _sound([*inputs, *params])  # inputs and parameters share one namespace, outputs have their own
        return NodeType(type_id(sub.id), sub.version, sub.title or sub.id, sub.category or CATEGORY, _never_run,
                        tuple(p for p in named if isinstance(p, Input)), _sound(outputs),
                        tuple(p for p in named if isinstance(p, Param)), sub.description, output=has_output)


def _bare(sub: Subgraph) -> NodeType:
    return NodeType(type_id(sub.id), sub.version, sub.title or sub.id, sub.category or CATEGORY, _never_run,
                    _sound([Input(s.name, s.type, optional=True) for s in sub.inputs]),
                    _sound([Output(s.name, s.type) for s in sub.outputs]))


def _sound(ports: list) -> tuple:
    """The ports whose name is valid and not taken by an earlier one of the list."""
    from .node import NAME_RE

    seen: set[str] = set()
    kept = []
    for port in ports:
        if NAME_RE.match(port.name) and port.name not in seen:
            kept.append(port)
        seen.add(port.name)
    return tuple(kept)


def _never_run(ctx, **values):
    raise RuntimeError("a subgraph instance is expanded before it runs")


class WorkflowTypes:
    """The node types one workflow sees: the registry's, and a ``subgraph:<id>`` type per definition."""

    def __init__(self, base, subgraphs: dict[str, Subgraph]):
        self.base = base
        self.subgraphs = subgraphs

    def get(self, type_id: str) -> NodeType | None:
        sub_id = subgraph_id(type_id)
        if sub_id is None:
            return self.base.get(type_id)
        sub = self.subgraphs.get(sub_id)
        return sub.node_type() if sub is not None else None

    def __contains__(self, type_id: str) -> bool:
        return self.get(type_id) is not None

    def all(self) -> list[NodeType]:
        return self.base.all() + [s.node_type() for _, s in sorted(self.subgraphs.items())]

    def add(self, node_type: NodeType, replace: bool = False) -> NodeType:
        return self.base.add(node_type, replace)


def _end(pair: tuple[str, str]) -> str:
    return f"{pair[0]}.{pair[1]}"


def to_dict(sub: Subgraph) -> dict[str, Any]:
    """A definition in canonical form: identity, interface in the order the user gave it, then the body."""
    doc: dict[str, Any] = {"id": sub.id, "version": sub.version, "title": sub.title}
    if sub.description:
        doc["description"] = sub.description
    if sub.category != CATEGORY:
        doc["category"] = sub.category
    doc["inputs"] = [_slot_dict(s, {"to": [_end(t) for t in s.to]}) for s in sub.inputs]
    doc["outputs"] = [_slot_dict(s, {"from": _end(s.source)} if s.source else {}) for s in sub.outputs]
    if sub.params:
        doc["params"] = []
        for p in sub.params:
            entry: dict[str, Any] = {"name": p.name}
            if p.title:
                entry["title"] = p.title
            entry["to"] = [_end(t) for t in p.to]
            if p.default is not None:
                entry["default"] = p.default
            doc["params"].append(entry)
    doc.update(sub.body.graph_dict())
    return doc


def _slot_dict(slot, wiring: dict) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": slot.name, "type": str(slot.type)}
    if slot.description:
        entry["description"] = slot.description
    entry.update(wiring)
    return entry


def uses(sub: Subgraph) -> set[str]:
    """The ids of the definitions ``sub``'s body has instances of."""
    return {sid for n in sub.body.nodes.values() if (sid := subgraph_id(n.type)) is not None}


def definitions_inside_out(subgraphs: dict[str, Subgraph]) -> list[Subgraph]:
    """Every definition, each after the definitions it uses (a cycle is cut where it is met)."""
    order: list[Subgraph] = []
    state: dict[str, str] = {}

    def visit(sub_id: str) -> None:
        if state.get(sub_id) or sub_id not in subgraphs:
            return
        state[sub_id] = "visiting"
        for used in sorted(uses(subgraphs[sub_id])):
            visit(used)
        state[sub_id] = "done"
        order.append(subgraphs[sub_id])

    for sub_id in sorted(subgraphs):
        visit(sub_id)
    return order
