"""Runs the engine off the UI thread and hands its events to the UI as Qt signals."""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

import nodegraph


class Runner(QObject):
    """One engine, one run at a time. Each run works on a copy of the workflow, so the user can keep
    editing; the cache is keyed by content, so the copy finds everything the last run left."""

    event = Signal(object)  # nodegraph.Event, delivered on the UI thread
    done = Signal(object)  # RunResult (also for a failed or cancelled run, with its status)

    def __init__(self, engine: nodegraph.Engine, parent=None):
        super().__init__(parent)
        self.engine = engine
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, workflow: nodegraph.Workflow, targets=None, output_dir="output") -> bool:
        if self.busy:
            return False
        self._cancel = threading.Event()
        snapshot = workflow.copy()
        self._thread = threading.Thread(target=self._run, args=(snapshot, targets, output_dir, self._cancel),
                                        name="nodegraph-run", daemon=True)
        self._thread.start()
        return True

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, workflow, targets, output_dir, cancel) -> None:
        try:
            result = self.engine.run(workflow, targets=targets, on_event=self.event.emit, cancel=cancel,
                                     output_dir=output_dir)
        except (nodegraph.NodeFailed, nodegraph.RunCancelled) as e:
            result = e.result or nodegraph.RunResult(status="failed", error=str(e))
        except nodegraph.NodegraphError as e:  # an invalid workflow: nothing ran
            result = nodegraph.RunResult(status="failed", error=str(e))
        self.done.emit(result)
