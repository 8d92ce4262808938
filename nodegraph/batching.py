"""Batch runs: one workflow run once per job, each job with its own parameter overrides.

Jobs come from a CSV or JSON Lines file (one job a row, columns ``NODE.PARAM``), a sweep spec (parameters
and their values; every combination is a job), or a folder of images fed to a Load Image node. A job's id
is derived from its overrides, so the same job file gives the same ids on every run.

Each job writes into ``OUTPUT/<job id>/``. Its files are written under ``OUTPUT/.partial/`` and the folder
is moved into place only when the job succeeded, so a job folder is complete or absent. Then a line goes
into ``OUTPUT/manifest.jsonl``, flushed and synced: started again with the same output folder, a batch
skips the jobs the manifest says are done, so an interrupted batch resumes where it stopped.

The local engine runs the jobs in this process with one :class:`Engine`, ordered so that jobs sharing
upstream nodes (the same model, the same prompt) follow one another; the Ray engine (``batch_ray``) runs
them on a pool of actors, each with its own engine.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from . import overrides as ov
from .engine import DEFAULT_CACHE_BYTES, Engine
from .engine import _cancel_check as cancel_check
from .expand import flatten
from .errors import NodeFailed, NodegraphError, RunCancelled
from .files import inside
from .workflow import Workflow, natural_key

MANIFEST = "manifest.jsonl"
PARTIAL = ".partial"
LOCK = ".lock"
MAX_JOBS = 1_000_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")
LOAD_IMAGE = "image.load"
JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")
ID_COLUMN = "id"


class JobFileError(NodegraphError):
    """A job file, sweep spec or image folder could not be read; the message names the file, row and column."""


class BatchCancelled(NodegraphError):
    """The batch was cancelled between or during jobs; what finished is in the manifest."""


@dataclass(frozen=True)
class Job:
    """One run of the workflow: ``overrides`` maps ``"NODE.PARAM"`` to a checked value."""

    id: str
    overrides: dict[str, Any] = field(default_factory=dict)
    where: str = ""  # where it was read from, for messages: "jobs.csv row 3"


def job_id(overrides: dict[str, Any], label: str | None = None) -> str:
    """A stable id for a job: a readable part from its values, and a hash of its overrides.

    The same overrides always give the same id (that is how a resumed batch recognises finished
    jobs); the id is a single safe path component (letters, digits, ``.``, ``_``, ``-``).
    """
    canon = json.dumps(overrides, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(canon.encode()).hexdigest()[:10]
    if label is None:
        label = "_".join(_label_part(key, value) for key, value in overrides.items())
    slug = re.sub(r"[^A-Za-z0-9.-]+", "_", label)[:48].strip("._-")
    return f"{slug}-{digest}" if slug else digest


def _label_part(key: str, value: Any) -> str:
    if isinstance(value, str):
        return value[:24]
    return f"{key.rpartition('.')[2]}{value}"


# ----- reading jobs ---------------------------------------------------------------------------------

def read_jobs(source, workflow: Workflow, input_node: str | None = None) -> tuple[list[Job], int]:
    """Jobs from a file or folder (or a list of ``{"NODE.PARAM": value}`` dicts), each checked.

    Returns the jobs in the order given and how many duplicates (same overrides) were dropped.
    Raises :class:`JobFileError` naming the file, row and column of the first problem.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            jobs = _folder_jobs(path, workflow, input_node)
        else:
            if input_node is not None:
                raise JobFileError(f"{path}: --input NODE is for a folder of images")
            jobs = _file_jobs(path, workflow)
    else:
        if input_node is not None:
            raise JobFileError("--input NODE is for a folder of images")
        jobs = []
        for n, item in enumerate(source, 1):
            if isinstance(item, Job):
                item = {**item.overrides, ID_COLUMN: item.id}
            if not isinstance(item, dict):
                raise JobFileError(f"jobs[{n - 1}]: a job is a dict of NODE.PARAM values")
            jobs.append(_typed_job(workflow, f"jobs[{n - 1}]", item, "key"))
    return _unique(jobs)


def _file_jobs(path: Path, workflow: Workflow) -> list[Job]:
    suffix = path.suffix.lower()
    if not path.exists():
        raise JobFileError(f"{path}: no such file or folder")
    if suffix not in (".csv", ".jsonl", ".ndjson", ".json", ".yaml", ".yml"):
        raise JobFileError(f"{path}: give a .csv, .jsonl, .json or .yaml file, or a folder of images")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise JobFileError(f"{path}: not UTF-8 text") from None
    except OSError as e:
        raise JobFileError(f"{path}: cannot read ({e.strerror or e})") from None
    if suffix == ".csv":
        return _csv_jobs(path, text, workflow)
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl_jobs(path, text, workflow)
    return _spec_jobs(path, text, workflow)


def _csv_jobs(path: Path, text: str, workflow: Workflow) -> list[Job]:
    rows = csv.reader(text.splitlines(keepends=True))
    jobs: list[Job] = []
    header: list[str] | None = None
    try:
        for number, row in enumerate(rows, 1):
            if header is None:
                header = [cell.strip() for cell in row]
                _check_columns(path, header, workflow)
                continue
            if not any(cell.strip() for cell in row):
                continue
            where = f"{path} row {number}"
            if len(row) > len(header):
                raise JobFileError(f"{where}: {len(row)} cells, but the header names {len(header)} columns")
            overrides: dict[str, Any] = {}
            explicit = None
            for column, cell in zip(header, row):
                if column == ID_COLUMN:
                    explicit = _explicit_id(cell.strip(), f"{where}, column 'id'") if cell.strip() else None
                    continue
                if cell == "":
                    continue  # an empty cell keeps the workflow's value
                node_id, param = ov.split_key(column)
                try:
                    overrides[column] = ov.check_text(workflow, node_id, param, cell)
                except NodegraphError as e:
                    raise JobFileError(f"{where}, column {column!r}: {e}") from None
            jobs.append(Job(explicit or job_id(overrides), overrides, where))
    except csv.Error as e:
        raise JobFileError(f"{path} row {rows.line_num}: {e}") from None
    if header is None:
        raise JobFileError(f"{path}: empty (the first row names the NODE.PARAM columns)")
    if len(jobs) > MAX_JOBS:
        raise JobFileError(f"{path}: {len(jobs):,} jobs is over the {MAX_JOBS:,} job limit")
    return jobs


def _check_columns(path: Path, header: list[str], workflow: Workflow) -> None:
    seen = set()
    for n, column in enumerate(header, 1):
        if not column:
            raise JobFileError(f"{path} row 1, column {n}: no name (columns are NODE.PARAM)")
        if column in seen:
            raise JobFileError(f"{path} row 1, column {column!r}: named twice")
        seen.add(column)
        if column == ID_COLUMN:
            continue
        _check_key(workflow, column, f"{path} row 1, column {column!r}")


def _check_key(workflow: Workflow, key: str, where: str) -> tuple[str, str]:
    try:
        node_id, param = ov.split_key(key)
    except ValueError:
        raise JobFileError(f"{where}: name it NODE.PARAM (or id)") from None
    try:
        workflow.param_decl(node_id, param)
    except NodegraphError as e:
        raise JobFileError(f"{where}: {e}") from None
    return node_id, param


def _typed_job(workflow: Workflow, where: str, item: dict, word: str) -> Job:
    """A job from JSON-typed values (a JSON Lines row, a list item); text values are read like CSV cells."""
    overrides: dict[str, Any] = {}
    explicit = None
    for key, value in item.items():
        if key == ID_COLUMN:
            explicit = _explicit_id(value, f"{where}, {word} 'id'")
            continue
        node_id, param = _check_key(workflow, str(key), f"{where}, {word} {key!r}")
        try:
            if isinstance(value, str):
                overrides[key] = ov.check_text(workflow, node_id, param, value)
            else:
                overrides[key] = ov.check(workflow, node_id, param, value)
        except NodegraphError as e:
            raise JobFileError(f"{where}, {word} {key!r}: {e}") from None
    return Job(explicit or job_id(overrides), overrides, where)


def _explicit_id(value: Any, where: str) -> str:
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text is None or not JOB_ID_RE.match(text) or text == MANIFEST:
        raise JobFileError(f"{where}: {value!r} is not a usable job id "
                           "(1-100 letters, digits, '.', '_' or '-', not starting with '.')")
    return text


def _jsonl_jobs(path: Path, text: str, workflow: Workflow) -> list[Job]:
    jobs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            item = json.loads(line)
        except ValueError as e:
            raise JobFileError(f"{where}: not valid JSON ({getattr(e, 'msg', e)})") from None
        if not isinstance(item, dict):
            raise JobFileError(f"{where}: each line is a JSON object of NODE.PARAM values")
        jobs.append(_typed_job(workflow, where, item, "key"))
        if len(jobs) > MAX_JOBS:
            raise JobFileError(f"{path}: over the {MAX_JOBS:,} job limit")
    if not jobs:
        raise JobFileError(f"{path}: no jobs in it")
    return jobs


def _spec_jobs(path: Path, text: str, workflow: Workflow) -> list[Job]:
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise JobFileError(f"{path}: reading YAML needs PyYAML (pip install pyyaml); or write the sweep as JSON") from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise JobFileError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    else:
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise JobFileError(f"{path}: not valid JSON ({getattr(e, 'msg', e)})") from None
    if isinstance(doc, list):  # a list of jobs, like JSON Lines
        if not doc:
            raise JobFileError(f"{path}: no jobs in it")
        jobs = []
        for n, item in enumerate(doc):
            if not isinstance(item, dict):
                raise JobFileError(f"{path} item {n}: a job is an object of NODE.PARAM values")
            jobs.append(_typed_job(workflow, f"{path} item {n}", item, "key"))
        return jobs
    if not isinstance(doc, dict) or not isinstance(doc.get("sweep"), dict) or not doc["sweep"]:
        raise JobFileError(f"{path}: a sweep spec is an object with 'sweep': {{NODE.PARAM: values, ...}} "
                           "(and optionally 'set': {NODE.PARAM: value})")
    unknown = sorted(set(doc) - {"sweep", "set", "description"})
    if unknown:
        raise JobFileError(f"{path}: unknown key {unknown[0]!r} (a sweep spec has 'sweep' and 'set')")
    fixed: dict[str, Any] = {}
    for key, value in (doc.get("set") or {}).items():
        fixed[key] = _spec_value(workflow, path, "set", key, value)
    axes: list[list[tuple[str, Any]]] = []
    for key, spec in doc["sweep"].items():
        _check_key(workflow, str(key), f"{path}: sweep {key!r}")
        values = _spec_values(path, key, spec)
        axes.append([(key, _spec_value(workflow, path, "sweep", key, v)) for v in values])
    count = math.prod(len(axis) for axis in axes)
    if count > MAX_JOBS:
        raise JobFileError(f"{path}: the sweep makes {count:,} jobs, over the {MAX_JOBS:,} job limit")
    jobs = []
    for n, combo in enumerate(itertools.product(*axes), 1):
        overrides = {**fixed, **dict(combo)}
        label = "_".join(_label_part(k, v) for k, v in combo)
        jobs.append(Job(job_id(overrides, label), overrides, f"{path} combination {n}"))
    return jobs


def _spec_values(path: Path, key: str, spec: Any) -> list[Any]:
    where = f"{path}: sweep {key!r}"
    if isinstance(spec, list):
        if not spec:
            raise JobFileError(f"{where}: an empty list of values")
        return spec
    if isinstance(spec, dict):
        if set(spec) != {"range"} or not isinstance(spec["range"], list) or len(spec["range"]) not in (2, 3):
            raise JobFileError(f"{where}: write a list of values or {{\"range\": [start, stop, step]}}")
        bounds = spec["range"]
        if not all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds):
            raise JobFileError(f"{where}: range bounds must be numbers")
        start, stop, step = (bounds + [1])[:3]
        if step == 0:
            raise JobFileError(f"{where}: a range step of 0 never ends")
        count = math.ceil((stop - start) / step - 1e-9)
        if count <= 0:
            raise JobFileError(f"{where}: range {bounds} is empty")
        if count > MAX_JOBS:
            raise JobFileError(f"{where}: range {bounds} has {count:,} values, over the {MAX_JOBS:,} job limit")
        if all(isinstance(b, int) for b in (start, stop, step)):
            return list(range(start, stop, step))
        return [round(start + i * step, 10) for i in range(count)]
    return [spec]


def _spec_value(workflow: Workflow, path: Path, section: str, key: str, value: Any) -> Any:
    node_id, param = _check_key(workflow, str(key), f"{path}: {section} {key!r}")
    try:
        if isinstance(value, str):
            return ov.check_text(workflow, node_id, param, value)
        return ov.check(workflow, node_id, param, value)
    except NodegraphError as e:
        raise JobFileError(f"{path}: {section} {key!r} value {value!r}: {e}") from None


def _folder_jobs(folder: Path, workflow: Workflow, input_node: str | None) -> list[Job]:
    loaders = [n.id for n in workflow.nodes.values() if n.type == LOAD_IMAGE and n.mode != "muted"]
    if input_node is not None:
        node = workflow.nodes.get(input_node)
        if node is None or node.type != LOAD_IMAGE:
            raise JobFileError(f"--input {input_node!r}: the workflow has no Load Image node with that id"
                               f" (it has: {', '.join(sorted(loaders, key=natural_key)) or 'none'})")
    elif not loaders:
        raise JobFileError(f"{folder}: a folder of images needs a Load Image node in the workflow, and it has none")
    elif len(loaders) > 1:
        raise JobFileError(f"{folder}: the workflow has {len(loaders)} Load Image nodes "
                           f"({', '.join(sorted(loaders, key=natural_key))}): choose one with --input NODE")
    else:
        input_node = loaders[0]
    try:
        files = [p for p in folder.iterdir()
                 if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()]
    except OSError as e:
        raise JobFileError(f"{folder}: cannot list ({e.strerror or e})") from None
    if not files:
        raise JobFileError(f"{folder}: no images in it (PNG, JPEG, WebP or TIFF files)")
    jobs = []
    for p in sorted(files, key=lambda p: natural_key(p.name)):
        overrides = {f"{input_node}.path": ov.check(workflow, input_node, "path", str(p.resolve()))}
        jobs.append(Job(job_id(overrides, p.name), overrides, str(p)))
    return jobs


def _unique(jobs: list[Job]) -> tuple[list[Job], int]:
    seen: dict[str, Job] = {}
    for job in jobs:
        other = seen.get(job.id)
        if other is None:
            seen[job.id] = job
        elif other.overrides != job.overrides:
            raise JobFileError(f"{job.where}: job id {job.id!r} is also used by {other.where}")
    return list(seen.values()), len(jobs) - len(seen)


# ----- running jobs ----------------------------------------------------------------------------------

@dataclass
class Outcome:
    """What one job did: status ``done`` or ``failed``, the nodes it ran, the files it wrote (relative)."""

    status: str
    executed: list[str]
    files: list[Path]
    error: str | None
    seconds: float
    transient: bool = False  # failed with an unexplained exception (a device error, a bug): worth a retry


_FOLLOWS_DEFINITION = object()  # an inner parameter the instance had no value of its own for


class JobRunner:
    """One workflow and one engine running job after job: what no override touches stays cached."""

    def __init__(self, workflow: Workflow, engine: Engine):
        self.workflow, self.engine = workflow, engine
        self._base: dict[str, Any] = {}  # "node.param" -> the workflow's own value, for overridden keys

    def apply(self, overrides: dict[str, Any]) -> None:
        """Set ``overrides`` on the workflow, putting back the workflow's own values of the last job's."""
        for key in [k for k in self._base if k not in overrides]:
            node_id, param = ov.split_key(key)
            value = self._base.pop(key)
            if value is _FOLLOWS_DEFINITION:
                self.workflow.clear_override(node_id, param)
            else:
                self.workflow.set_param(node_id, param, value)
        for key, value in overrides.items():
            node_id, param = ov.split_key(key)
            self._base.setdefault(key, self._own_value(node_id, param))
            self.workflow.set_param(node_id, param, value)

    def _own_value(self, node_id: str, param: str) -> Any:
        instance, _, inner = node_id.partition("/")
        node = self.workflow.nodes[instance]
        if inner:  # inside a subgraph instance: its own value, if it has one
            return node.overrides.get(inner, {}).get(param, _FOLLOWS_DEFINITION)
        return node.params[param]

    def run(self, job: Job, folder: Path, cancel=None) -> Outcome:
        start = time.perf_counter()
        self.apply(job.overrides)
        transient = False
        try:
            result = self.engine.run(self.workflow, output_dir=folder, cancel=cancel)
            error = None
        except NodeFailed as e:
            result, error, transient = e.result, str(e), e.__cause__ is not None
        except RunCancelled:
            raise
        except NodegraphError as e:  # e.g. a model that cannot be found
            result, error = None, str(e)
        seconds = time.perf_counter() - start
        if error is not None:
            return Outcome("failed", list(result.executed) if result else [], [], error, seconds, transient)
        files = [Path(os.path.relpath(p, folder)) for p in result.files]
        return Outcome("done", list(result.executed), files, None, seconds)

    def fingerprints(self, job: Job, folder: Path) -> dict[str, str]:
        self.apply(job.overrides)
        try:
            return self.engine.fingerprints(self.workflow, output_dir=folder)
        except NodeFailed as e:  # a node that cannot even be planned: the job will fail and say why
            return dict(e.result.fingerprints) if e.result is not None else {}


def order_jobs(runner: JobRunner, jobs: list[Job], folder: Path) -> list[Job]:
    """``jobs`` reordered so that jobs sharing upstream work follow one another.

    Each job's non-output nodes are fingerprinted (without running anything) and taken from the most
    upstream down; jobs sort by the order in which each node's fingerprint first appeared. A seed sweep
    keeps its order; a grid of models x seeds becomes all seeds of the first model, then the next
    model, so each model loads once even when the cache holds only one of them.
    """
    if len(jobs) < 2:
        return list(jobs)
    wf = flatten(runner.workflow)  # the plan names inner nodes of subgraph instances by path
    plan = runner.engine.plan(runner.workflow)
    depth: dict[str, int] = {}
    sources: dict[str, list[str]] = {}
    for link in wf.links:
        sources.setdefault(link.target, []).append(link.source)
    for node_id in plan:
        depth[node_id] = 1 + max((depth.get(s, 0) for s in sources.get(node_id, ())), default=-1)
    nodes = sorted((n for n in plan if not wf.registry.get(wf.nodes[n].type).output),
                   key=lambda n: (depth[n], natural_key(n)))
    first_seen: dict[str, dict[str, int]] = {n: {} for n in nodes}
    keys = []
    for index, job in enumerate(jobs):
        prints = runner.fingerprints(job, folder)
        key = tuple(first_seen[n].setdefault(prints.get(n, ""), len(first_seen[n])) for n in nodes)
        keys.append((key, index))
    runner.apply({})
    return [jobs[index] for _, index in sorted(keys)]


# ----- the manifest ----------------------------------------------------------------------------------

class Manifest:
    """``manifest.jsonl``: one JSON line per finished job, appended and synced as each job finishes."""

    def __init__(self, path: Path):
        self.path = path
        self._file = None

    def read(self) -> dict[str, dict]:
        """The latest row of every job in the file; a line cut short by a crash is ignored."""
        rows: dict[str, dict] = {}
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return rows
        except (OSError, UnicodeDecodeError) as e:
            raise NodegraphError(f"{self.path}: cannot read the manifest ({e})") from None
        for line in text.splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("job"), str):
                rows[row["job"]] = row
        return rows

    def __enter__(self) -> Self:
        try:
            self._file = open(self.path, "a+", encoding="utf-8")
        except OSError as e:
            raise NodegraphError(f"{self.path}: cannot write the manifest ({e.strerror or e})") from None
        self._file.seek(0, os.SEEK_END)
        if self._file.tell() > 0:
            self._file.seek(self._file.tell() - 1)
            if self._file.read(1) != "\n":  # a line cut short: keep it apart from the next one
                self._file.write("\n")
        return self

    def append(self, row: dict) -> None:
        self._file.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def __exit__(self, *exc) -> None:
        self._file.close()
        self._file = None


class _FolderLock:
    """Refuses a second batch writing into the same output folder at the same time."""

    def __init__(self, folder: Path):
        self.path, self._fd = folder / LOCK, None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # not on this platform: go on without the guard
            return self
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            self._fd = None
            raise NodegraphError(f"another batch is writing into {self.path.parent} now: "
                                 "wait for it to finish, or choose another output folder") from None
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock


def workflow_digest(workflow: Workflow) -> str:
    """A hash of what the workflow computes (nodes, parameters, modes, links), not of its layout."""
    doc = workflow.to_dict()
    nodes = [{k: n[k] for k in ("id", "type", "version", "mode", "params")} for n in doc["nodes"]]
    text = json.dumps([nodes, doc["links"]], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _canonical(overrides) -> str:
    return json.dumps(overrides, sort_keys=True, ensure_ascii=False)


def staging_folder(out: Path, job: Job) -> Path:
    """A new empty folder under ``out/.partial`` for one attempt at a job, moved into place when it succeeds.

    Each attempt gets its own name: output nodes are fingerprinted with their folder, so a job run again
    by an engine that ran it before writes its files again instead of finding them cached.
    """
    folder = inside(out, f"{PARTIAL}/{job.id}.{uuid.uuid4().hex[:8]}")
    folder.mkdir(parents=True)
    return folder


def commit(out: Path, job: Job, staged: Path, files: list[Path]) -> list[str]:
    """Move a finished job's staged folder to ``out/<job id>``; returns its files relative to ``out``."""
    for rel in files:  # on disk before the manifest says they are there
        fd = os.open(staged / rel, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    final = inside(out, job.id)
    if final.exists():  # from a run that stopped between moving it here and writing its manifest line
        shutil.rmtree(final)
    os.replace(staged, final)
    return [f"{job.id}/{rel.as_posix()}" for rel in files]


def make_row(job: Job, outcome: Outcome, outputs: list[str], worker: str, digest: str) -> dict:
    return {
        "job": job.id,
        "status": outcome.status,
        "overrides": job.overrides,
        "outputs": outputs,
        "error": outcome.error,
        "seconds": round(outcome.seconds, 4),
        "worker": worker,
        "executed": outcome.executed,
        "workflow": digest,
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
    }


class Progress:
    """A tqdm bar counting jobs: done, failed, running (on a terminal; silent otherwise)."""

    def __init__(self, total: int, done: int, failed: int, enabled: bool):
        self.done, self.failed, self.running = done, failed, 0
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done + failed, unit="job", desc="batch", file=sys.stderr,
                            dynamic_ncols=True)
            self._show()

    def finished(self, row: dict) -> None:
        if row["status"] == "done":
            self.done += 1
        else:
            self.failed += 1
        if self.bar is not None:
            self.bar.update(1)
            self._show()

    def set_running(self, running: int) -> None:
        if running != self.running:
            self.running = running
            self._show()

    def _show(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix(done=self.done, failed=self.failed, running=self.running)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def worker_name() -> str:
    return f"local {socket.gethostname()} pid {os.getpid()}"


def _run_local(runner: JobRunner, jobs: list[Job], out: Path, manifest: Manifest, digest: str,
               progress: Progress, on_row, cancel) -> None:
    check = cancel_check(cancel)
    worker = worker_name()
    for job in order_jobs(runner, jobs, out / PARTIAL / "_"):
        if check():
            raise RunCancelled()
        staged = staging_folder(out, job)
        try:
            progress.set_running(1)
            outcome = runner.run(job, staged, cancel=check)
            outputs = commit(out, job, staged, outcome.files) if outcome.status == "done" else []
        finally:
            shutil.rmtree(staged, ignore_errors=True)
            progress.set_running(0)
        row = make_row(job, outcome, outputs, worker, digest)
        manifest.append(row)
        progress.finished(row)
        if on_row is not None:
            on_row(row)


def _ray_module():
    try:
        import ray  # noqa: F401
    except ImportError:
        raise NodegraphError("--engine ray needs Ray: pip install 'nodegraph[ray]'") from None
    from . import batch_ray

    return batch_ray


def batch(
    workflow: Workflow | str | os.PathLike,
    jobs: str | os.PathLike | Iterable[dict],
    engine: str | Engine = "local",
    output_dir: str | os.PathLike = "output",
    *,
    device: str = "auto",
    input_node: str | None = None,
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    retries: int = 2,
    retry_failed: bool = False,
    progress: bool | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
    on_row: Callable[[dict], None] | None = None,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """Run ``workflow`` once per job and return the manifest row of every job, in the jobs' order.

    ``jobs``: a CSV / JSON Lines / sweep spec file, a folder of images (``input_node`` names the Load
    Image node they feed when the workflow has several), or a list of ``{"NODE.PARAM": value}`` dicts.
    ``engine``: ``"local"`` (this process, one engine; or pass an :class:`Engine` to reuse its cache)
    or ``"ray"`` (a pool of ``workers`` actors on the cluster at ``address``, ``gpus_per_worker`` GPUs
    each, a job whose worker dies or that fails with an unexplained error retried ``retries`` times).
    Jobs that the manifest in ``output_dir`` lists as done are skipped (and failed ones too, unless
    ``retry_failed``). ``on_row`` is called with each new manifest row; ``cancel`` stops the batch
    (raising :class:`BatchCancelled`) with everything finished so far kept.
    """
    from .document import load

    log = log or (lambda message: print(message, file=sys.stderr))
    ray_engine = None
    if isinstance(engine, Engine):
        local_engine = engine
    elif engine == "local":
        local_engine = None
    elif engine == "ray":
        ray_engine, local_engine = _ray_module(), None
    else:
        raise NodegraphError(f"unknown engine {engine!r}: use local or ray")
    if ray_engine is None:
        for name, value in (("address", address), ("gpus_per_worker", gpus_per_worker)):
            if value:
                raise NodegraphError(f"{name} is for the ray engine")
        if workers not in (None, 1):
            raise NodegraphError("the local engine runs one job at a time: use --engine ray for several workers")
    if retries < 0:
        raise NodegraphError("retries must be 0 or more")
    if workers is not None and workers < 1:
        raise NodegraphError("workers must be 1 or more")
    if ray_engine is None and local_engine is None:
        local_engine = Engine(device=device, cache_bytes=cache_bytes)
        _ = local_engine.torch_device  # a bad device is reported before anything runs
    wf = workflow if isinstance(workflow, Workflow) else load(workflow)
    job_list, duplicates = read_jobs(jobs, wf, input_node)
    if duplicates:
        log(f"{duplicates} duplicate job{'s' * (duplicates != 1)} (the same overrides) will run once")
    out = Path(output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NodegraphError(f"{out}: cannot create the output folder ({e.strerror or e})") from None
    with _FolderLock(out):
        manifest = Manifest(out / MANIFEST)
        previous = manifest.read()
        digest = workflow_digest(wf)
        other = next((row for row in previous.values() if row.get("workflow") != digest), None)
        if other is not None:
            raise NodegraphError(f"{manifest.path}: job {other['job']!r} there was run with another version of "
                                 "this workflow; write this batch to another output folder")
        for job in job_list:
            row = previous.get(job.id)
            if row is not None and _canonical(row.get("overrides")) != _canonical(job.overrides):
                raise NodegraphError(f"{manifest.path}: job {job.id!r} there was run with other values "
                                     f"({_canonical(row.get('overrides'))}); give the job another id, "
                                     "or write this batch to another output folder")
        finished = {"done"} if retry_failed else {"done", "failed"}
        todo = [job for job in job_list if previous.get(job.id, {}).get("status") not in finished]
        skipped = [previous[job.id] for job in job_list if previous.get(job.id, {}).get("status") in finished]
        shutil.rmtree(out / PARTIAL, ignore_errors=True)  # what a stopped batch left half-written
        bar = Progress(len(job_list), sum(r["status"] == "done" for r in skipped),
                       sum(r["status"] != "done" for r in skipped),
                       sys.stderr.isatty() if progress is None else progress)
        try:
            with manifest:
                if not todo:
                    pass
                elif ray_engine is not None:
                    ray_engine.run(wf, todo, out, manifest, digest, bar, on_row=on_row, cancel=cancel,
                                   address=address, workers=workers, gpus_per_worker=gpus_per_worker,
                                   retries=retries, device=device, cache_bytes=cache_bytes, log=log)
                else:
                    runner = JobRunner(wf, local_engine)
                    try:
                        _run_local(runner, todo, out, manifest, digest, bar, on_row, cancel)
                    finally:
                        runner.apply({})
        except RunCancelled:
            rows = manifest.read()
            done = sum(1 for job in job_list if rows.get(job.id, {}).get("status") in finished)
            raise BatchCancelled(f"cancelled after {done} of {len(job_list)} jobs; "
                                 "run the batch again with the same output folder to go on") from None
        finally:
            bar.close()
            shutil.rmtree(out / PARTIAL, ignore_errors=True)
        rows = manifest.read()
    return [rows[job.id] for job in job_list if job.id in rows]
