"""Upgrading older workflow files to the current format version, one step at a time.

``MIGRATIONS[n]`` turns a version-``n`` document into version ``n + 1``. Each
step is a pure function on plain JSON data, so a file of any supported age is
read by chaining them. Version 0 is the draft layout used before the first
release (nodes keyed by id, links as positional lists); it is kept so that the
mechanism is exercised and tested from day one.

A file is written with the lowest version that holds what it uses: version 2
added subgraphs, so a workflow without them is still written as version 1 and
opens in an older nodegraph.
"""

from __future__ import annotations

from typing import Any, Callable

from .errors import WorkflowFileError

FORMAT = "nodegraph-workflow"
VERSION = 2


def _v0_to_v1(doc: dict[str, Any]) -> dict[str, Any]:
    nodes = []
    raw_nodes = doc.get("nodes") or {}
    if not isinstance(raw_nodes, dict):
        raise WorkflowFileError("version 0 file: 'nodes' must be an object keyed by node id")
    for node_id, raw in raw_nodes.items():
        raw = raw if isinstance(raw, dict) else {}
        nodes.append(
            {
                "id": node_id,
                "type": raw.get("type"),
                "version": 1,
                "mode": "muted" if raw.get("muted") else "active",
                "position": raw.get("pos", [0, 0]),
                "params": raw.get("params", {}),
            }
        )
    links = []
    for raw in doc.get("links") or []:
        if isinstance(raw, list) and len(raw) == 4:
            src, out, dst, inp = raw
            links.append({"from": f"{src}.{out}", "to": f"{dst}.{inp}"})
        else:
            links.append(raw)  # left for the validator to report
    return {"format": FORMAT, "version": 1, "metadata": doc.get("metadata", {}), "nodes": nodes, "links": links}


def _v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    if "subgraphs" in doc:
        raise WorkflowFileError("'subgraphs' needs format version 2 (this file says version 1)")
    return {**doc, "version": 2}


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {0: _v0_to_v1, 1: _v1_to_v2}


def upgrade(doc: dict[str, Any]) -> dict[str, Any]:
    """Bring a parsed document to :data:`VERSION`, or explain why it cannot be read."""
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise WorkflowFileError(f"'version' must be an integer, got {version!r}")
    if version > VERSION:
        raise WorkflowFileError(
            f"written by a newer nodegraph (format version {version}; this one reads up to {VERSION})"
        )
    if version >= 1 and doc.get("format") != FORMAT:
        raise WorkflowFileError(f"'format' must be {FORMAT!r}, got {doc.get('format')!r}")
    while version < VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise WorkflowFileError(f"format version {version} is too old to read")
        doc = step(doc)
        version = doc["version"]
    return doc
