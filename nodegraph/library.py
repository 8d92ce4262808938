"""The subgraph library: folders of subgraph files that appear in the palette like built-in nodes.

A library file (``hires_fix.json``) holds one published definition and the definitions it uses::

    {"format": "nodegraph-subgraph", "version": 2, "subgraph": "hires_fix", "subgraphs": [...]}

Folders, first match of an id wins: ``$NODEGRAPH_SUBGRAPHS`` (several separated by ``os.pathsep``), the
user's ``subgraphs`` folder beside the settings file (``~/.config/nodegraph/subgraphs``, where Publish
writes), a ``subgraphs`` folder in each model folder, then the ``subgraphs`` folder each node package ships.

A workflow never points into the library: adding a library subgraph copies its definition into the
workflow, so the workflow opens and runs the same when the library changes. :func:`updates` says which
embedded definitions the library now has a newer version of.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import NodegraphError, Problem, WorkflowFileError
from .files import atomic_write
from .migrations import FORMAT as WORKFLOW_FORMAT, VERSION
from .settings import model_folders, settings_path
from .subgraph import PREFIX, SUBGRAPH_ID_RE, Subgraph, subgraph_id
from .subgraph_edit import carry_definitions, needed_definitions

FORMAT = "nodegraph-subgraph"
ENV = "NODEGRAPH_SUBGRAPHS"
MAX_FILE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Entry:
    """One published subgraph: where it lies and what it declares."""

    id: str
    version: int
    title: str
    description: str
    category: str
    path: Path


def user_folder() -> Path:
    """Where Publish writes: ``subgraphs`` beside the settings file."""
    return settings_path().parent / "subgraphs"


def folders() -> list[Path]:
    """Every library folder, in the order an id is looked up."""
    found = [Path(p).expanduser() for p in os.environ.get(ENV, "").split(os.pathsep) if p]
    found.append(user_folder())
    found += [Path(m) / "subgraphs" for m in model_folders()]
    found += _package_folders()
    return list(dict.fromkeys(found))


def _package_folders() -> list[Path]:
    from importlib.metadata import entry_points

    names = sorted({ep.value for ep in entry_points(group="nodegraph.nodes")} | {"nodes"})
    found = []
    for name in names:
        spec = importlib.util.find_spec(name)
        for location in (spec.submodule_search_locations or []) if spec else []:
            found.append(Path(location) / "subgraphs")
    return found


_parsed: dict[Path, tuple[tuple[int, int], object]] = {}


def read_file(path: Path, registry=None):
    """The definitions a library file holds, as a workflow's ``subgraphs`` (the published one is
    ``workflow.metadata['subgraph']``); every problem raises :class:`NodegraphError` naming the file."""
    from .document import from_dict

    try:
        stat = path.stat()
        if stat.st_size > MAX_FILE_BYTES:
            raise WorkflowFileError(f"{path}: {stat.st_size} bytes is larger than the {MAX_FILE_BYTES} byte limit")
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = _parsed.get(path)
        if cached is not None and cached[0] == stamp and registry is None:
            return cached[1]
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise WorkflowFileError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    except ValueError as e:
        raise WorkflowFileError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise WorkflowFileError(f"{path}: not a subgraph file ('format' must be {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise WorkflowFileError(f"{path}: subgraph files are format version {VERSION}, this one says "
                                f"{doc.get('version')!r}")
    main = doc.get("subgraph")
    as_workflow = {"format": WORKFLOW_FORMAT, "version": VERSION, "nodes": [], "links": [],
                   "subgraphs": doc.get("subgraphs", [])}
    workflow, problems = from_dict(as_workflow, registry, library=False)
    if not problems:
        from .validate import validate

        problems = validate(workflow)
    if main not in workflow.subgraphs:
        problems.append(Problem(f"'subgraph' must name one of its subgraphs, got {main!r:.60}"))
    if problems:
        raise WorkflowFileError(f"{path}: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1
                                                             else ""))
    workflow.metadata["subgraph"] = main
    if registry is None:
        _parsed[path] = (stamp, workflow)
    return workflow


def entries(log=None) -> dict[str, Entry]:
    """The published subgraphs by id (the first folder holding an id wins). A file that cannot be read
    is passed to ``log`` and left out, so one broken file never hides the rest."""
    found: dict[str, Entry] = {}
    for folder in folders():
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
            try:
                workflow = read_file(path)
            except NodegraphError as e:
                if log is not None:
                    log(str(e))
                continue
            sub = workflow.subgraphs[workflow.metadata["subgraph"]]
            if sub.id not in found:
                found[sub.id] = Entry(sub.id, sub.version, sub.title, sub.description, sub.category, path)
    return found


def declarations(log=None) -> list:
    """The node type each published subgraph declares (as its instances are drawn and listed)."""
    found = []
    for entry in entries(log).values():
        try:
            found.append(read_file(entry.path).subgraphs[entry.id].node_type())
        except NodegraphError as e:
            if log is not None:
                log(str(e))
    return found


def embed(workflow, sub_id: str) -> Subgraph:
    """Copy library subgraph ``sub_id`` (and those it uses) into ``workflow``, returning its definition.
    One the workflow already defines is kept as it is: the workflow's own copy always wins."""
    root = workflow.root()
    if sub_id in root.subgraphs:
        return root.subgraphs[sub_id]
    entry = entries().get(sub_id)
    if entry is None:
        raise NodegraphError(f"no subgraph {sub_id!r} in the library (folders: "
                             f"{', '.join(str(f) for f in folders())})")
    carry_definitions(read_file(entry.path), root, [sub_id])
    return root.subgraphs[sub_id]


def embed_missing(workflow) -> list[str]:
    """Embed the library definition of every instance whose subgraph the workflow does not define (a
    hand-written file may name a library subgraph without carrying it). Returns the ids embedded."""
    root = workflow.root()
    wanted = {sid for n in root.all_instances() if (sid := subgraph_id(n.type)) and sid not in root.subgraphs}
    if not wanted:
        return []
    available = entries()
    embedded = []
    for sub_id in sorted(wanted):
        if sub_id in available:
            embed(root, sub_id)
            embedded.append(sub_id)
    return embedded


def updates(workflow) -> dict[str, tuple[int, int]]:
    """Embedded subgraphs the library holds a newer version of: id -> (embedded, library) versions."""
    available = entries()
    return {sid: (sub.version, available[sid].version) for sid, sub in workflow.root().subgraphs.items()
            if sid in available and available[sid].version > sub.version}


def publish(workflow, sub_id: str, folder: str | os.PathLike | None = None) -> Path:
    """Write subgraph ``sub_id`` with the definitions it uses to ``<folder>/<id>.json`` (the user's library
    folder by default). Publishing a changed definition again bumps its version, in the file and in the
    workflow (whose instances follow), so workflows holding the older copy can tell."""
    root = workflow.root()
    sub = root.subgraphs.get(sub_id)
    if sub is None or not SUBGRAPH_ID_RE.match(sub_id):
        raise NodegraphError(f"no subgraph {sub_id!r} in this workflow")
    from .validate import validate

    needed = needed_definitions(root, [sub_id])
    inside = tuple(f"{PREFIX}{k}" for k in needed)
    problems = [p for p in validate(root) if p.node and p.node.split("/")[0] in inside]
    if problems:
        raise NodegraphError(f"subgraph {sub_id!r} cannot be published: {problems[0]}")
    folder = Path(folder) if folder is not None else user_folder()
    path = folder / f"{sub_id}.json"
    previous = None
    if path.exists():
        try:
            previous = read_file(path).subgraphs.get(sub_id)
        except NodegraphError:
            previous = None
    if previous is not None and _text(previous, version=0) != _text(sub, version=0):
        _set_version(root, sub, max(sub.version, previous.version) + 1)
    elif previous is not None and previous.version > sub.version:
        _set_version(root, sub, previous.version)
    doc = {"format": FORMAT, "version": VERSION, "subgraph": sub_id,
           "subgraphs": [root.subgraphs[k].to_dict() for k in sorted(needed)]}
    from .workflow import _format

    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (_format(doc, 0) + "\n").encode("utf-8"))
    _parsed.pop(path, None)
    return path


def _text(sub: Subgraph, version: int) -> str:
    doc = sub.to_dict()
    doc["version"] = version
    return json.dumps(doc, sort_keys=True)


def _set_version(root, sub: Subgraph, version: int) -> None:
    sub.version = version
    for node in root.all_instances():
        if subgraph_id(node.type) == sub.id:
            node.version = version
            node._digest = None
    sub.touch()
