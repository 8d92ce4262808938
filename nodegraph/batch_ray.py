"""The Ray engine for batches: a pool of actors, each owning an Engine whose models stay loaded.

Imported only for ``--engine ray``. Ray does the scheduling, GPU placement (``num_gpus`` per actor),
restarts and retries: actors are created with ``max_restarts=-1`` and ``max_task_retries=R``, so a
worker that dies is restarted by Ray and the jobs it had are run again; a job that fails with an
unexplained exception (a device error, a bug) raises :class:`TransientJobError`, which Ray retries too
(``retry_exceptions``). A job that still fails is recorded as failed and the batch goes on. An actor
that is gone for good (killed without restart, its node lost) is replaced and its jobs handed to the
replacement.

Routing: the jobs arrive ordered so that jobs sharing upstream work are neighbours; each actor takes a
contiguous run of them, and an actor that runs dry takes the second half of the longest remaining run,
so similar jobs tend to land on the same actor and its cache. The driver (this process) is the only
writer of the output folder and the manifest: actors send back the bytes of the files a job wrote.

Actors are named ``nodegraph-batch-<batch>-w<i>`` (``-r<n>`` for a replacement), in the driver's namespace,
so ``ray.util.list_named_actors()`` finds them.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections import deque
from pathlib import Path

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError

from .batching import (
    Job,
    JobRunner,
    Outcome,
    cancel_check,
    commit,
    make_row,
    order_jobs,
    staging_folder,
)
from .document import loads
from .engine import Engine
from .errors import NodegraphError, RunCancelled
from .files import atomic_write, inside
from .registry import REGISTRY

IN_FLIGHT = 2  # jobs handed to an actor at once: the next one waits in its queue while one runs
PING_SECONDS = 120


class TransientJobError(Exception):
    """A job failed with an unexplained exception; Ray retries it (``retry_exceptions``)."""


@ray.remote
class BatchWorker:
    """One engine with one workflow; jobs run one after another, models stay loaded between them."""

    def __init__(self, workflow_text: str, base_dir: str | None, device: str, cache_bytes: int, name: str):
        workflow = loads(workflow_text, source=name)
        workflow.base_dir = Path(base_dir) if base_dir else None
        self.runner = JobRunner(workflow, Engine(device=device, cache_bytes=cache_bytes))
        self.name = f"{name} pid {os.getpid()} on {socket.gethostname()}"

    def ping(self) -> str:
        return self.name

    @ray.method(retry_exceptions=[TransientJobError])
    def run(self, job: Job) -> tuple[dict, dict[str, bytes]]:
        with tempfile.TemporaryDirectory(prefix="nodegraph-job-") as tmp:
            folder = Path(tmp) / "out"
            outcome = self.runner.run(job, folder)
            if outcome.status == "failed" and outcome.transient:
                raise TransientJobError(outcome.error)
            files = {rel.as_posix(): (folder / rel).read_bytes() for rel in outcome.files}
        return {"outcome": outcome, "worker": self.name}, files


class _Pool:
    def __init__(self, workflow, count: int, gpus: float, retries: int, device: str, cache_bytes: int):
        self.args = (workflow.dumps(), str(workflow.base_dir) if workflow.base_dir else None, device, cache_bytes)
        self.options = {"num_cpus": 1, "num_gpus": gpus, "max_restarts": -1, "max_task_retries": retries}
        self.prefix = f"nodegraph-batch-{uuid.uuid4().hex[:8]}"
        self.replaced = 0
        self.names = [f"{self.prefix}-w{i}" for i in range(count)]
        self.actors = [self._start(name) for name in self.names]

    def _start(self, name: str):
        return BatchWorker.options(name=name, **self.options).remote(*self.args, name)

    def replace(self, i: int) -> None:
        self.replaced += 1
        self.names[i] = f"{self.prefix}-w{i}-r{self.replaced}"
        self.actors[i] = self._start(self.names[i])

    def alive(self, i: int) -> bool:
        try:
            ray.get(self.actors[i].ping.remote(), timeout=PING_SECONDS)
            return True
        except (RayActorError, GetTimeoutError):
            return False

    def stop(self) -> None:
        for actor in self.actors:
            try:
                ray.kill(actor)
            except RayError:
                pass


def run(workflow, jobs: list[Job], out: Path, manifest, digest: str, progress, *, on_row, cancel, address,
        workers, gpus_per_worker, retries, device, cache_bytes, log) -> None:
    if workflow.registry.base is not REGISTRY:
        raise NodegraphError("the ray engine runs workflows of registered node types only "
                             "(its workers find nodes through the nodegraph.nodes entry points)")
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, TimeoutError, ValueError) as e:
            where = f" at {address}" if address else ""
            raise NodegraphError(f"cannot start or reach a Ray cluster{where}: {_first_line(e)}") from None
        started = True
    elif address:
        log(f"Ray is already connected here; --address {address} is not used")
    pool = None
    try:
        count, gpus = _size(workers, gpus_per_worker, len(jobs), log)
        ordered = order_jobs(JobRunner(workflow, Engine(device="cpu")), jobs, out / ".partial" / "_")
        pool = _Pool(workflow, count, gpus, retries, device, cache_bytes)
        _Dispatch(pool, ordered, out, manifest, digest, progress, on_row, cancel, retries).run()
    finally:
        if pool is not None:
            pool.stop()
        if started:
            ray.shutdown()


def _size(workers: int | None, gpus_per_worker: float | None, jobs: int, log) -> tuple[int, float]:
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    per = (1 if gpus else 0) if gpus_per_worker is None else gpus_per_worker
    if per < 0:
        raise NodegraphError("gpus per worker must be 0 or more")
    if per > 0 and not gpus:
        raise NodegraphError("the Ray cluster has no GPUs: use --gpus-per-worker 0 to run on CPUs")
    fit = int(min(cpus, gpus / per if per else cpus))
    count = workers or max(1, fit)
    if count > fit:
        log(f"{count} workers asked for, {fit} fit on the cluster now (1 CPU{f', {per:g} GPU' if per else ''} "
            "each): the others start when resources free up")
    return max(1, min(count, jobs)), per


class _Dispatch:
    """Hands ordered runs of jobs to the actors and records each result as it comes back."""

    def __init__(self, pool: _Pool, jobs: list[Job], out, manifest, digest, progress, on_row, cancel, retries):
        self.pool, self.out, self.manifest, self.digest = pool, out, manifest, digest
        self.progress, self.on_row, self.retries = progress, on_row, retries
        self.cancelled = cancel_check(cancel)
        n = len(pool.actors)
        bounds = [round(i * len(jobs) / n) for i in range(n + 1)]
        self.queues = [deque(jobs[bounds[i]:bounds[i + 1]]) for i in range(n)]
        self.in_flight: dict = {}  # object ref -> (actor index, actor handle, job)
        self.busy = [0] * n
        self.handovers: dict[str, int] = {}

    def run(self) -> None:
        for i in range(len(self.queues)):
            self._feed(i)
        while self.in_flight:
            if self.cancelled():
                raise RunCancelled()
            self.progress.set_running(sum(1 for b in self.busy if b))
            ready, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=0.5)
            for ref in ready:
                i, actor, job = self.in_flight.pop(ref)
                self.busy[i] -= 1
                self._settle(ref, i, actor, job)
                self._feed(i)
        self.progress.set_running(0)

    def _next(self, i: int) -> Job | None:
        if self.queues[i]:
            return self.queues[i].popleft()
        longest = max(range(len(self.queues)), key=lambda k: len(self.queues[k]))
        victim = self.queues[longest]
        if not victim:
            return None
        take = (len(victim) + 1) // 2  # the second half of the longest run: it stays contiguous
        stolen = [victim.pop() for _ in range(take)][::-1]
        self.queues[i].extend(stolen[1:])
        return stolen[0]

    def _feed(self, i: int) -> None:
        while self.busy[i] < IN_FLIGHT:
            job = self._next(i)
            if job is None:
                return
            actor = self.pool.actors[i]
            self.in_flight[actor.run.remote(job)] = (i, actor, job)
            self.busy[i] += 1

    def _settle(self, ref, i: int, actor, job: Job) -> None:
        files: dict[str, bytes] = {}
        try:
            reply, files = ray.get(ref)
            outcome, worker = reply["outcome"], reply["worker"]
        except TransientJobError as e:
            outcome, worker = self._failed(f"{_cause(e)} (tried {self.retries + 1} times)"), self.pool.names[i]
        except RayActorError as e:
            if actor is self.pool.actors[i] and not self.pool.alive(i):
                if self.pool.replaced >= len(self.pool.actors) * (self.retries + 1):
                    raise NodegraphError(f"the Ray workers keep dying; the last one: {_first_line(e)}") from None
                self.pool.replace(i)  # gone for good: a new actor takes over its place and its jobs
            if actor is not self.pool.actors[i]:
                self.handovers[job.id] = self.handovers.get(job.id, 0) + 1
                if self.handovers[job.id] <= self.retries:
                    self.queues[i].appendleft(job)
                    return
            outcome = self._failed(f"its worker died (tried {self.retries + 1} times): {_first_line(e)}")
            worker = self.pool.names[i]
        except RayError as e:  # anything else Ray could not do for this job
            outcome, worker = self._failed(_first_line(e)), self.pool.names[i]
        outputs = []
        if outcome.status == "done":
            staged = staging_folder(self.out, job)
            for rel, data in files.items():
                target = inside(staged, rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(target, data)
            outputs = commit(self.out, job, staged, outcome.files)
        row = make_row(job, outcome, outputs, worker, self.digest)
        self.manifest.append(row)
        self.progress.finished(row)
        if self.on_row is not None:
            self.on_row(row)

    @staticmethod
    def _failed(error: str) -> Outcome:
        return Outcome("failed", [], [], error, 0.0)


def _cause(e: BaseException) -> str:
    cause = getattr(e, "cause", None)
    return str(cause.args[0]) if cause is not None and cause.args else _first_line(e)


def _first_line(e: BaseException, limit: int = 240) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
