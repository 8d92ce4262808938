"""Reading and writing workflow files: JSON, or the workflow embedded in a PNG this program saved.

``load`` reports every problem at once (structure, parameters, links, cycles),
each with its node id and port, and never lets a malformed file become a
traceback.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from .errors import NodegraphError, Problem, WorkflowFileError, WorkflowInvalid
from .files import atomic_write
from .migrations import upgrade
from .registry import REGISTRY, Registry
from .validate import located_inside, validate
from .subgraph import (CATEGORY, PREFIX, SUBGRAPH_ID_RE, InputSlot, OutputSlot, PromotedParam, Subgraph,
                       definitions_inside_out)
from .types import PortType
from .workflow import MODES, NODE_ID_RE, Group, Link, Node, Workflow, _position

MAX_FILE_BYTES = 64 * 1024 * 1024
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_KEY = "workflow"  # the PNG text chunk Save Image writes


def load(path: str | os.PathLike, registry: Registry | None = None, strict: bool = True) -> Workflow:
    """Read a workflow file (JSON, or a PNG with an embedded workflow).

    With ``strict`` (the default) any problem raises :class:`WorkflowInvalid` listing all of
    them; otherwise the workflow is returned with ``workflow.problems`` set, so an editor can
    open a file that needs fixing.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise WorkflowFileError(f"{path}: not a file")
        if size > MAX_FILE_BYTES:
            raise WorkflowFileError(f"{path}: {size} bytes is larger than the {MAX_FILE_BYTES} byte limit")
        data = path.read_bytes()
    except FileNotFoundError:
        raise WorkflowFileError(f"{path}: no such file") from None
    except OSError as e:
        raise WorkflowFileError(f"{path}: cannot read ({e.strerror or e})") from None
    if data.startswith(PNG_MAGIC):
        doc = _document_from_png(path)
    else:
        doc = _parse_json(_decode(data, path), str(path))
    folder = path.resolve().parent
    workflow = from_document(doc, registry=registry, source=str(path), strict=strict, base_dir=folder)
    workflow.base_dir = folder
    return workflow


def loads(text: str, registry: Registry | None = None, source: str = "<workflow>", strict: bool = True) -> Workflow:
    """A workflow from JSON text: ours, or a ComfyUI workflow (converted; see :func:`from_document`)."""
    return from_document(_parse_json(text, source), registry, source, strict)


def from_document(doc: dict, registry: Registry | None = None, source: str = "<workflow>",
                  strict: bool = True, base_dir: Path | None = None) -> Workflow:
    """A workflow from a parsed document. A ComfyUI workflow is converted first; ``workflow.imported``
    then holds the import report (what mapped, what did not and why), else it is None."""
    from . import comfy

    report = None
    if comfy.kind(doc):
        doc, report = comfy.import_document(doc, source, base_dir, registry)
    try:
        doc = upgrade(doc)
    except WorkflowFileError as e:
        raise WorkflowFileError(f"{source}: {e}") from None
    workflow, problems = from_dict(doc, registry)
    problems += validate(workflow)
    workflow.problems = problems
    workflow.imported = report
    if strict and problems:
        raise WorkflowInvalid(problems, source)
    return workflow


def save(workflow: Workflow, path: str | os.PathLike) -> Path:
    """Write the canonical JSON atomically: a reader never sees a half-written file."""
    return atomic_write(path, workflow.dumps().encode("utf-8"))


PATH_HINTS = ("file", "folder", "model")  # parameters whose relative values resolve against the workflow's folder


def rebase(workflow: Workflow, new_dir: str | os.PathLike) -> list[str]:
    """Move the workflow to ``new_dir`` (Save As into another folder): each relative path a parameter
    holds that names an existing file beside the old location is rewritten to reach the same file from
    the new one, so a Load Image of ``assets/sample.png`` still finds its picture. Names that are not
    files there (a model name, ``hf:org/name``) are left alone. Returns ``node.param`` for each change."""
    new_dir = Path(new_dir).resolve()
    old_dir, workflow.base_dir = workflow.base_dir, new_dir
    if old_dir is None or Path(old_dir).resolve() == new_dir:
        return []
    old_dir = Path(old_dir)
    changed = []
    for node in workflow.nodes.values():
        spec = workflow.registry.get(node.type)
        for param in spec.params if spec else ():
            value = node.params.get(param.name)
            if param.hint not in PATH_HINTS or not isinstance(value, str) or not value.strip():
                continue
            path = Path(value).expanduser()
            if path.is_absolute() or not (old_dir / path).exists():
                continue
            target = (old_dir / path).resolve()
            try:
                moved = Path(os.path.relpath(target, new_dir)).as_posix()
            except ValueError:  # another drive: only an absolute path reaches it
                moved = str(target)
            if moved != value:
                workflow.set_param(node.id, param.name, moved)
                changed.append(f"{node.id}.{param.name}")
    return changed


def embedded_text(workflow: Workflow, folder: str | os.PathLike | None) -> str:
    """The workflow's JSON as a file written into ``folder`` should carry it (see :func:`rebase`); the
    workflow itself is left as it is."""
    if folder is None or workflow.base_dir is None:
        return workflow.dumps()
    moved = workflow.copy()
    rebase(moved, folder)
    return moved.dumps()


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise WorkflowFileError(f"{path}: not UTF-8 text (byte {e.start})") from None


def _document_from_png(path: Path) -> dict:
    """The workflow a PNG carries: ours (the ``workflow`` chunk Save Image writes), or ComfyUI's
    (its ``workflow`` and ``prompt`` chunks)."""
    from PIL import Image

    from . import comfy

    try:
        with Image.open(path) as im:  # reads the chunks before the pixels; pixels are never decoded
            info = {k: v for k, v in im.info.items() if isinstance(v, str)}
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise WorkflowFileError(f"{path}: unreadable PNG ({e})") from None
    doc = comfy.loads_png_chunks(info)  # ComfyUI's chunks first: its 'workflow' may be null beside a 'prompt'
    if doc is None and PNG_KEY in info:
        doc = _parse_json(info[PNG_KEY], str(path))
    if doc is None:
        raise WorkflowFileError(f"{path}: this PNG has no embedded workflow")
    return doc


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed in a workflow")


def _parse_json(text: str, source: str) -> dict[str, Any]:
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise WorkflowFileError(f"{source}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:  # NaN / Infinity, or an integer too long to convert
        raise WorkflowFileError(f"{source}: not valid JSON: {e}") from None
    except RecursionError:
        raise WorkflowFileError(f"{source}: JSON nested too deeply") from None
    if not isinstance(doc, dict):
        raise WorkflowFileError(f"{source}: the top level must be a JSON object, got {type(doc).__name__}")
    return doc


def from_dict(doc: dict[str, Any], registry: Registry | None = None,
              library: bool = True) -> tuple[Workflow, list[Problem]]:
    """Build a workflow from an upgraded document; structural problems are collected, not raised.
    With ``library``, an instance of a subgraph the document does not define takes the library's."""
    workflow = Workflow(registry or REGISTRY)
    problems: list[Problem] = []
    raw_subgraphs = doc.get("subgraphs", [])
    if not isinstance(raw_subgraphs, list):
        problems.append(Problem("'subgraphs' must be a list"))
        raw_subgraphs = []
    for index, raw in enumerate(raw_subgraphs):
        read_subgraph(raw, index, workflow, problems)
    if not _read_graph(doc, workflow, problems):
        return workflow, problems
    if library:
        from .library import embed_missing

        try:
            embed_missing(workflow)
        except NodegraphError as e:
            problems.append(Problem(f"the subgraph library: {e}"))
    # Every type is known by now. Inner nodes first: a promoted parameter starts from its inner value.
    everywhere = [n for g in (*(s.body for s in workflow.subgraphs.values()), workflow) for n in g.nodes.values()]
    for node in everywhere:
        if not node.type.startswith(PREFIX):
            _normalise_params(node, workflow.registry, problems)
    for sub in definitions_inside_out(workflow.subgraphs):  # a definition after those it uses
        for node in sub.body.nodes.values():
            if node.type.startswith(PREFIX):
                _normalise_params(node, workflow.registry, problems)
        fill_promoted_defaults(sub)
    for node in workflow.nodes.values():
        if node.type.startswith(PREFIX):
            _normalise_params(node, workflow.registry, problems)
    metadata = doc.get("metadata", {})
    if isinstance(metadata, dict):
        workflow.metadata = metadata
    else:
        problems.append(Problem("'metadata' must be an object"))
    unknown = set(doc) - {"format", "version", "metadata", "nodes", "links", "groups", "subgraphs"}
    problems += [Problem(f"unknown top-level key {key!r}") for key in sorted(unknown)]
    return workflow, problems


def _read_graph(doc: dict[str, Any], workflow: Workflow, problems: list[Problem]) -> bool:
    """Nodes, links and groups into ``workflow`` (parameters are normalised later); False if hopeless."""
    raw_nodes = doc.get("nodes", [])
    if not isinstance(raw_nodes, list):
        problems.append(Problem("'nodes' must be a list"))
        return False
    for index, raw in enumerate(raw_nodes):
        node = _read_node(raw, index, workflow, problems)
        if node is not None:
            workflow.nodes[node.id] = node
    raw_links = doc.get("links", [])
    if not isinstance(raw_links, list):
        problems.append(Problem("'links' must be a list"))
        raw_links = []
    for raw in raw_links:
        link = _read_link(raw, problems)
        if link is not None:
            workflow.links.append(link)
    raw_groups = doc.get("groups", [])
    for raw in raw_groups if isinstance(raw_groups, list) else [None]:
        group = _read_group(raw, problems)
        if group is not None:
            workflow.groups[group.id] = group
    return True


SUBGRAPH_KEYS = {"id", "version", "title", "description", "category", "inputs", "outputs", "params",
                 "nodes", "links", "groups"}


def read_subgraph(raw: Any, index: int, workflow: Workflow, problems: list[Problem]) -> Subgraph | None:
    """One definition of ``subgraphs`` into ``workflow``; its problems are named with its path."""
    if not isinstance(raw, dict):
        problems.append(Problem(f"subgraphs[{index}] must be an object"))
        return None
    sub_id = raw.get("id")
    if not isinstance(sub_id, str) or not SUBGRAPH_ID_RE.match(sub_id):
        problems.append(Problem(f"subgraphs[{index}]: id must be 1-64 letters, digits, '_' or '-', "
                                f"got {sub_id!r:.60}"))
        return None
    where = f"{PREFIX}{sub_id}"
    if sub_id in workflow.subgraphs:
        problems.append(Problem("subgraph id is used twice", where))
        return None
    mine: list[Problem] = []
    version, title = raw.get("version", 1), raw.get("title", sub_id)
    description, category = raw.get("description", ""), raw.get("category", CATEGORY)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        mine.append(Problem(f"'version' must be a positive integer, got {version!r:.60}"))
        version = 1
    for key, value in (("title", title), ("description", description), ("category", category)):
        if not isinstance(value, str):
            mine.append(Problem(f"'{key}' must be a string"))
    mine += [Problem(f"unknown key {key!r}") for key in sorted(set(raw) - SUBGRAPH_KEYS)]
    body = Workflow(owner=workflow)
    _read_graph(raw, body, mine)
    sub = Subgraph(sub_id, title if isinstance(title, str) else sub_id, body, version,
                   description if isinstance(description, str) else "",
                   category if isinstance(category, str) else CATEGORY)
    sub.inputs = [s for i, r in enumerate(_list(raw, "inputs", mine)) if (s := _read_slot(r, i, "inputs", mine))]
    sub.outputs = [s for i, r in enumerate(_list(raw, "outputs", mine)) if (s := _read_slot(r, i, "outputs", mine))]
    sub.params = [p for i, r in enumerate(_list(raw, "params", mine)) if (p := _read_promoted(r, i, mine))]
    problems += [located_inside(p, sub_id) for p in mine]
    workflow.subgraphs[sub_id] = sub
    return sub


def _list(raw: dict, key: str, problems: list[Problem]) -> list:
    value = raw.get(key, [])
    if not isinstance(value, list):
        problems.append(Problem(f"'{key}' must be a list"))
        return []
    return value


def _port_end(text: Any) -> tuple[str, str] | None:
    if isinstance(text, str) and text.count(".") == 1:
        node_id, port = text.split(".")
        if NODE_ID_RE.match(node_id) and port:
            return node_id, port
    return None


def _read_slot(raw: Any, index: int, kind: str, problems: list[Problem]):
    wiring = "to" if kind == "inputs" else "from"
    shape = f"{{name, type, {wiring}: {'[node.port, ...]' if kind == 'inputs' else 'node.output'}, description?}}"
    keys = {"name", "type", wiring, "description"}
    if not (isinstance(raw, dict) and isinstance(raw.get("name"), str) and set(raw) <= keys
            and isinstance(raw.get("description", ""), str)):
        problems.append(Problem(f"{kind}[{index}] must be {shape}, got {raw!r:.80}"))
        return None
    name = raw["name"]
    try:
        port_type = PortType(raw.get("type"))
    except ValueError:
        problems.append(Problem(f"{kind} {name!r}: unknown type {raw.get('type')!r:.40}", None, name))
        return None
    if kind == "inputs":
        ends = raw.get("to", [])
        pairs = [_port_end(e) for e in ends] if isinstance(ends, list) else [None]
        if None in pairs:
            problems.append(Problem(f"input {name!r}: 'to' must be a list of 'node.port'", None, name))
            return None
        return InputSlot(name, port_type, pairs, raw.get("description", ""))
    source = raw.get("from")
    pair = _port_end(source) if source is not None else None
    if source is not None and pair is None:
        problems.append(Problem(f"output {name!r}: 'from' must be 'node.output'", None, name))
        return None
    return OutputSlot(name, port_type, pair, raw.get("description", ""))


def _read_promoted(raw: Any, index: int, problems: list[Problem]) -> PromotedParam | None:
    ok = (isinstance(raw, dict) and isinstance(raw.get("name"), str) and set(raw) <= {"name", "title", "to", "default"}
          and isinstance(raw.get("title", ""), str) and isinstance(raw.get("to", []), list))
    pairs = [_port_end(e) for e in raw.get("to", [])] if ok else []
    if not ok or None in pairs:
        problems.append(Problem(f"params[{index}] must be {{name, title?, to: [node.param, ...], default?}}, "
                                f"got {raw!r:.80}"))
        return None
    return PromotedParam(raw["name"], pairs, raw.get("default"), raw.get("title", ""))


def fill_promoted_defaults(sub: Subgraph) -> None:
    """A promoted parameter without a default starts at the value its first inner parameter holds."""
    for promoted in sub.params:
        if promoted.default is None and promoted.to:
            node_id, name = promoted.to[0]
            node = sub.body.nodes.get(node_id)
            if node is not None and name in node.params:
                promoted.default = node.params[name]


def _read_node(raw: Any, index: int, workflow: Workflow, problems: list[Problem]) -> Node | None:
    if not isinstance(raw, dict):
        problems.append(Problem(f"nodes[{index}] must be an object"))
        return None
    node_id = raw.get("id")
    if not isinstance(node_id, str) or not NODE_ID_RE.match(node_id):
        problems.append(Problem(f"nodes[{index}]: id must be 1-64 letters, digits, '_' or '-', got {node_id!r:.60}"))
        return None
    if node_id in workflow.nodes:
        problems.append(Problem("node id is used twice", node_id))
        return None
    bad = len(problems)
    type_id, version, mode = raw.get("type"), raw.get("version"), raw.get("mode", "active")
    params, position, title = raw.get("params", {}), raw.get("position", [0, 0]), raw.get("title")
    if not isinstance(type_id, str):
        problems.append(Problem(f"'type' must be a string, got {type_id!r:.60}", node_id))
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        problems.append(Problem(f"'version' must be a positive integer, got {version!r:.60}", node_id))
    if mode not in MODES:
        problems.append(Problem(f"'mode' must be one of {', '.join(MODES)}, got {mode!r:.60}", node_id))
    if not isinstance(params, dict):
        problems.append(Problem("'params' must be an object", node_id))
    if title is not None and not isinstance(title, str):
        problems.append(Problem("'title' must be a string", node_id))
    try:
        position = _position(position)
    except (TypeError, ValueError, OverflowError):
        problems.append(Problem("'position' must be two finite numbers", node_id))
    overrides = raw.get("overrides", {})
    if not (isinstance(overrides, dict) and all(isinstance(v, dict) for v in overrides.values())):
        problems.append(Problem("'overrides' must map inner node paths to {parameter: value}", node_id))
    extra = set(raw) - {"id", "type", "version", "mode", "params", "position", "title", "overrides"}
    problems += [Problem(f"unknown key {key!r}", node_id) for key in sorted(extra)]
    if len(problems) > bad:
        return None
    return Node(node_id, type_id, version, dict(params), mode, position, title,
                {path: dict(values) for path, values in overrides.items()})


def _normalise_params(node: Node, registry: Registry, problems: list[Problem]) -> None:
    """Upgrade old node-type versions, fill defaults for parameters the file omits, canonicalise values."""
    node_type = registry.get(node.type)
    if node_type is None:
        return  # reported by validate()
    while node.version < node_type.version and node.version in node_type.upgrades:
        node.params = node_type.upgrades[node.version](dict(node.params))
        node.version += 1
    if node.version != node_type.version:
        return  # reported by validate()
    for param in node_type.params:
        if param.name not in node.params:
            node.params[param.name] = param.default
        else:
            try:
                node.params[param.name] = param.coerce(node.params[param.name])
            except ValueError:
                pass  # reported by validate()


def _read_link(raw: Any, problems: list[Problem]) -> Link | None:
    if not isinstance(raw, dict) or not {"from", "to"} <= set(raw) <= {"from", "to", "via"}:
        problems.append(Problem(f"a link must be {{\"from\": \"node.output\", \"to\": \"node.input\"}}, got {raw!r:.80}"))
        return None
    src, dst = _port_end(raw["from"]), _port_end(raw["to"])
    if src is None or dst is None:
        problems.append(Problem(f"link ends must be written 'node.port', got {raw!r:.80}"))
        return None
    via = raw.get("via", [])
    if not (isinstance(via, list) and len(via) <= MAX_REROUTES and all(_is_point(p) for p in via)):
        problems.append(Problem(f"link {raw['from']} -> {raw['to']}: 'via' must be a list of at most "
                                f"{MAX_REROUTES} [x, y] points"))
        via = []
    return Link(src[0], src[1], dst[0], dst[1], tuple(_position(p) for p in via))


MAX_REROUTES = 64


def _is_point(p: Any) -> bool:
    return (isinstance(p, list) and len(p) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in p))


def _read_group(raw: Any, problems: list[Problem]) -> Group | None:
    ok = (
        isinstance(raw, dict)
        and isinstance(raw.get("id"), str)
        and isinstance(raw.get("title", ""), str)
        and isinstance(raw.get("nodes", []), list)
        and all(isinstance(n, str) for n in raw.get("nodes", []))
        and isinstance(raw.get("color", ""), (str, type(None)))
    )
    if not ok:
        problems.append(Problem(f"a group must be {{id, title, nodes: [ids], color?}}, got {raw!r:.80}"))
        return None
    return Group(raw["id"], raw.get("title", ""), list(raw.get("nodes", [])), raw.get("color"))
