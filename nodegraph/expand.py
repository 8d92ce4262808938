"""Expanding subgraph instances into their inner nodes, before the engine plans a run.

Each active instance ``hires`` of a definition becomes copies of the definition's nodes with path
ids (``hires/sampler``), its promoted parameters and overrides written into those copies, and every
link that crossed the instance's ports rewired to the inner ports behind them. The engine then plans,
fingerprints and caches the flat graph like any other, so an edit inside one instance dirties only
that instance's copies, and two instances given the same inputs have the same keys and run once.

A muted or bypassed instance stays one node: muting skips it, bypassing passes its inputs through by
type, exactly as for a built-in node.
"""

from __future__ import annotations

from typing import Any

from .errors import NodegraphError
from .subgraph import MAX_DEPTH, Subgraph, subgraph_id
from .workflow import Link, Node, Workflow

Port = tuple[str, str]


def has_instances(workflow: Workflow) -> bool:
    return any(subgraph_id(n.type) is not None for n in workflow.nodes.values())


def flatten(workflow: Workflow) -> Workflow:
    """The workflow with every active subgraph instance replaced by its inner nodes (the workflow
    itself when it has none). The result shares node types with ``workflow`` and is not for editing."""
    if not has_instances(workflow):
        return workflow
    flat = Workflow(owner=None)
    flat.subgraphs, flat.registry = workflow.subgraphs, workflow.registry
    flat.metadata, flat.base_dir = workflow.metadata, workflow.base_dir
    _expand(workflow.nodes, workflow.links, workflow.subgraphs, "", 0, flat)
    return flat


def _expand(nodes: dict[str, Node], links: list[Link], subgraphs: dict[str, Subgraph], prefix: str, depth: int,
            flat: Workflow) -> tuple[dict[Port, list[Port]], dict[Port, Port | None]]:
    """Add one level's nodes and links to ``flat``. Returns, for the instances expanded at this level,
    the flat ports behind each of their inputs and parameters, and the flat port behind each output."""
    if depth > MAX_DEPTH:
        raise NodegraphError(f"subgraphs nest more than {MAX_DEPTH} deep at {prefix.rstrip('/')!r}")
    into: dict[Port, list[Port]] = {}
    out_of: dict[Port, Port | None] = {}
    for node in nodes.values():
        sub = subgraphs.get(subgraph_id(node.type) or "")
        path = prefix + node.id
        if sub is None or node.mode != "active":
            flat.nodes[path] = _copy(node, path)
            continue
        inner = f"{path}/"
        inner_into, inner_out = _expand(_inner_copies(sub, node), sub.body.links, subgraphs, inner, depth + 1, flat)

        def behind(end: Port, inner=inner, inner_into=inner_into) -> list[Port]:
            return inner_into.get(end, [(inner + end[0], end[1])])

        for slot in (*sub.inputs, *sub.params):
            into[(node.id, slot.name)] = [flat_end for end in slot.to for flat_end in behind(end)]
        for out in sub.outputs:
            source = out.source
            out_of[(node.id, out.name)] = None if source is None else inner_out.get(source, (inner + source[0],
                                                                                             source[1]))
    for link in links:
        source = out_of.get((link.source, link.output), (prefix + link.source, link.output))
        if source is None:
            continue  # an output the definition leaves unconnected gives no value
        targets = into.get((link.target, link.input), [(prefix + link.target, link.input)])
        flat.links += [Link(source[0], source[1], node_id, port, link.via) for node_id, port in targets]
    return into, out_of


def _inner_copies(sub: Subgraph, instance: Node) -> dict[str, Node]:
    """The definition's nodes as this instance runs them: promoted values, then its overrides, applied."""
    copies = {k: _copy(n, k) for k, n in sub.body.nodes.items()}
    for promoted in sub.params:
        value: Any = instance.params.get(promoted.name, promoted.default)
        for node_id, name in promoted.to:
            if node_id in copies:
                copies[node_id].params[name] = value
    for path, values in instance.overrides.items():
        head, _, rest = path.partition("/")
        if head not in copies:
            continue  # reported by validate()
        if rest:  # deeper: the inner instance carries it on, the outer instance's value winning
            copies[head].overrides.setdefault(rest, {}).update(values)
        else:
            copies[head].params.update(values)
    return copies


def _copy(node: Node, node_id: str) -> Node:
    """A copy to write values into (a direct constructor call: this runs for every inner node on every edit)."""
    return Node(node_id, node.type, node.version, dict(node.params), node.mode, node.position, node.title,
                {p: dict(v) for p, v in node.overrides.items()} if node.overrides else {})


def flat_targets(workflow: Workflow, flat: Workflow, targets: list[str]) -> list[str]:
    """Targets named in the workflow as flat ids: an expanded instance stands for all its inner nodes."""
    found = []
    for target in targets:
        if target in flat.nodes:
            found.append(target)
            continue
        inner = [n for n in flat.nodes if n.startswith(f"{target}/")]
        if not inner:
            workflow.node(target)  # names the unknown id
            raise NodegraphError(f"no node with id {target!r}")
        found += inner
    return found
