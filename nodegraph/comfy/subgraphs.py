"""ComfyUI subgraphs kept as ours: after the flat conversion, each instance's nodes are grouped back
into one of our subgraph instances.

``graph`` flattens every instance (inner node 1 of instance 30 is read as ``30-1``) and writes each
instance's promoted values into its own copies of the inner nodes, so the flat graph computes what
ComfyUI would and the converter maps it class by class, as for any file. Here, innermost instance first,
the nodes made from an instance go through ``make_subgraph``: the definition takes the ComfyUI
definition's name (its id a slug of it), its interface is ComfyUI's (names and order as there, inputs
no link reaches included, widget inputs and proxied widgets as promoted parameters), and the inner ids
lose the instance's prefix. Instances of one ComfyUI definition share one of ours: a new definition
that matches one already made from it (same nodes, links and interface) is dropped and its instance
retyped, the inner values it differs in kept as that instance's overrides.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..errors import NodegraphError
from ..node import NAME_RE
from ..subgraph import InputSlot, OutputSlot, Subgraph, subgraph_id
from ..subgraph_edit import make_subgraph, promote
from ..types import PortType
from ..workflow import Group, Link, Node, Workflow, natural_key
from .graph import LINK_SLOT, CInstance, Promoted

if TYPE_CHECKING:
    from .convert import _Converter

End = tuple[str, str]  # (node, port) inside a definition's body


def regroup(doc: dict, conv: "_Converter") -> dict:
    """``doc`` (the flat conversion) with the ComfyUI file's subgraph instances as ours; ``doc`` itself
    when it has none. The report says how many definitions were kept."""
    if not conv.graph.instances:
        return doc
    from ..document import from_dict  # the document module reads ComfyUI files through this package

    workflow, _ = from_dict(doc, conv.registry, library=False)
    _Regrouper(workflow, conv).run()
    conv.report.subgraphs = len(workflow.subgraphs)
    return workflow.to_dict()


class _Regrouper:
    def __init__(self, workflow: Workflow, conv: "_Converter"):
        from .convert import our_id

        self.wf, self.conv, self.instances = workflow, conv, conv.graph.instances
        self.our_id = our_id
        self.notes = conv.report.notes
        self.made: dict[str, str] = {}  # flat instance id -> our instance's id, for each one regrouped
        # flat instance id -> ComfyUI name -> ours, for its inputs, promoted widgets and outputs
        self.names_in: dict[str, dict[str, str]] = {}
        self.names_param: dict[str, dict[str, str]] = {}
        self.names_out: dict[str, dict[str, str]] = {}
        self.kept: dict[str, list[str]] = {}  # ComfyUI definition -> the definitions of ours made from it

    def run(self) -> None:
        for inst in sorted(self.instances.values(), key=lambda i: (-i.depth, natural_key(i.id))):
            self.one(inst)

    def one(self, inst: CInstance) -> None:
        members = self.members(inst)
        why = self.blocked(members) if members else "none of its nodes converted"
        saved = [Group(g.id, g.title, list(g.nodes), g.color) for g in self.wf.groups.values()]
        if why is None:
            try:
                instance = make_subgraph(self.wf, members, inst.name, self.free_id(inst.name))
            except NodegraphError as e:  # refused before it changed anything
                why = str(e)
        if why is not None:
            self.keep_flat(inst, members, why)
            return
        sub = self.wf.subgraphs[subgraph_id(instance.type)]
        if self.our_id(inst.id) not in self.wf.nodes:  # (taken only where ids were cut short)
            instance = _rename(self.wf, instance.id, self.our_id(inst.id))
        self.wf.groups = _groups_around(saved, set(members), instance.id)  # the instance stays in its groups
        self.interface(inst, sub, instance)
        self.strip(inst, sub)
        instance.position, instance.mode = inst.position, inst.mode
        if inst.title and inst.title != inst.name:
            instance.title = inst.title
        sub.body.groups = _groups_by_position(inst.groups, sub.body)
        sub.description = inst.description
        self.made[inst.id] = instance.id
        self.share(inst, sub, instance)

    # ----- which nodes, and whether they can be one ----------------------------------------------------
    def members(self, inst: CInstance) -> list[str]:
        """Our nodes made from the instance's inner nodes, and its nested instances (or their nodes)."""
        found = [n for flat in inst.members for n in self.conv.made.get(flat, []) if n in self.wf.nodes]
        for child in inst.children:
            found += [self.made[child]] if child in self.made else self.members(self.instances[child])
        return found

    def blocked(self, members: list[str]) -> str | None:
        """Why these nodes cannot become one instance: a link across the edge from a node without a type
        here (a placeholder) would leave its socket untyped."""
        inside = set(members)
        for link in self.wf.links:
            if (link.source in inside) != (link.target in inside):
                node = self.wf.nodes[link.source]
                if self.wf.registry.get(node.type) is None:
                    return f"node {node.id} ({node.type}), which did not convert, links across its edge"
        return None

    def keep_flat(self, inst: CInstance, members: list[str], why: str) -> None:
        self.notes.append(f"subgraph instance {inst.id} ({inst.name}): left as its inner nodes ({why})")
        if inst.mode != "active":  # what the instance's mode did to everything inside it
            for node_id in members:
                self.wf.nodes[node_id].mode = inst.mode

    def free_id(self, name: str) -> str:
        stem = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")[:48] or "subgraph"
        sub_id, n = stem, 2
        while sub_id in self.wf.subgraphs:
            sub_id, n = f"{stem}_{n}", n + 1
        return sub_id

    # ----- the interface, as ComfyUI's ---------------------------------------------------------------
    def interface(self, inst: CInstance, sub: Subgraph, instance: Node) -> None:
        """Replace the interface ``make_subgraph`` guessed from the links that crossed with ComfyUI's:
        its input and output names in its order, the widgets as promoted parameters holding this
        instance's values, and the instance's links moved onto them."""
        wf, body = self.wf, sub.body
        fed = wf.links_into(instance.id)
        into = {end: fed[slot.name] for slot in sub.inputs for end in slot.to}  # inner end -> outer link
        out_of = {slot.source: [l for l in wf.links_from(instance.id) if l.output == slot.name]
                  for slot in sub.outputs}
        wf.links = [l for l in wf.links if instance.id not in (l.source, l.target)]
        sub.inputs, sub.outputs, sub.params, instance.params = [], [], [], {}
        taken: set[str] = set()  # inputs and parameters share one namespace
        names_in = self.names_in[inst.id] = {}
        names_param = self.names_param[inst.id] = {}
        wired: list[tuple[str, list[End]]] = []
        for k, (name, _, _) in enumerate(inst.inputs):
            if k in inst.widget_slots:
                continue  # a widget on the instance: a promoted parameter below
            ends = [e for e in self.ends_of_input(inst, k) if e[0] in body.nodes]
            port_type = self.port_type(body, ends, into)
            if port_type is not None:
                names_in[name] = mine = _name(name, taken)
                sub.inputs.append(InputSlot(mine, port_type, ends))
                wired.append((mine, ends))
        for p in inst.promoted:
            ends = [e for e in self.ends_of_widget(p) if e[0] in body.nodes and _is_param(body, e)]
            mine = self.promote(inst, sub, p, ends, taken)
            if mine is not None:
                names_param[p.name] = mine
                wired.append((mine, ends))
        claimed = {e for _, ends in wired for e in ends}
        for link, ends in _by_source([(e, l) for e, l in into.items() if e not in claimed]):
            mine = _name(ends[0][1], taken)  # a link of the converter's own (no ComfyUI slot names it)
            sub.inputs.append(InputSlot(mine, self.port_type(body, ends, into), ends))
            wired.append((mine, ends))
        for mine, ends in wired:
            link = next((into[e] for e in ends if e in into), None)
            if link is not None:
                wf.links.append(Link(link.source, link.output, instance.id, mine, link.via))
        self.outputs(inst, sub, instance, out_of)
        sub.touch()
        wf._touch()

    def promote(self, inst: CInstance, sub: Subgraph, p: Promoted, ends: list[End], taken: set[str]) -> str | None:
        """One promoted widget as a promoted parameter; the instance's value is the inner one it holds."""
        where = f"subgraph instance {inst.id} ({inst.name}): its promoted widget {p.name!r}"
        if not ends:
            self.notes.append(f"{where} has no parameter of its own here (the inner value is kept; another "
                              f"instance's differing value becomes an override)")
            return None
        mine = _name(p.name, taken)
        try:
            promoted = promote(sub, ends[0][0], ends[0][1], mine)
        except NodegraphError as e:
            taken.discard(mine)
            self.notes.append(f"{where}: {e}")
            return None
        promoted.to += [e for e in ends[1:] if e not in promoted.to]
        promoted.title = p.label or ""
        return mine

    def outputs(self, inst: CInstance, sub: Subgraph, instance: Node, out_of: dict) -> None:
        taken: set[str] = set()
        names_out = self.names_out[inst.id] = {}
        for k, (name, _) in enumerate(inst.outputs):
            source = self.output_end(*inst.output_sources[k]) if k in inst.output_sources else None
            if source is None or source[0] not in sub.body.nodes or self.output_type(sub.body, source) is None:
                continue  # unconnected inside, passing an input straight through (linked around), or untyped
            names_out[name] = mine = _name(name, taken)
            sub.outputs.append(OutputSlot(mine, self.output_type(sub.body, source), source))
            for l in out_of.pop(source, []):
                self.wf.links.append(Link(instance.id, mine, l.target, l.input, l.via))
        for source, links in out_of.items():  # read outside, yet no ComfyUI output names it
            if links:
                mine = _name(source[1], taken)
                sub.outputs.append(OutputSlot(mine, self.output_type(sub.body, source), source))
                self.wf.links += [Link(instance.id, mine, l.target, l.input, l.via) for l in links]

    # ----- where a ComfyUI slot or widget lands among our nodes -----------------------------------------
    def ends_of_input(self, inst: CInstance, k: int) -> list[End]:
        ends = (e for node_id, name in inst.input_targets.get(k, []) for e in self.ends(node_id, name))
        return list(dict.fromkeys(ends))  # two ComfyUI inputs may become one port here (a folded sampler's)

    def ends(self, node_id: str, name: str) -> list[End]:
        """Our ports behind input ``name`` of inner node ``node_id`` (a nested instance's own slot)."""
        child = self.instances.get(node_id)
        if child is None:
            found = self.conv.ports.get((node_id, name))
            widget = self.conv.widget_params.get((node_id, name))
            return list(found) if found else [widget] if widget else []
        k = next((k for k, slot in enumerate(child.inputs) if slot[0] == name), None)
        if node_id not in self.made:
            return self.ends_of_input(child, k) if k is not None else []
        names = self.names_param if k in child.widget_slots else self.names_in
        mine = names[node_id].get(name)
        return [(self.made[node_id], mine)] if mine else []

    def ends_of_widget(self, p: Promoted) -> list[End]:
        return list(dict.fromkeys(e for node_id, widget in p.targets for e in self.widget_ends(node_id, widget)))

    def widget_ends(self, node_id: str, widget: str) -> list[End]:
        child = self.instances.get(node_id)
        if child is None:
            found = self.conv.widget_params.get((node_id, widget))
            return [found] if found else []
        if node_id in self.made:
            mine = self.names_param[node_id].get(widget)
            return [(self.made[node_id], mine)] if mine else []
        inner = next((q for q in child.promoted if q.name == widget), None)
        return self.ends_of_widget(inner) if inner else []

    def output_end(self, node_id: str, slot: int) -> End | None:
        """Our output behind output ``slot`` of inner node ``node_id``."""
        child = self.instances.get(node_id)
        if child is None:
            return None if node_id.startswith(LINK_SLOT) else self.conv.source(node_id, slot)
        if node_id in self.made:
            mine = self.names_out[node_id].get(child.outputs[slot][0]) if slot < len(child.outputs) else None
            return (self.made[node_id], mine) if mine else None
        inner = child.output_sources.get(slot)
        return self.output_end(*inner) if inner else None

    def port_type(self, body: Workflow, ends: list[End], into: dict) -> PortType | None:
        """The inner ports' type, else (a port of a node without a type here) what feeds it."""
        for node_id, port in ends:
            spec = body.registry.get(body.nodes[node_id].type)
            if spec is not None and spec.target_type(port) is not None:
                return spec.target_type(port)
        for end in ends:
            link = into.get(end)
            spec = self.wf.registry.get(self.wf.nodes[link.source].type) if link else None
            out = spec.output_port(link.output) if spec else None
            if out is not None:
                return out.type
        return None

    @staticmethod
    def output_type(body: Workflow, source: End) -> PortType | None:
        spec = body.registry.get(body.nodes[source[0]].type)
        out = spec.output_port(source[1]) if spec else None
        return out.type if out else None

    # ----- inside ids and layout as ComfyUI's definition has them ---------------------------------------
    def strip(self, inst: CInstance, sub: Subgraph) -> None:
        """Inner ids lose the instance's prefix (``30-1`` is ``1`` inside), positions its offset."""
        prefix = self.our_id(inst.id) + "-"
        mapping = {n: n[len(prefix):] for n in sub.body.nodes if n.startswith(prefix) and len(n) > len(prefix)}
        _rename_inside(sub, mapping)
        for node in sub.body.nodes.values():
            x, y = node.position
            node.position = (x - inst.offset[0], y - inst.offset[1])

    # ----- one definition for the instances of one ComfyUI definition ------------------------------------
    def share(self, inst: CInstance, sub: Subgraph, instance: Node) -> None:
        for kept_id in self.kept.get(inst.definition, []):
            kept = self.wf.subgraphs[kept_id]
            overrides = _differences(kept, sub)
            if overrides is not None:
                instance.type, instance.version, instance.overrides = kept.type_id, kept.version, overrides
                instance._digest = None
                del self.wf.subgraphs[sub.id]
                self.wf._touch()
                return
        self.kept.setdefault(inst.definition, []).append(sub.id)


# ----- small pieces -----------------------------------------------------------------------------------

def _name(name: str, taken: set[str]) -> str:
    """ComfyUI's name where it is a name here, else made into one; unique among ``taken``."""
    mine = name if NAME_RE.match(name) else re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "slot"
    if mine[0].isdigit():
        mine = f"_{mine}"
    base, n = mine, 2
    while mine in taken:
        mine, n = f"{base}_{n}", n + 1
    taken.add(mine)
    return mine


def _is_param(body: Workflow, end: End) -> bool:
    spec = body.registry.get(body.nodes[end[0]].type)
    return spec is not None and spec.param(end[1]) is not None


def _by_source(ends_links: list[tuple[End, Link]]) -> list[tuple[Link, list[End]]]:
    grouped: dict[tuple[str, str], tuple[Link, list[End]]] = {}
    for end, link in ends_links:
        grouped.setdefault((link.source, link.output), (link, []))[1].append(end)
    return list(grouped.values())


def _rename(graph: Workflow, old: str, new: str) -> Node:
    node = graph.nodes.pop(old)
    node.id = new
    graph.nodes[new] = node
    swap = lambda n: new if n == old else n  # noqa: E731
    graph.links = [Link(swap(l.source), l.output, swap(l.target), l.input, l.via) for l in graph.links]
    for group in graph.groups.values():
        group.nodes = [swap(n) for n in group.nodes]
    graph._touch()
    return node


def _rename_inside(sub: Subgraph, mapping: dict[str, str]) -> None:
    """Rename nodes of a definition's body that no instance overrides yet."""
    body, swap = sub.body, lambda n: mapping.get(n, n)
    body.nodes = {swap(k): node for k, node in body.nodes.items()}
    for node_id, node in body.nodes.items():
        node.id = node_id
    body.links = [Link(swap(l.source), l.output, swap(l.target), l.input, l.via) for l in body.links]
    for group in body.groups.values():
        group.nodes = [swap(n) for n in group.nodes]
    for slot in (*sub.inputs, *sub.params):
        slot.to = [(swap(n), p) for n, p in slot.to]
    for out in sub.outputs:
        out.source = (swap(out.source[0]), out.source[1]) if out.source else None
    sub.touch()


def _groups_around(saved: list[Group], inside: set[str], instance_id: str) -> dict[str, Group]:
    """The outer groups as they were, the instance standing in for the nodes it took."""
    groups = {}
    for group in saved:
        members = list(dict.fromkeys(instance_id if n in inside else n for n in group.nodes))
        groups[group.id] = Group(group.id, group.title, members, group.color)
    return groups


def _groups_by_position(groups: list[dict], body: Workflow) -> dict[str, Group]:
    """A definition's own groups around the body nodes they enclose (the converter's rule for the root)."""
    out = {}
    for n, group in enumerate(groups, 1):
        x, y, w, h = (float(v) for v in group["bounding"])
        members = [k for k, node in body.nodes.items()
                   if x <= node.position[0] <= x + w and y <= node.position[1] <= y + h]
        out[f"group{n}"] = Group(f"group{n}", group["title"], members, group["color"])
    return out


def _shape(sub: Subgraph) -> tuple:
    """What instances of a definition share: its nodes' types and modes, its links and interface."""
    nodes = sorted((k, n.type, n.version, n.mode) for k, n in sub.body.nodes.items())
    links = sorted((l.source, l.output, l.target, l.input) for l in sub.body.links)
    interface = ([(s.name, str(s.type), sorted(s.to)) for s in sub.inputs],
                 [(s.name, str(s.type), s.source) for s in sub.outputs],
                 [(p.name, sorted(p.to)) for p in sub.params])
    return nodes, links, interface


MISSING = object()


def _differences(kept: Subgraph, new: Subgraph) -> dict[str, dict[str, Any]] | None:
    """The overrides that make an instance of ``kept`` compute what ``new`` does, or None when the two
    differ in shape, or where no override can say the difference (a placeholder's values, an inner
    override to undo)."""
    if _shape(kept) != _shape(new):
        return None
    promoted = {end for p in new.params for end in p.to}
    overrides: dict[str, dict[str, Any]] = {}
    for node_id, ours in new.body.nodes.items():
        theirs = kept.body.nodes[node_id]
        for name in sorted(set(ours.params) | set(theirs.params)):
            value = ours.params.get(name, MISSING)
            if (node_id, name) in promoted or value == theirs.params.get(name, MISSING):
                continue
            if value is MISSING or new.body.registry.get(ours.type) is None:
                return None
            overrides.setdefault(node_id, {})[name] = value
        for path, values in ours.overrides.items():  # a nested instance's own values
            for name, value in values.items():
                if theirs.overrides.get(path, {}).get(name, MISSING) != value:
                    overrides.setdefault(f"{node_id}/{path}", {})[name] = value
        if any(name not in ours.overrides.get(path, {}) for path, v in theirs.overrides.items() for name in v):
            return None
    return overrides
