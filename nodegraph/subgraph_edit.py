"""Editing subgraphs: make one from a selection, unpack an instance, and change a definition's interface.

Each edit keeps every graph that uses the definition consistent (links and parameters of instances
follow a renamed or removed slot), so the editor, scripts and the undo stack only ever see valid
workflows. ``graph`` is the workflow or subgraph body being edited; definitions always live in the
outermost workflow.
"""

from __future__ import annotations

import re

from .errors import NodegraphError
from .node import NAME_RE
from .subgraph import InputSlot, OutputSlot, PromotedParam, Subgraph, definitions_inside_out, subgraph_id, type_id, uses
from .workflow import NODE_ID_RE, Group, Link, Node, Workflow, _position, natural_key


def make_subgraph(graph: Workflow, node_ids, title: str = "Subgraph", sub_id: str | None = None) -> Node:
    """Move ``node_ids`` into a new definition and put one instance of it where they were.

    Links that cross the selection become the interface: one input per outside output feeding in
    (named after the first inner port it feeds), one output per inner output read from outside.
    """
    chosen = sorted(dict.fromkeys(node_ids), key=natural_key)
    if not chosen:
        raise NodegraphError("select the nodes to make a subgraph of")
    for node_id in chosen:
        graph.node(node_id)
    inside = set(chosen)
    _check_closed(graph, inside)
    root = graph.root()
    sub_id = sub_id or _free_id(_slug(title), root.subgraphs)
    if sub_id in root.subgraphs:
        raise NodegraphError(f"a subgraph with id {sub_id!r} is already defined")
    body = Workflow(owner=root)
    for node_id in chosen:
        body.nodes[node_id] = graph.nodes[node_id]
    body.links = [l for l in graph.links if l.source in inside and l.target in inside]
    for group in [g for g in graph.groups.values() if g.nodes and set(g.nodes) <= inside]:
        body.groups[group.id] = Group(group.id, group.title, list(group.nodes), group.color)
    sub = Subgraph(sub_id, title, body)

    names: set[str] = set()
    incoming: dict[tuple[str, str], InputSlot] = {}
    outgoing: dict[tuple[str, str], OutputSlot] = {}
    outer: list[tuple[str, str, str, str]] = []  # links the instance takes part in, as (source, output, target, input)
    types = graph.registry
    for link in graph.links:
        if link.target in inside and link.source not in inside:
            slot = incoming.get((link.source, link.output))
            if slot is None:
                out = types.get(graph.nodes[link.source].type).output_port(link.output)
                slot = incoming[(link.source, link.output)] = InputSlot(_fresh(link.input, names), out.type)
                sub.inputs.append(slot)
                outer.append((link.source, link.output, "", slot.name))
            slot.to.append((link.target, link.input))
        elif link.source in inside and link.target not in inside:
            slot = outgoing.get((link.source, link.output))
            if slot is None:
                out = types.get(graph.nodes[link.source].type).output_port(link.output)
                slot = outgoing[(link.source, link.output)] = OutputSlot(_fresh(link.output, set(s.name for s in
                                                                          sub.outputs)), out.type,
                                                                         (link.source, link.output))
                sub.outputs.append(slot)
            outer.append(("", slot.name, link.target, link.input))

    xs = [graph.nodes[n].position[0] for n in chosen]
    ys = [graph.nodes[n].position[1] for n in chosen]
    graph.links = [l for l in graph.links if l.source not in inside and l.target not in inside]
    for node_id in chosen:
        del graph.nodes[node_id]
    for group in list(graph.groups.values()):
        group.nodes = [n for n in group.nodes if n not in inside]
        if not group.nodes and group.id in body.groups:
            del graph.groups[group.id]
    root.subgraphs[sub_id] = sub
    instance = graph.add_node(type_id(sub_id), _free_id(sub_id.replace("-", "_"), graph.nodes),
                              position=((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2))
    for source, output, target, input in outer:
        graph.connect(source or instance.id, output, target or instance.id, input)
    enclosing = _enclosing(graph)
    if enclosing is not None:
        _route_interface_through(enclosing, sub, instance.id, inside, names, outgoing)
    return instance


def _route_interface_through(enclosing: Subgraph, sub: Subgraph, instance_id: str, inside: set[str],
                             names: set[str], outgoing: dict) -> None:
    """Made inside another subgraph's body: the enclosing interface's wires into the moved nodes now
    go through the new instance, and its instances' overrides of them one level deeper."""
    for slot in enclosing.inputs:
        moved = [end for end in slot.to if end[0] in inside]
        if moved:
            new = InputSlot(_fresh(moved[0][1], names), slot.type, moved)
            sub.inputs.append(new)
            slot.to = [end for end in slot.to if end[0] not in inside] + [(instance_id, new.name)]
    for promoted in enclosing.params:
        moved = [end for end in promoted.to if end[0] in inside]
        if moved:
            new = PromotedParam(_fresh(promoted.name, names), moved, promoted.default, promoted.title)
            sub.params.append(new)
            promoted.to = [end for end in promoted.to if end[0] not in inside] + [(instance_id, new.name)]
    for slot in enclosing.outputs:
        if slot.source is not None and slot.source[0] in inside:
            out = outgoing.get(slot.source)
            if out is None:
                out = outgoing[slot.source] = OutputSlot(_fresh(slot.source[1], {o.name for o in sub.outputs}),
                                                         slot.type, slot.source)
                sub.outputs.append(out)
            slot.source = (instance_id, out.name)
    for graph, node in _instances(enclosing):
        node.overrides = {(f"{instance_id}/{path}" if path.partition("/")[0] in inside else path): values
                          for path, values in node.overrides.items()}
        graph._touch(node)
    sub.touch()
    enclosing.touch()


def _enclosing(graph: Workflow) -> Subgraph | None:
    """The definition whose body ``graph`` is, or None for the outermost workflow."""
    return next((s for s in graph.root().subgraphs.values() if s.body is graph), None)


def _check_closed(graph: Workflow, inside: set[str]) -> None:
    """Refuse a selection that a path leaves and re-enters: as one node it would feed itself."""
    children: dict[str, set[str]] = {}
    for link in graph.links:
        children.setdefault(link.source, set()).add(link.target)
    left = {t for n in inside for t in children.get(n, ()) if t not in inside}
    seen, stack = set(), list(left)
    while stack:
        here = stack.pop()
        if here in seen:
            continue
        seen.add(here)
        for child in children.get(here, ()):
            if child in inside:
                raise NodegraphError(f"the selection cannot become one node: a path leaves it and comes back "
                                     f"through {here!r}; add {here!r} to the selection or leave out what it feeds")
            stack.append(child)


def unpack(graph: Workflow, instance_id: str) -> list[str]:
    """Put an instance's inner nodes back in its place (its parameters and overrides written into
    them, its links rewired), and drop the definition when nothing uses it any more."""
    instance = graph.node(instance_id)
    root = graph.root()
    sub = root.subgraphs.get(subgraph_id(instance.type) or "")
    if sub is None:
        raise NodegraphError(f"node {instance_id!r} is not a subgraph instance")
    from .expand import _inner_copies  # the same values an expanded run would give them

    copies = _inner_copies(sub, instance)
    taken = set(graph.nodes) - {instance_id}
    ids = {}
    for inner_id in sorted(copies, key=natural_key):
        ids[inner_id] = _free_id(inner_id if inner_id not in taken else f"{instance_id}_{inner_id}", taken)
        taken.add(ids[inner_id])
    into = {slot.name: slot.to for slot in (*sub.inputs, *sub.params)}
    out_of = {slot.name: slot.source for slot in sub.outputs}
    xs = [n.position[0] for n in copies.values()] or [0]
    ys = [n.position[1] for n in copies.values()] or [0]
    dx = instance.position[0] - (min(xs) + max(xs)) / 2
    dy = instance.position[1] - (min(ys) + max(ys)) / 2
    outer = [l for l in graph.links if instance_id in (l.source, l.target)]
    graph.remove_node(instance_id)
    for inner_id, node in copies.items():
        node.id = ids[inner_id]
        node.position = _position((node.position[0] + dx, node.position[1] + dy))
        if instance.mode == "muted":
            node.mode = "muted"
        graph.nodes[node.id] = node
    graph.links += [Link(ids[l.source], l.output, ids[l.target], l.input, l.via) for l in sub.body.links]
    for group in sub.body.groups.values():
        graph.add_group(group.title, [ids[n] for n in group.nodes if n in ids], group.color,
                        None if group.id in graph.groups else group.id)
    for link in outer:
        if link.target == instance_id:
            for node_id, port in into.get(link.input, []):
                graph.links.append(Link(link.source, link.output, ids[node_id], port))
        elif out_of.get(link.output) is not None:
            node_id, port = out_of[link.output]
            graph.links.append(Link(ids[node_id], port, link.target, link.input, link.via))
    enclosing = _enclosing(graph)
    if enclosing is not None:
        _route_interface_around(enclosing, instance_id, into, out_of, ids)
    graph._touch()
    if not any(subgraph_id(n.type) == sub.id for n in root.all_instances()):
        root.remove_subgraph(sub.id)
    return [ids[k] for k in sorted(ids, key=natural_key)]


def _route_interface_around(enclosing: Subgraph, instance_id: str, into: dict, out_of: dict, ids: dict) -> None:
    """Unpacked inside another subgraph's body: the enclosing interface's wires into the instance go
    straight to the nodes behind it, and its instances' overrides of them one level up."""
    def behind(ends):
        found = []
        for node_id, port in ends:
            if node_id == instance_id:
                found += [(ids[n], p) for n, p in into.get(port, [])]
            else:
                found.append((node_id, port))
        return found

    for slot in (*enclosing.inputs, *enclosing.params):
        slot.to = behind(slot.to)
    for slot in enclosing.outputs:
        if slot.source is not None and slot.source[0] == instance_id:
            inner = out_of.get(slot.source[1])
            slot.source = (ids[inner[0]], inner[1]) if inner else None
    for graph, node in _instances(enclosing):
        moved = {}
        for path, values in node.overrides.items():
            head, _, rest = path.partition("/")
            if head == instance_id and rest:
                inner_head, _, deeper = rest.partition("/")
                path = ids.get(inner_head, inner_head) + (f"/{deeper}" if deeper else "")
            moved.setdefault(path, {}).update(values)
        node.overrides = moved
        graph._touch(node)
    enclosing.touch()


def promote(sub: Subgraph, node_id: str, param: str, name: str | None = None) -> PromotedParam:
    """Show inner parameter ``node_id.param`` on every instance, starting at the value it holds now."""
    decl = sub.body.param_decl(node_id, param)
    for promoted in sub.params:
        if (node_id, param) in promoted.to:
            raise NodegraphError(f"{node_id}.{param} is already promoted as {promoted.name!r}")
    taken = {s.name for s in (*sub.inputs, *sub.params)}
    name = name or _fresh(param, taken)
    _check_name(sub, name, None)
    promoted = PromotedParam(name, [(node_id, param)], sub.body.nodes[node_id].params.get(param, decl.default))
    sub.params.append(promoted)
    sub.touch()
    for graph, node in _instances(sub):
        node.params.setdefault(name, promoted.default)
        graph._touch(node)
    return promoted


def rename_slot(sub: Subgraph, old: str, new: str) -> None:
    """Rename an input, output or promoted parameter; instances' links and values follow."""
    slot = sub.slot(old)
    if slot is None:
        raise NodegraphError(f"subgraph {sub.id!r} has no input, output or parameter {old!r}")
    if new == old:
        return
    _check_name(sub, new, slot)
    slot.name = new
    is_output = isinstance(slot, OutputSlot)
    for graph, node in _instances(sub):
        if old in node.params and isinstance(slot, PromotedParam):
            node.params[new] = node.params.pop(old)
        graph.links = [_renamed(l, node.id, old, new, is_output) for l in graph.links]
        graph._touch()
    sub.touch()


def move_slot(sub: Subgraph, name: str, index: int) -> None:
    """Put a slot at ``index`` among its kind (the order the instance shows its sockets in)."""
    slot = sub.slot(name)
    slots = next(s for s in (sub.inputs, sub.outputs, sub.params) if slot in s)
    slots.remove(slot)
    slots.insert(max(0, min(index, len(slots))), slot)
    sub.touch()


def remove_slot(sub: Subgraph, name: str) -> None:
    """Remove a slot; the links instances had through it go too, and a promoted parameter's inner
    parameters keep the definition's values."""
    slot = sub.slot(name)
    if slot is None:
        raise NodegraphError(f"subgraph {sub.id!r} has no input, output or parameter {name!r}")
    for slots in (sub.inputs, sub.outputs, sub.params):
        if slot in slots:
            slots.remove(slot)
    is_output = isinstance(slot, OutputSlot)
    for graph, node in _instances(sub):
        if isinstance(slot, PromotedParam):
            node.params.pop(name, None)
        graph.links = [l for l in graph.links
                       if not ((l.source == node.id and l.output == name) if is_output
                               else (l.target == node.id and l.input == name))]
        graph._touch()
    sub.touch()


def _instances(sub: Subgraph):
    root = sub.body.root()
    for graph in (root, *(s.body for s in root.subgraphs.values())):
        for node in graph.nodes.values():
            if subgraph_id(node.type) == sub.id:
                yield graph, node


def _renamed(link: Link, node_id: str, old: str, new: str, output: bool) -> Link:
    if output and link.source == node_id and link.output == old:
        return Link(link.source, new, link.target, link.input, link.via)
    if not output and link.target == node_id and link.input == old:
        return Link(link.source, link.output, link.target, new, link.via)
    return link


def _check_name(sub: Subgraph, name: str, slot) -> None:
    if not NAME_RE.match(name):
        raise NodegraphError(f"{name!r} is not a name: use letters, digits and '_', not starting with a digit")
    outputs = isinstance(slot, OutputSlot)
    taken = {s.name for s in (sub.outputs if outputs else (*sub.inputs, *sub.params)) if s is not slot}
    if name in taken:
        raise NodegraphError(f"subgraph {sub.id!r} already has a{'n output' if outputs else 'n input or parameter'} "
                             f"named {name!r}")


def _slug(title: str) -> str:
    slug = re.sub(r"[^a-z0-9_]+", "_", title.lower()).strip("_")[:48]
    return slug or "subgraph"


def _fresh(name: str, taken: set[str]) -> str:
    base, n = name, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def _free_id(stem: str, taken) -> str:
    stem = stem if NODE_ID_RE.match(stem) else "subgraph"
    if stem not in taken:
        return stem
    n = 2
    while f"{stem}{n}" in taken:
        n += 1
    return f"{stem}{n}"


def add_input(sub: Subgraph, node_id: str, port: str) -> InputSlot:
    """A new input of the subgraph feeding inner port ``node_id.port`` (named after it, typed by it)."""
    want = sub.body.registry.get(sub.body.node(node_id).type).target_type(port)
    if want is None:
        raise NodegraphError(f"'{node_id}' has no input or parameter {port!r}")
    slot = InputSlot(_fresh(port, {s.name for s in (*sub.inputs, *sub.params)}), want)
    sub.inputs.append(slot)
    wire_input(sub, slot.name, node_id, port)
    return slot


def wire_input(sub: Subgraph, name: str, node_id: str, port: str) -> None:
    """Feed inner port ``node_id.port`` from input ``name`` (instead of whatever fed it)."""
    slot = next((s for s in sub.inputs if s.name == name), None)
    if slot is None:
        raise NodegraphError(f"subgraph {sub.id!r} has no input {name!r}")
    want = sub.body.registry.get(sub.body.node(node_id).type).target_type(port)
    from .types import why_incompatible

    reason = why_incompatible(slot.type, want) if want is not None else f"'{node_id}' has no input {port!r}"
    if reason:
        raise NodegraphError(f"cannot feed {node_id}.{port} from input {name!r}: {reason}")
    unwire(sub, node_id, port)
    sub.body.links = [l for l in sub.body.links if not (l.target == node_id and l.input == port)]
    slot.to.append((node_id, port))
    sub.touch()


def unwire(sub: Subgraph, node_id: str, port: str) -> bool:
    """Stop feeding inner port ``node_id.port`` from the interface; True if an input fed it."""
    found = False
    for slot in sub.inputs:
        if (node_id, port) in slot.to:
            slot.to.remove((node_id, port))
            found = True
    if found:
        sub.touch()
    return found


def add_output(sub: Subgraph, node_id: str, output: str) -> OutputSlot:
    """A new output of the subgraph giving inner output ``node_id.output``."""
    out = sub.body.registry.get(sub.body.node(node_id).type).output_port(output)
    if out is None:
        raise NodegraphError(f"'{node_id}' has no output {output!r}")
    slot = OutputSlot(_fresh(output, {s.name for s in sub.outputs}), out.type, (node_id, output))
    sub.outputs.append(slot)
    sub.touch()
    return slot


def set_output(sub: Subgraph, name: str, node_id: str, output: str) -> None:
    """Let output ``name`` give inner output ``node_id.output``."""
    slot = next((s for s in sub.outputs if s.name == name), None)
    out = sub.body.registry.get(sub.body.node(node_id).type).output_port(output)
    if slot is None or out is None:
        raise NodegraphError(f"no output {name!r} or no inner output {node_id}.{output}")
    from .types import why_incompatible

    reason = why_incompatible(out.type, slot.type)
    if reason:
        raise NodegraphError(f"output {name!r} cannot come from {node_id}.{output}: {reason}")
    slot.source = (node_id, output)
    sub.touch()


def enclosing(graph: Workflow) -> Subgraph | None:
    """The definition whose body ``graph`` is, or None for the outermost workflow."""
    return _enclosing(graph)


def needed_definitions(root: Workflow, sub_ids) -> set[str]:
    """``sub_ids`` and every definition they use, however deep."""
    needed, stack = set(), [s for s in sub_ids if s in root.subgraphs]
    while stack:
        sub_id = stack.pop()
        if sub_id not in needed:
            needed.add(sub_id)
            stack += [u for u in uses(root.subgraphs[sub_id]) if u in root.subgraphs]
    return needed


def carry_definitions(source: Workflow, target: Workflow, sub_ids) -> list[str]:
    """Copy the definitions ``sub_ids`` need from ``source`` into ``target`` (a library file into a
    workflow, a copied selection into the clipboard and back). One ``target`` already defines is kept as
    it is: the workflow's own copy wins. Returns the ids copied."""
    source, target = source.root(), target.root()
    needed = needed_definitions(source, sub_ids)
    copied = []
    for sub in definitions_inside_out(source.subgraphs):
        if sub.id in needed and sub.id not in target.subgraphs:
            target.subgraphs[sub.id] = sub.copy_into(target)
            copied.append(sub.id)
    if copied:
        target._touch()
    return copied
