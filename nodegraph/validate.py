"""Every rule a workflow must keep, checked at once so a user sees all problems together."""

from __future__ import annotations

import networkx as nx

from .errors import Problem
from .types import why_incompatible


def validate(workflow) -> list[Problem]:
    """Return every problem in ``workflow``: node types, parameters, links, inputs, cycles, groups."""
    registry = workflow.registry
    problems: list[Problem] = []
    for node in workflow.nodes.values():
        node_type = registry.get(node.type)
        if node_type is None:
            problems.append(Problem(_unknown_type(node), node.id))
            continue
        if node.version != node_type.version:
            problems.append(
                Problem(
                    f"{node.type!r} version {node.version} is not supported (this install has version "
                    f"{node_type.version})",
                    node.id,
                )
            )
            continue
        for name, value in node.params.items():
            param = node_type.param(name)
            if param is None:
                problems.append(Problem("unknown parameter", node.id, name))
                continue
            try:
                param.coerce(value)
            except ValueError as e:
                problems.append(Problem(str(e), node.id, name))

    fed: dict[tuple[str, str], int] = {}
    for link in workflow.links:
        src, dst = workflow.nodes.get(link.source), workflow.nodes.get(link.target)
        if src is None:
            problems.append(Problem(f"link from missing node {link.source!r}", link.target, link.input))
        if dst is None:
            problems.append(Problem(f"link into missing node {link.target!r}", link.source, link.output))
        if src is None or dst is None:
            continue
        fed[(link.target, link.input)] = fed.get((link.target, link.input), 0) + 1
        issue = link_issue(registry, src, link.output, dst, link.input)
        if issue:
            problems.append(Problem(issue[2], issue[0], issue[1]))
    problems += [
        Problem(f"{count} links feed the same input; an input takes one", node_id, port)
        for (node_id, port), count in fed.items()
        if count > 1
    ]

    for node in workflow.nodes.values():
        node_type = registry.get(node.type)
        if node_type is None or node.mode != "active":
            continue
        for port in node_type.inputs:
            if not port.optional and (node.id, port.name) not in fed:
                problems.append(Problem(f"required {port.type} input is not connected", node.id, port.name))

    problems += _cycles(workflow)
    for group in workflow.groups.values():
        for node_id in group.nodes:
            if node_id not in workflow.nodes:
                problems.append(Problem(f"group {group.id!r} lists missing node {node_id!r}", node_id))
    return problems


def _unknown_type(node) -> str:
    """A placeholder left by a ComfyUI import says which class it stands for and why it did not convert."""
    from .comfy import PLACEHOLDER  # here, not at the top: the comfy package imports the workflow module

    if node.type.startswith(PLACEHOLDER):
        why = node.params.get("why") if isinstance(node.params.get("why"), str) else "no counterpart here"
        return f"ComfyUI node {node.type[len(PLACEHOLDER):]!r} was not converted: {why}"
    return f"unknown node type {node.type!r}"


def link_issue(registry, src, output: str, dst, input: str) -> tuple[str, str, str] | None:
    """What is wrong with the ports or types of one link, as (node id, port, message), or None."""
    src_type, dst_type = registry.get(src.type), registry.get(dst.type)
    if src_type is None or dst_type is None:
        return None  # the unknown type is reported on its own
    out = src_type.output_port(output)
    if out is None:
        return src.id, output, f"'{src.type}' has no output {output!r}"
    want = dst_type.target_type(input)
    if want is None:
        return dst.id, input, f"'{dst.type}' has no input or parameter {input!r}"
    reason = why_incompatible(out.type, want)
    if reason:
        return dst.id, input, f"{reason} (from {src.id}.{output})"
    return None


def _cycles(workflow) -> list[Problem]:
    graph = nx.DiGraph()
    graph.add_edges_from(
        (l.source, l.target) for l in workflow.links if l.source in workflow.nodes and l.target in workflow.nodes
    )
    problems = []
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1 or any(graph.has_edge(n, n) for n in component):
            cycle = [edge[0] for edge in nx.find_cycle(graph.subgraph(component))]
            path = " -> ".join(cycle + [cycle[0]])
            problems.append(Problem(f"cycle: {path}", min(component)))
    return problems
