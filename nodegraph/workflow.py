"""The workflow document: nodes, links, groups and metadata, with one canonical JSON form.

A workflow is changed only through its methods (``add_node``, ``connect``,
``set_param``, ...): they check what they are given against the node
declarations, so an in-memory workflow never holds a value the file format
would refuse, and they bump ``revision`` so the engine knows when to re-plan.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import NodegraphError, ParamError
from .migrations import FORMAT, VERSION
from .registry import REGISTRY, Registry
from .subgraph import Subgraph, WorkflowTypes, subgraph_id
from .validate import link_issue

NODE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MODES = ("active", "muted", "bypassed")


class LinkError(NodegraphError):
    """A link was refused; the message says which ports and why."""


def natural_key(text: str) -> list:
    """Sort 'n2' before 'n10'."""
    return [int(t) if i % 2 else t for i, t in enumerate(re.split(r"(\d+)", text))]


@dataclass
class Node:
    id: str
    type: str
    version: int
    params: dict[str, Any] = field(default_factory=dict)
    mode: str = "active"
    position: tuple[float, float] = (0, 0)
    title: str | None = None
    #: a subgraph instance's own values for inner parameters: inner node path -> {parameter: value}
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    _digest: str | None = field(default=None, repr=False, compare=False)

    def digest(self) -> str:
        """Hash of type, version and parameters: the node's own part of its fingerprint."""
        if self._digest is None:
            text = json.dumps([self.type, self.version, self.params, self.overrides], sort_keys=True,
                              separators=(",", ":"))
            self._digest = hashlib.sha256(text.encode()).hexdigest()
        return self._digest


@dataclass(frozen=True)
class Link:
    source: str
    output: str
    target: str
    input: str
    #: reroute points the editor draws the link through (layout only: not part of the link's identity)
    via: tuple[tuple[float, float], ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        return f"{self.source}.{self.output} -> {self.target}.{self.input}"


@dataclass
class Group:
    """A titled frame around some nodes; the editor draws it around its members."""

    id: str
    title: str
    nodes: list[str] = field(default_factory=list)
    color: str | None = None


class Workflow:
    """A graph of nodes. ``owner`` is set for the body of a subgraph: the workflow that defines it,
    whose definitions and node types the body shares and whose revision its changes bump."""

    def __init__(self, registry: Registry | WorkflowTypes | None = None, owner: "Workflow | None" = None):
        self.owner = owner
        self.subgraphs: dict[str, Subgraph] = owner.subgraphs if owner is not None else {}
        base = registry.base if isinstance(registry, WorkflowTypes) else registry
        self.registry = owner.registry if owner is not None else WorkflowTypes(base or REGISTRY, self.subgraphs)
        self.nodes: dict[str, Node] = {}
        self.links: list[Link] = []
        self.groups: dict[str, Group] = {}
        self.metadata: dict[str, Any] = {}
        self.base_dir: Path | None = None  # relative input paths resolve against the file's folder
        self.revision = 0  # bumped by every change
        self.structure_revision = 0  # bumped by changes to nodes, links or modes (what the plan depends on)
        self.problems: list = []  # set by load(strict=False)
        self.imported = None  # the ComfyUI import report, for a workflow converted from a ComfyUI file

    # ----- reading -------------------------------------------------------------------------
    def node(self, node_id: str) -> Node:
        try:
            return self.nodes[node_id]
        except KeyError:
            raise NodegraphError(f"no node with id {node_id!r}") from None

    def links_into(self, node_id: str) -> dict[str, Link]:
        return {link.input: link for link in self.links if link.target == node_id}

    def links_from(self, node_id: str) -> Iterator[Link]:
        return (link for link in self.links if link.source == node_id)

    def root(self) -> "Workflow":
        """The outermost workflow: this one, unless this is a subgraph's body."""
        return self if self.owner is None else self.owner.root()

    def copy(self) -> "Workflow":
        other = Workflow(self.registry)
        self._copy_graph_into(other)
        for sub_id, sub in self.subgraphs.items():
            other.subgraphs[sub_id] = sub.copy_into(other)
        other.metadata = copy.deepcopy(self.metadata)
        other.base_dir = self.base_dir
        return other

    def _copy_graph_into(self, other: "Workflow") -> None:
        other.nodes = {k: copy.deepcopy(v) for k, v in self.nodes.items()}
        other.links = list(self.links)
        other.groups = copy.deepcopy(self.groups)

    # ----- editing -------------------------------------------------------------------------
    def _touch(self, node: Node | None = None) -> None:
        """Record a change; a change to one node's parameters leaves the graph's structure as it was."""
        if node is not None:
            node._digest = None
        self._bump(structure=node is None)

    def _bump(self, structure: bool) -> None:
        self.revision += 1
        if structure:
            self.structure_revision += 1
        if self.owner is not None:  # a subgraph's body: the workflow that uses it changed too
            self.owner._bump(structure)

    def new_id(self, type_id: str) -> str:
        stem = re.sub(r"[^A-Za-z0-9_-]", "_", type_id.rsplit(".", 1)[-1])[:50]
        n = 1
        while f"{stem}{n}" in self.nodes:
            n += 1
        return f"{stem}{n}"

    def add_node(
        self,
        type_id: str,
        node_id: str | None = None,
        params: dict[str, Any] | None = None,
        position: tuple[float, float] = (0, 0),
        mode: str = "active",
        title: str | None = None,
    ) -> Node:
        node_type = self.registry.get(type_id)
        if node_type is None:
            raise NodegraphError(f"unknown node type {type_id!r}")
        node_id = node_id or self.new_id(type_id)
        if not NODE_ID_RE.match(node_id):
            raise NodegraphError(f"node id {node_id!r} must be 1-64 letters, digits, '_' or '-'")
        if node_id in self.nodes:
            raise NodegraphError(f"node id {node_id!r} is already used")
        if mode not in MODES:
            raise NodegraphError(f"mode must be one of {', '.join(MODES)}")
        node = Node(node_id, type_id, node_type.version, node_type.defaults(), mode, _position(position), title)
        self.nodes[node_id] = node
        for name, value in (params or {}).items():
            self.set_param(node_id, name, value)
        self._touch()
        return node

    def remove_node(self, node_id: str) -> None:
        self.node(node_id)
        del self.nodes[node_id]
        self.links = [l for l in self.links if node_id not in (l.source, l.target)]
        for group in self.groups.values():
            if node_id in group.nodes:
                group.nodes.remove(node_id)
        self._touch()

    def set_param(self, node_id: str, name: str, value: Any) -> None:
        """Set a parameter. ``node_id`` may be a path into a subgraph instance (``hires/sampler``): the
        value then overrides that inner parameter for this one instance."""
        value = self.check_param(node_id, name, value)
        instance, _, inner = node_id.partition("/")
        node = self.nodes[instance]
        if inner:
            node.overrides.setdefault(inner, {})[name] = value
        else:
            node.params[name] = value
        self._touch(node)

    def clear_override(self, path: str, name: str) -> None:
        """Let ``path``'s parameter follow the subgraph's definition again."""
        instance, _, inner = path.partition("/")
        node = self.node(instance)
        values = node.overrides.get(inner, {})
        values.pop(name, None)
        if not values:
            node.overrides.pop(inner, None)
        self._touch(node)

    def param_decl(self, node_id: str, name: str):
        """The declaration of a node's parameter, or :class:`ParamError` listing the known ones."""
        node = self.inner_node(node_id)
        node_type = self.registry.get(node.type)
        param = node_type.param(name) if node_type else None
        if param is None:
            known = ", ".join(p.name for p in node_type.params) if node_type else "none"
            raise ParamError(node_id, name, f"no such parameter (known: {known})")
        return param

    def inner_node(self, path: str) -> Node:
        """The node a path names: ``sampler`` here, or ``hires/sampler`` inside instance ``hires``'s
        definition (the definition's node: an instance's overrides are on the instance)."""
        head, _, rest = path.partition("/")
        node = self.node(head)
        if not rest:
            return node
        sub = self.subgraphs.get(subgraph_id(node.type) or "")
        if sub is None:
            raise NodegraphError(f"node {head!r} is not a subgraph, so {path!r} names nothing")
        try:
            return sub.body.inner_node(rest)
        except NodegraphError as e:
            raise NodegraphError(f"{e} in subgraph {sub.id!r}") from None

    def check_param(self, node_id: str, name: str, value: Any) -> Any:
        """The value ``set_param`` would store (in canonical form), without changing anything."""
        param = self.param_decl(node_id, name)
        try:
            return param.coerce(value)
        except ValueError as e:
            raise ParamError(node_id, name, str(e)) from None

    def add_subgraph(self, sub: Subgraph) -> Subgraph:
        if sub.id in self.subgraphs:
            raise NodegraphError(f"a subgraph with id {sub.id!r} is already defined")
        self.root().subgraphs[sub.id] = sub
        self._touch()
        return sub

    def remove_subgraph(self, sub_id: str) -> None:
        users = [n.id for n in self.root().all_instances() if subgraph_id(n.type) == sub_id]
        if users:
            raise NodegraphError(f"subgraph {sub_id!r} is still used by {', '.join(users)}")
        self.subgraphs.pop(sub_id, None)
        self._touch()

    def all_instances(self):
        """Every subgraph instance, here and in the definitions' bodies."""
        for graph in (self, *(s.body for s in self.subgraphs.values())):
            yield from (n for n in graph.nodes.values() if subgraph_id(n.type) is not None)

    def set_mode(self, node_id: str, mode: str) -> None:
        if mode not in MODES:
            raise NodegraphError(f"mode must be one of {', '.join(MODES)}")
        self.node(node_id).mode = mode
        self._touch()

    def set_position(self, node_id: str, position: tuple[float, float]) -> None:
        self.node(node_id).position = _position(position)  # layout only: the plan is unchanged

    def set_title(self, node_id: str, title: str | None) -> None:
        self.node(node_id).title = title or None

    def connect(self, source: str, output: str, target: str, input: str) -> Link:
        """Link ``source.output`` into ``target.input`` (replacing what fed it), or explain the refusal."""
        reason = self.link_problem(source, output, target, input)
        if reason:
            raise LinkError(f"cannot link {source}.{output} to {target}.{input}: {reason}")
        link = Link(source, output, target, input)
        self.links = [l for l in self.links if not (l.target == target and l.input == input)] + [link]
        self._touch()
        return link

    def set_route(self, target: str, input: str, via) -> None:
        """Draw the link into ``target.input`` through these reroute points (layout only: nothing re-runs)."""
        for i, link in enumerate(self.links):
            if link.target == target and link.input == input:
                self.links[i] = dataclasses.replace(link, via=tuple(_position(p) for p in via))
                return
        raise NodegraphError(f"no link into {target}.{input}")

    def disconnect(self, target: str, input: str) -> None:
        self.links = [l for l in self.links if not (l.target == target and l.input == input)]
        self._touch()

    def link_problem(self, source: str, output: str, target: str, input: str) -> str | None:
        """Why a link would be illegal (unknown port, type mismatch, cycle), or None."""
        if source not in self.nodes or target not in self.nodes:
            return "no such node"
        for node_id in (source, target):
            if self.registry.get(self.nodes[node_id].type) is None:
                return f"'{node_id}' has an unknown node type"
        issue = link_issue(self.registry, self.nodes[source], output, self.nodes[target], input)
        if issue:
            return issue[2]
        if source == target or self._reaches(target, source):
            return "it would make a cycle"
        return None

    def _reaches(self, start: str, goal: str) -> bool:
        children: dict[str, list[str]] = {}
        for l in self.links:
            children.setdefault(l.source, []).append(l.target)
        seen, stack = set(), [start]
        while stack:
            here = stack.pop()
            if here == goal:
                return True
            if here not in seen:
                seen.add(here)
                stack.extend(children.get(here, ()))
        return False

    def add_group(self, title: str, nodes: list[str], color: str | None = None, group_id: str | None = None) -> Group:
        group_id = group_id or next(f"group{n}" for n in range(1, len(self.groups) + 2) if f"group{n}" not in self.groups)
        for node_id in nodes:
            self.node(node_id)
        group = Group(group_id, title, list(nodes), color)
        self.groups[group_id] = group
        return group

    def remove_group(self, group_id: str) -> None:
        self.groups.pop(group_id, None)

    # ----- the canonical file form -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"format": FORMAT, "version": VERSION if self.subgraphs else 1}
        if self.metadata:
            doc["metadata"] = sorted_deep(self.metadata)
        doc.update(self.graph_dict())
        if self.subgraphs:
            doc["subgraphs"] = [self.subgraphs[k].to_dict() for k in sorted(self.subgraphs, key=natural_key)]
        return doc

    def graph_dict(self) -> dict[str, Any]:
        """Nodes, links and groups in canonical form (a workflow's, or a subgraph's body)."""
        nodes = []
        for node_id in sorted(self.nodes, key=natural_key):
            node = self.nodes[node_id]
            entry: dict[str, Any] = {"id": node.id, "type": node.type, "version": node.version}
            if node.title:
                entry["title"] = node.title
            entry["mode"] = node.mode
            entry["position"] = list(node.position)
            entry["params"] = {k: node.params[k] for k in sorted(node.params)}
            if node.overrides:
                entry["overrides"] = {path: {k: v[k] for k in sorted(v)}
                                      for path, v in sorted(node.overrides.items(), key=lambda kv: natural_key(kv[0]))}
            nodes.append(entry)
        links = []
        for l in sorted(self.links, key=lambda l: (natural_key(l.target), l.input)):
            entry = {"from": f"{l.source}.{l.output}", "to": f"{l.target}.{l.input}"}
            if l.via:
                entry["via"] = [list(p) for p in l.via]
            links.append(entry)
        groups = []
        for group_id in sorted(self.groups, key=natural_key):
            g = self.groups[group_id]
            entry = {"id": g.id, "title": g.title, "nodes": sorted(g.nodes, key=natural_key)}
            if g.color:
                entry["color"] = g.color
            groups.append(entry)
        doc: dict[str, Any] = {"nodes": nodes, "links": links}
        if groups:
            doc["groups"] = groups
        return doc

    def dumps(self) -> str:
        """The canonical text: stable order, short lists and objects on one line, a final newline."""
        return _format(self.to_dict(), 0) + "\n"


def sorted_deep(value: Any) -> Any:
    """``value`` with every object's keys in sorted order (free-form metadata diffs cleanly)."""
    if isinstance(value, dict):
        return {k: sorted_deep(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_deep(v) for v in value]
    return value


def _position(position) -> tuple[float, float]:
    x, y = position
    return (_tidy_number(x), _tidy_number(y))


def _tidy_number(v: float) -> float | int:
    v = round(float(v), 1)
    return int(v) if v.is_integer() else v


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _format(value: Any, indent: int) -> str:
    """JSON with keys in the order given (metadata keys sorted) and short flat containers inline."""
    dump = lambda v: json.dumps(v, ensure_ascii=False, allow_nan=False)  # noqa: E731
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        if all(_scalar(v) for v in value.values()):
            flat = "{" + ", ".join(f"{dump(k)}: {dump(v)}" for k, v in value.items()) + "}"
            if len(flat) + len(pad) <= 100:
                return flat
        items = [f"{inner}{dump(k)}: {_format(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        if all(_scalar(v) for v in value):
            flat = "[" + ", ".join(dump(v) for v in value) + "]"
            if len(flat) + len(pad) <= 100:
                return flat
        return "[\n" + ",\n".join(inner + _format(v, indent + 1) for v in value) + "\n" + pad + "]"
    return dump(value)
