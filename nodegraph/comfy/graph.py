"""ComfyUI files read into one plain graph, whatever format they came in.

ComfyUI writes a workflow two ways: the API format its server runs (node id -> ``class_type`` and
``inputs`` by name, a link written ``["4", 1]``: node 4, output slot 1) and the UI format its editor
saves (``nodes`` with positional ``widgets_values``, a ``links`` table of ``[id, from, slot, to, slot,
type]`` rows or objects, groups, reroutes and subgraph definitions). Both become a :class:`ComfyGraph`:
each node's links by input name, its layout, its widget values as found. Reroute nodes and native
reroutes are followed (their positions become the link's route), subgraph instances are flattened into
their inner nodes (each instance is also recorded as a :class:`CInstance`, so the converter can group
its nodes back into one of our subgraphs), and nothing here knows our own node types: naming the
positional widget values is the mapping table's job.

An instance's promoted widgets are the frontend's two kinds: a definition input linked to an inner
widget (the instance shows it as a widget, its ``widgets_values`` holding one value per such input in
input order), and the older ``properties.proxyWidgets`` list of ``[inner node, widget]`` pairs (where
``"-1"`` names a definition input and ``widgets_values`` follows the list's order). Each instance's
values are written into its own copies of the inner nodes, so the flat graph computes what ComfyUI
would.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import WorkflowFileError
from ..workflow import natural_key

# LiteGraph's modes: always, on event, never, on trigger, bypass
MODES = {0: "active", 1: "active", 2: "muted", 3: "active", 4: "bypassed"}
SUBGRAPH_INPUT, SUBGRAPH_OUTPUT = -10, -20  # the ids a subgraph's own links use for its input and output sides
MAX_DEPTH = 16  # subgraphs nested deeper than this are refused (a definition that contains itself)
LINK_SLOT = "@"  # marks a link source that is a subgraph instance's input, resolved to what feeds it
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}  # the frontend's control_after_generate
PREVIEW = "$$"  # proxyWidgets entries for previews (no value) start with this


@dataclass
class CNode:
    """One ComfyUI node: its class, layout, widget values (named, or positional as a UI file has them)
    and, for each linked input, the (node id, output slot) that feeds it."""

    id: str
    class_type: str
    title: str | None = None
    position: tuple[float, float] | None = None
    mode: str = "active"
    values: dict[str, Any] = field(default_factory=dict)
    widgets: list | None = None
    links: dict[str, tuple[str, int]] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)  # input names in slot order (UI files)
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (name, type) per output slot (UI files)


@dataclass
class Promoted:
    """A widget an instance shows for its inner nodes: a definition input linked to widgets (``slot``
    set) or a proxied inner widget; ``value`` is the instance's own, None where it has none."""

    name: str
    targets: list[tuple[str, str]]  # (flat inner node or nested instance id, widget name)
    slot: int | None = None
    value: Any = None
    label: str | None = None


@dataclass
class CInstance:
    """One subgraph instance as read: enough to group its flattened nodes back into one node."""

    id: str  # flat id, like the inner nodes' prefix: "30", "30-5" inside 30
    definition: str  # the definition's UUID
    name: str
    description: str = ""
    parent: str | None = None
    depth: int = 1
    title: str | None = None
    position: tuple[float, float] = (0.0, 0.0)
    mode: str = "active"
    offset: tuple[float, float] = (0.0, 0.0)  # added to the definition's positions to place the inner nodes
    inputs: list[tuple[str, str, str | None]] = field(default_factory=list)  # (name, type, label) per slot
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (name, type) per slot
    input_targets: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # slot -> (inner node, input)
    widget_slots: set[int] = field(default_factory=set)  # input slots that feed an inner widget
    output_sources: dict[int, tuple[str, int]] = field(default_factory=dict)  # slot -> (inner node, slot)
    members: list[str] = field(default_factory=list)  # inner nodes (flat ids), nested instances apart
    children: list[str] = field(default_factory=list)  # nested instances (flat ids)
    promoted: list[Promoted] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)  # the definition's own groups, in its coordinates


@dataclass
class ComfyGraph:
    format: str  # "api" or "ui"
    nodes: dict[str, CNode] = field(default_factory=dict)
    instances: dict[str, CInstance] = field(default_factory=dict)  # subgraph instances, outer before inner
    groups: list[dict] = field(default_factory=list)  # {title, bounding: [x, y, w, h], color}
    via: dict[tuple[str, str], list[tuple[float, float]]] = field(default_factory=dict)  # (node, input) -> route
    notes: list[str] = field(default_factory=list)


# ----- telling the formats apart ----------------------------------------------------------------------

def _is_prompt(value: Any) -> bool:
    return (isinstance(value, dict) and bool(value)
            and all(isinstance(v, dict) and isinstance(v.get("class_type"), str) for v in value.values()))


def kind(doc: Any) -> str | None:
    """"api", "ui" or None (not a ComfyUI workflow)."""
    if not isinstance(doc, dict) or "format" in doc:
        return None
    if isinstance(doc.get("nodes"), list) and ("links" in doc or "last_node_id" in doc or "state" in doc):
        return "ui"
    if _is_prompt(doc) or _is_prompt(doc.get("prompt")):  # a prompt, or the body POSTed to /prompt
        return "api"
    return None


def _prompt_of(doc: dict) -> dict:
    return doc if _is_prompt(doc) else doc["prompt"]


def read(doc: dict, source: str = "<workflow>") -> ComfyGraph:
    """A ComfyUI document (either format) as a :class:`ComfyGraph`; a malformed one raises
    :class:`WorkflowFileError` naming the node."""
    found = kind(doc)
    if found == "api":
        return _read_api(_prompt_of(doc), source)
    if found == "ui":
        return _read_ui(doc, source)
    raise WorkflowFileError(f"{source}: not a ComfyUI workflow (neither its API nor its UI format)")


# ----- the API format ---------------------------------------------------------------------------------

def is_link(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))
            and not isinstance(value[0], bool) and isinstance(value[1], int) and not isinstance(value[1], bool))


def _read_api(prompt: dict, source: str) -> ComfyGraph:
    graph = ComfyGraph("api")
    for node_id, raw in prompt.items():
        inputs = raw.get("inputs", {})
        if not isinstance(inputs, dict):
            raise WorkflowFileError(f"{source}: ComfyUI node {node_id}: 'inputs' must be an object")
        meta = raw.get("_meta") if isinstance(raw.get("_meta"), dict) else {}
        node = CNode(str(node_id), raw["class_type"].strip(), title=meta.get("title"))  # "ConditioningAverage "
        for name, value in inputs.items():
            if is_link(value):
                node.links[name] = (str(value[0]), value[1])
            elif isinstance(value, dict) and set(value) == {"__value__"}:  # how the frontend writes a list value
                node.values[name] = value["__value__"]
            else:
                node.values[name] = value
        graph.nodes[node.id] = node
    for node in graph.nodes.values():
        for name, (src, _slot) in node.links.items():
            if src not in graph.nodes:
                raise WorkflowFileError(f"{source}: ComfyUI node {node.id} input {name!r} links to missing node {src}")
    _lay_out(graph)
    return graph


def _lay_out(graph: ComfyGraph) -> None:
    """API files have no positions: place nodes in columns by their depth in the graph."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(graph.nodes)
    g.add_edges_from((src, node.id) for node in graph.nodes.values() for src, _ in node.links.values())
    try:
        layers = list(nx.topological_generations(g))
    except nx.NetworkXUnfeasible:
        layers = [list(graph.nodes)]
    for column, layer in enumerate(layers):
        for row, node_id in enumerate(sorted(layer, key=natural_key)):
            graph.nodes[node_id].position = (column * 340, row * 260)


# ----- the UI format ----------------------------------------------------------------------------------

def _link_rows(raw_links: Any, source: str) -> dict[int, dict]:
    """Link id -> {origin, slot, target, target_slot, parent}, from 0.4's arrays or 1.x's objects."""
    rows = {}
    for raw in raw_links or []:
        if isinstance(raw, list) and len(raw) >= 5:
            link_id, origin, slot, target, target_slot = raw[:5]
            parent = None
        elif isinstance(raw, dict):
            link_id, origin, slot = raw.get("id"), raw.get("origin_id"), raw.get("origin_slot")
            target, target_slot, parent = raw.get("target_id"), raw.get("target_slot"), raw.get("parentId")
        else:
            raise WorkflowFileError(f"{source}: a ComfyUI link must be [id, from, slot, to, slot, type] or an object, "
                                    f"got {raw!r:.80}")
        rows[link_id] = {"origin": origin, "slot": _slot(slot), "target": target, "target_slot": target_slot,
                         "parent": parent}
    return rows


def _slot(value: Any) -> int:
    """A slot index; the frontend also writes them as numeric strings."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return 0


def _position(raw: Any) -> tuple[float, float] | None:
    if isinstance(raw, dict):  # some 0.4 files write {"0": x, "1": y}
        raw = [raw.get("0"), raw.get("1")]
    if (isinstance(raw, (list, tuple)) and len(raw) >= 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in raw[:2])):
        return float(raw[0]), float(raw[1])
    return None  # absent, or a number JSON allows but a position cannot be (1e400 reads as infinity)


def _read_ui(doc: dict, source: str) -> ComfyGraph:
    graph = ComfyGraph("ui")
    definitions = {}
    _collect_definitions(doc, definitions)
    reader = _UiReader(graph, definitions, source)
    reader.level(doc, prefix="", instance=None, offset=(0.0, 0.0), depth=0)
    reader.resolve()
    reader.apply_promoted_values()
    graph.groups = _groups(doc)
    return graph


def _groups(doc: dict) -> list[dict]:
    out = []
    for group in doc.get("groups") or []:
        if isinstance(group, dict) and isinstance(group.get("bounding"), list) and len(group["bounding"]) == 4:
            out.append({"title": str(group.get("title") or ""), "bounding": group["bounding"],
                        "color": group.get("color") if isinstance(group.get("color"), str) else None})
    return out


def _slots(raw: Any, labels: bool = False) -> list[tuple]:
    """A definition's inputs or outputs as (name, type[, label]) in slot order."""
    out = []
    for n, slot in enumerate(raw if isinstance(raw, list) else []):
        slot = slot if isinstance(slot, dict) else {}
        entry = (str(slot.get("name") or n), str(slot.get("type") or "*"))
        out.append(entry + ((slot.get("label") if isinstance(slot.get("label"), str) else None,) if labels else ()))
    return out


def _in_order(promoted: list[Promoted], values: list) -> None:
    """One value per promoted input in order; files that also kept each seed's control_after_generate
    value after it (a longer list) have those skipped, as the frontend does."""
    extra = len(values) - len(promoted)
    i = 0
    for p in promoted:
        if i >= len(values):
            break
        p.value = values[i]
        i += 1
        if extra > 0 and i < len(values) and isinstance(values[i], str) and values[i] in CONTROL_VALUES:
            i, extra = i + 1, extra - 1


def _proxy_widgets(properties: Any) -> list[tuple[str, str]] | None:
    """``properties.proxyWidgets`` as (inner node, widget) pairs (the frontend wrote it as a list or as
    JSON text of one); None when the instance has none."""
    raw = properties.get("proxyWidgets") if isinstance(properties, dict) else None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    if not isinstance(raw, list):
        return None
    return [(str(e[0]), str(e[1])) for e in raw if isinstance(e, list) and len(e) >= 2]


def _collect_definitions(doc: dict, into: dict) -> None:
    for sub in (doc.get("definitions") or {}).get("subgraphs") or []:
        if isinstance(sub, dict) and isinstance(sub.get("id"), str) and sub["id"] not in into:
            into[sub["id"]] = sub
            _collect_definitions(sub, into)


class _UiReader:
    """Reads one graph level after another (the root, then each subgraph instance's inner graph) into a
    flat set of nodes, then resolves every link to a real source node."""

    def __init__(self, graph: ComfyGraph, definitions: dict, source: str):
        self.graph, self.definitions, self.source = graph, definitions, source
        self.reroutes: dict[str, dict] = {}  # Reroute node id -> its input link
        self.instance_outputs: dict[tuple[str, int], tuple[str, int, list]] = {}  # (instance, slot) -> inner source
        self.instances: dict[str, CNode] = {}
        self.fed: dict[str, dict[str, tuple[str, int, list]]] = {}  # node -> input -> (source id, slot, route)
        self.widget_fed: set[tuple[str, str]] = set()  # (inner node, widget) a definition input feeds

    def level(self, doc: dict, prefix: str, instance: CInstance | None, offset, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise WorkflowFileError(f"{self.source}: subgraphs nested more than {MAX_DEPTH} deep "
                                    f"(one contains itself?)")
        links = _link_rows(doc.get("links"), self.source)
        extra = doc.get("extra") if isinstance(doc.get("extra"), dict) else {}
        # native reroutes: top-level in 1.x, in 'extra' (with the links' parents in linkExtensions) in 0.4
        reroute_points = {r.get("id"): r for r in (doc.get("reroutes") or extra.get("reroutes") or [])
                          if isinstance(r, dict)}
        for ext in extra.get("linkExtensions") or []:
            if isinstance(ext, dict) and ext.get("id") in links and links[ext["id"]]["parent"] is None:
                links[ext["id"]]["parent"] = ext.get("parentId")
        raw_nodes = [n for n in doc.get("nodes") or [] if isinstance(n, dict)]
        if instance is not None and raw_nodes:  # inner nodes land where the instance stood, in their own layout
            xs = [p[0] for p in (_position(n.get("pos")) for n in raw_nodes) if p]
            ys = [p[1] for p in (_position(n.get("pos")) for n in raw_nodes) if p]
            offset = instance.offset = (offset[0] - min(xs or [0]), offset[1] - min(ys or [0]))
        for raw in raw_nodes:
            node = self.node(raw, prefix, instance, offset, links, reroute_points)
            if raw["type"] == "Reroute":
                self.reroutes[node.id] = node
            elif raw["type"] in self.definitions:
                self.instance(raw, node, instance, depth)
            else:
                self.graph.nodes[node.id] = node
                if instance is not None:
                    instance.members.append(node.id)

    def node(self, raw: dict, prefix: str, instance: CInstance | None, offset, links: dict,
             reroute_points: dict) -> CNode:
        """One UI node (its links noted in ``fed``, resolved once every level is read)."""
        if "id" not in raw or not isinstance(raw.get("type"), str):
            raise WorkflowFileError(f"{self.source}: a ComfyUI node needs an id and a type, got {str(raw)[:80]}")
        node_id = f"{prefix}{raw['id']}"
        pos = _position(raw.get("pos"))
        title = raw.get("title") if isinstance(raw.get("title"), str) else None
        node = CNode(node_id, raw["type"].strip(), title=title,
                     position=(pos[0] + offset[0], pos[1] + offset[1]) if pos else None,
                     mode=MODES.get(raw.get("mode", 0), "active"))
        widgets = raw.get("widgets_values")
        if isinstance(widgets, dict):
            node.values.update(widgets)
        elif isinstance(widgets, list):
            node.widgets = list(widgets)
        for slot, port in enumerate(raw.get("inputs") or []):
            if not isinstance(port, dict):
                continue
            widget = port.get("widget") if isinstance(port.get("widget"), dict) else {}
            name = widget.get("name") or port.get("name") or str(slot)
            node.inputs.append(name)
            row = links.get(port.get("link"))
            if row is None:
                continue
            route = self._route(row, reroute_points, offset)
            if row["origin"] == SUBGRAPH_INPUT:
                origin = f"{LINK_SLOT}{instance.id if instance else ''}"
                if instance is not None:
                    instance.input_targets.setdefault(row["slot"], []).append((node_id, name))
                    if widget:
                        instance.widget_slots.add(row["slot"])
                        self.widget_fed.add((node_id, name))
            else:
                origin = f"{prefix}{row['origin']}"
            self.fed.setdefault(node_id, {})[name] = (origin, row["slot"], route)
        for port in raw.get("outputs") or []:
            if isinstance(port, dict):
                node.outputs.append((str(port.get("name") or ""), str(port.get("type") or "*")))
        return node

    def instance(self, raw: dict, node: CNode, parent: CInstance | None, depth: int) -> None:
        """A subgraph instance: its record, then its definition's nodes read as the next level."""
        sub = self.definitions[raw["type"]]
        self.instances[node.id] = node
        description = sub.get("description") if isinstance(sub.get("description"), str) else ""
        record = CInstance(node.id, raw["type"], str(sub.get("name") or raw["type"]), description,
                           parent.id if parent else None, depth + 1, node.title, node.position or (0.0, 0.0),
                           node.mode, inputs=_slots(sub.get("inputs"), labels=True),
                           outputs=_slots(sub.get("outputs")), groups=_groups(sub))
        self.graph.instances[node.id] = record
        if parent is not None:
            parent.children.append(node.id)
        self.level(sub, f"{node.id}-", record, node.position or (0, 0), depth + 1)
        for row in _link_rows(sub.get("links"), self.source).values():
            if row["target"] == SUBGRAPH_OUTPUT:
                origin = (f"{LINK_SLOT}{node.id}" if row["origin"] == SUBGRAPH_INPUT
                          else f"{node.id}-{row['origin']}")
                self.instance_outputs[(node.id, _slot(row["target_slot"]))] = (origin, row["slot"], [])
                if row["origin"] != SUBGRAPH_INPUT:
                    record.output_sources[_slot(row["target_slot"])] = (origin, row["slot"])
        record.promoted = self.promoted(record, raw)

    def promoted(self, record: CInstance, raw: dict) -> list[Promoted]:
        """The instance's promoted widgets with its own values, in the order it shows them."""
        inputs = [Promoted(record.inputs[k][0], [t for t in record.input_targets.get(k, []) if t in self.widget_fed],
                           k, label=record.inputs[k][2])
                  for k in sorted(record.widget_slots) if k < len(record.inputs)]
        values = raw.get("widgets_values")
        named = values if isinstance(values, dict) else None  # by name: the form the frontend plans to write
        values = values if isinstance(values, list) else []
        proxies = _proxy_widgets(raw.get("properties"))
        if proxies is None:
            for p in inputs if named is not None else ():
                p.value = named.get(p.name)
            if named is None:
                _in_order(inputs, values)
            return inputs
        shown: list[Promoted] = []
        for i, (inner, widget) in enumerate(proxies):
            if widget.startswith(PREVIEW):
                continue  # a preview shown on the instance: no value
            found = self.proxied(record, inner, widget, inputs)
            if found is None:
                self.graph.notes.append(f"ComfyUI subgraph instance {record.id}: its promoted widget {widget!r} of "
                                        f"inner node {inner} is not there; left out")
                continue
            value = named.get(widget) if named is not None else values[i] if i < len(values) else None
            if value is not None:  # none (a hole): the inner widget's value stands
                found.value = value
            if found not in shown:
                shown.append(found)
        return shown + [p for p in inputs if p not in shown]

    def proxied(self, record: CInstance, inner: str, widget: str, inputs: list[Promoted]) -> Promoted | None:
        """What a proxyWidgets entry shows: a definition input ("-1", or an inner widget one feeds), or
        an inner widget of its own."""
        if inner == "-1":
            return next((p for p in inputs if p.name == widget), None)
        flat = f"{record.id}-{inner}"
        linked = next((p for p in inputs if (flat, widget) in p.targets), None)
        if linked is not None:
            return linked
        if flat not in self.graph.nodes and flat not in self.graph.instances:
            return None
        own = Promoted(widget, [(flat, widget)])
        inputs.append(own)  # a second entry for the same widget finds it
        return own

    def apply_promoted_values(self) -> None:
        """Each instance's promoted values into its own copies of the inner nodes; inner instances first,
        so an outer instance's value wins where its widget drives an inner instance's."""
        for record in reversed(list(self.graph.instances.values())):
            for p in record.promoted:
                if p.value is None or (p.slot is not None and self._fed_from_outside(record.id, p.name)):
                    continue  # no value of its own, or a link feeds it
                for node_id, widget in self._deep(p.targets):
                    self.graph.nodes[node_id].values[widget] = p.value

    def _deep(self, targets, depth: int = 0):
        """(inner node, widget) pairs behind promoted widgets, through nested instances' own."""
        for node_id, widget in targets:
            record = self.graph.instances.get(node_id)
            if record is None:
                if node_id in self.graph.nodes:
                    yield node_id, widget
            elif depth < MAX_DEPTH:
                for p in record.promoted:
                    if p.name == widget:
                        yield from self._deep(p.targets, depth + 1)

    def _fed_from_outside(self, instance: str, name: str) -> bool:
        feed = self.fed.get(instance, {}).get(name)
        return feed is not None and self._source(feed[0], feed[1], []) is not None

    @staticmethod
    def _route(row: dict, reroutes: dict, offset) -> list[tuple[float, float]]:
        """A native reroute chain's points, from the link's origin towards its target."""
        points, seen, parent = [], set(), row.get("parent")
        while parent is not None and parent in reroutes and parent not in seen:
            seen.add(parent)
            pos = _position(reroutes[parent].get("pos"))
            if pos:
                points.append((pos[0] + offset[0], pos[1] + offset[1]))
            parent = reroutes[parent].get("parentId")
        return points[::-1]

    def _source(self, origin: str, slot: int, route: list, seen: frozenset = frozenset()):
        """Follow Reroute nodes, subgraph outputs and subgraph inputs to the node that really feeds a link."""
        if origin in seen:
            raise WorkflowFileError(f"{self.source}: ComfyUI reroutes or subgraphs link in a circle at {origin}")
        seen = seen | {origin}
        if origin in self.reroutes:
            reroute = self.reroutes[origin]
            feed = next(iter(self.fed.get(origin, {}).values()), None)  # a Reroute has one input
            if feed is None:
                return None
            src, src_slot, before = feed
            return self._source(src, src_slot, before + ([reroute.position] if reroute.position else []) + route, seen)
        if origin in self.instances:
            inner = self.instance_outputs.get((origin, slot))
            return None if inner is None else self._source(inner[0], inner[1], route, seen)
        if origin.startswith(LINK_SLOT):
            instance = origin[len(LINK_SLOT):]  # slot is the definition's input slot: name it by the definition
            record = self.graph.instances.get(instance)
            names = [name for name, _, _ in record.inputs] if record else []
            name = names[slot] if slot < len(names) else None
            feed = self.fed.get(instance, {}).get(name)
            if feed is None:
                return None
            src, src_slot, before = feed
            return self._source(src, src_slot, before + route, seen)
        if origin not in self.graph.nodes:
            return None
        return origin, slot, route

    def resolve(self) -> None:
        for node_id, inputs in self.fed.items():
            node = self.graph.nodes.get(node_id)
            if node is None:
                continue  # a link into a Reroute node or a subgraph instance: followed from the far side
            for name, (origin, slot, route) in inputs.items():
                self._link(node, name, origin, slot, route)

    def _link(self, node: CNode, name: str, origin: str, slot: int, route: list) -> None:
        found = self._source(origin, slot, route)
        if found is None and (node.id, name) in self.widget_fed:
            return  # a promoted widget the instance gives a value (apply_promoted_values)
        if found is None:
            self.graph.notes.append(f"ComfyUI node {node.id} input {name!r}: its link leads nowhere; left unlinked")
            return
        src, src_slot, points = found
        node.links[name] = (src, src_slot)
        if points:
            self.graph.via[(node.id, name)] = points


def loads_png_chunks(info: dict) -> dict | None:
    """The ComfyUI document a PNG carries in its text chunks: the editor's ``workflow`` (layout and all)
    when it parses, else the server's ``prompt``."""
    for key in ("workflow", "prompt"):
        text = info.get(key)
        if isinstance(text, str):
            try:
                doc = json.loads(text)
            except ValueError:
                continue
            if kind(doc):
                return doc
    return None
