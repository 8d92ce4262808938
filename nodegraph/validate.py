"""Every rule a workflow must keep, checked at once so a user sees all problems together."""

from __future__ import annotations

import networkx as nx

from .errors import NodegraphError, Problem
from .types import why_incompatible


def located_inside(problem: Problem, sub_id: str) -> Problem:
    """A problem found inside a definition, located by path: ``subgraph:hires/sampler``."""
    node = f"subgraph:{sub_id}" + (f"/{problem.node}" if problem.node else "")
    return Problem(problem.message, node, problem.port)


def validate(workflow) -> list[Problem]:
    """Return every problem in ``workflow``: node types, parameters, links, inputs, cycles, groups, and
    the same inside each subgraph definition (named by path: ``subgraph:hires/sampler``)."""
    problems = _graph(workflow, set())
    if workflow.owner is None:
        for sub in workflow.subgraphs.values():
            problems += [located_inside(p, sub.id) for p in _definition(sub)]
        problems += _subgraph_cycles(workflow.subgraphs)
    return problems


def _graph(workflow, fed_from_outside: set[tuple[str, str]]) -> list[Problem]:
    """The rules for one graph; ``fed_from_outside`` are inner ports a subgraph's interface feeds."""
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
        problems += _overrides(workflow, node)

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
            if not port.optional and (node.id, port.name) not in fed and (node.id, port.name) not in fed_from_outside:
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


def _overrides(workflow, node) -> list[Problem]:
    """An instance's values for inner parameters must name a real inner parameter and fit it."""
    if not node.overrides:
        return []
    from .subgraph import subgraph_id

    if subgraph_id(node.type) is None:
        return [Problem("'overrides' is only for subgraph instances", node.id)]
    problems = []
    for path, values in node.overrides.items():
        for name, value in values.items():
            try:
                decl = workflow.param_decl(f"{node.id}/{path}", name)
                decl.coerce(value)
            except NodegraphError as e:
                problems.append(Problem(f"override {path}.{name}: {_after_node(e)}", node.id))
            except ValueError as e:
                problems.append(Problem(f"override {path}.{name}: {e}", node.id))
    return problems


def _after_node(e: Exception) -> str:
    text = str(e)
    return text.split(": ", 1)[1] if text.startswith("node '") and ": " in text else text


def _definition(sub) -> list[Problem]:
    """A definition's interface, then its body with the ports the interface feeds counted as fed."""
    from .node import NAME_RE

    body, types = sub.body, sub.body.registry
    problems: list[Problem] = []
    for slots in ((*sub.inputs, *sub.params), sub.outputs):  # inputs and parameters share one namespace
        seen: set[str] = set()
        for slot in slots:
            if not NAME_RE.match(slot.name):
                problems.append(Problem(f"interface name {slot.name!r} is not an identifier", None, slot.name))
            elif slot.name in seen:
                problems.append(Problem(f"interface name {slot.name!r} is used twice", None, slot.name))
            seen.add(slot.name)
    fed: set[tuple[str, str]] = set()
    for slot in sub.inputs:
        for node_id, port in slot.to:
            fed.add((node_id, port))
            spec = _spec(body, node_id)
            want = spec.target_type(port) if spec else None
            if node_id not in body.nodes:
                problems.append(Problem(f"input {slot.name!r} feeds missing node {node_id!r}", None, slot.name))
            elif spec is not None and want is None:
                problems.append(Problem(f"input {slot.name!r} feeds {node_id}.{port}, which "
                                        f"'{body.nodes[node_id].type}' does not have", node_id, port))
            elif want is not None and why_incompatible(slot.type, want):
                problems.append(Problem(f"input {slot.name!r}: {why_incompatible(slot.type, want)}", node_id, port))
        if any(l.target == n and l.input == p for n, p in slot.to for l in body.links):
            problems.append(Problem(f"input {slot.name!r} feeds a port an inner link feeds too", None, slot.name))
    for slot in sub.outputs:
        if slot.source is None:
            problems.append(Problem(f"output {slot.name!r} is not connected inside", None, slot.name))
            continue
        node_id, port = slot.source
        spec = _spec(body, node_id)
        out = spec.output_port(port) if spec else None
        if node_id not in body.nodes:
            problems.append(Problem(f"output {slot.name!r} comes from missing node {node_id!r}", None, slot.name))
        elif spec is not None and out is None:
            problems.append(Problem(f"output {slot.name!r}: '{body.nodes[node_id].type}' has no output {port!r}",
                                    node_id, port))
        elif out is not None and why_incompatible(out.type, slot.type):
            problems.append(Problem(f"output {slot.name!r}: {why_incompatible(out.type, slot.type)}", node_id, port))
    for promoted in sub.params:
        decls = []
        for node_id, name in promoted.to:
            spec = _spec(body, node_id)
            decl = spec.param(name) if spec else None
            if node_id not in body.nodes:
                problems.append(Problem(f"parameter {promoted.name!r} drives missing node {node_id!r}",
                                        None, promoted.name))
            elif spec is not None and decl is None:
                problems.append(Problem(f"parameter {promoted.name!r} drives {node_id}.{name}, which is not a "
                                        f"parameter of '{body.nodes[node_id].type}'", node_id, name))
            elif decl is not None:
                decls.append(decl)
        if not promoted.to:
            problems.append(Problem(f"parameter {promoted.name!r} drives nothing", None, promoted.name))
        if len({d.type for d in decls}) > 1:
            problems.append(Problem(f"parameter {promoted.name!r} drives parameters of different types "
                                    f"({', '.join(sorted(str(d.type) for d in decls))})", None, promoted.name))
        elif decls and promoted.default is not None:
            try:
                decls[0].coerce(promoted.default)
            except ValueError as e:
                problems.append(Problem(f"parameter {promoted.name!r} default: {e}", None, promoted.name))
    return problems + _graph(body, fed)


def _spec(body, node_id: str):
    node = body.nodes.get(node_id)
    return body.registry.get(node.type) if node is not None else None


def _subgraph_cycles(subgraphs) -> list[Problem]:
    from .subgraph import MAX_DEPTH, PREFIX, uses

    graph = nx.DiGraph()
    graph.add_nodes_from(subgraphs)
    graph.add_edges_from((sid, used) for sid, sub in subgraphs.items() for used in uses(sub) if used in subgraphs)
    problems = []
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1 or any(graph.has_edge(n, n) for n in component):
            cycle = [edge[0] for edge in nx.find_cycle(graph.subgraph(component))]
            problems.append(Problem(f"subgraph contains itself: {' -> '.join(cycle + [cycle[0]])}",
                                    f"{PREFIX}{min(component)}"))
    if not problems and graph.number_of_nodes() and nx.dag_longest_path_length(graph) >= MAX_DEPTH:
        problems.append(Problem(f"subgraphs nest more than {MAX_DEPTH} deep"))
    return problems
