"""Run control: starting runs, showing their events on the canvas, their results in the viewer, and live mode.

It lives apart from the main window so that what happens around a run (node states, thumbnails, the log,
re-running after an edit) sits in one place, next to nothing else; the run itself goes off the UI thread
in ``gui.runner``.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer

import nodegraph

from .viewer import to_pixmap


def _first_picture(values: dict):
    """The first IMAGE or MASK among a node's outputs, or None."""
    import torch

    for value in values.values():
        if isinstance(value, torch.Tensor) and value.ndim == 4 and value.shape[1] in (1, 3):
            return value
    return None


class RunControl(QObject):
    """The runs of one window. ``window`` is the MainWindow: its runner runs, its scene shows node states,
    its viewer, log and status bar show what came of a run, and its output folder is where files go.

    A QObject child of the window, so the runner's signals (emitted on the run's thread) reach these
    methods on the UI thread."""

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.last_result: nodegraph.RunResult | None = None
        self.previews: dict[str, object] = {}  # node id -> latest preview IMAGE from progress events
        self.live = window.prefs.live_mode()
        self._live_timer = QTimer(self, singleShot=True, interval=300)  # debounce: one run per pause in editing
        self._live_timer.timeout.connect(self._live_run)
        self._live_pending = False

    # ----- live mode: an edit re-runs the dirty part of the graph after a short pause ----------------
    def set_live(self, on: bool) -> None:
        self.live = on
        self.window.live_action.setChecked(on)
        self.window.prefs.set(live_mode=on)
        if on:
            self._live_timer.start()

    def edited(self, changed: bool) -> None:
        """After an edit: show what the next run would execute, and in live mode run it after a pause."""
        self.mark_dirty()
        if changed and self.live:
            self._live_timer.start()

    def _live_run(self) -> None:
        if self.window.runner.busy:  # the running graph is out of date: stop it, run again when it has stopped
            self._live_pending = True
            self.window.runner.cancel()
            return
        self.start(None)

    def mark_dirty(self) -> None:
        """Show which nodes the next run would execute (only while no run is using the engine)."""
        window = self.window
        if window.runner.busy:
            return
        try:
            dirty = window.runner.engine.dirty(window.workflow, output_dir=window.output_dir)
        except nodegraph.NodegraphError:
            return  # an unfinished graph (a required input not linked yet)
        for node_id, item in window.scene.nodes.items():
            if item.state in ("failed", "running"):
                continue
            if node_id in dirty:
                item.set_state("dirty")
            elif item.state == "dirty":
                item.set_state("clean")

    # ----- running -------------------------------------------------------------------------------
    def run_all(self) -> None:
        self.start(None)

    def run_selected(self) -> None:
        ids = self.window.scene.selected_node_ids()
        if ids:
            self.start(ids)

    def start(self, targets) -> None:
        window = self.window
        if window.runner.busy:
            window.statusBar().showMessage("a run is already going (Esc cancels it)")
            return
        if window.runner.start(window.workflow, targets, window.output_dir):
            window.statusBar().showMessage("running…")

    def on_event(self, event) -> None:
        scene = self.window.scene
        if event.kind == "started":
            scene.set_state(event.node, "running", event.message, 0.0)
        elif event.kind == "progress":
            scene.set_state(event.node, "running", "", event.fraction)
            if event.preview is not None:
                self.previews[event.node] = event.preview
                scene.set_thumbnail(event.node, to_pixmap(event.preview))  # the sampler shows its steps
                if event.node in scene.selected_node_ids() or not scene.selected_node_ids():
                    self.window.viewer.show_image(event.preview)
        elif event.kind == "finished":
            scene.set_state(event.node, "clean")
        elif event.kind == "cached":
            scene.set_state(event.node, "cached")
        elif event.kind == "failed":
            scene.set_state(event.node, "failed", event.message)
            self.window.log.appendPlainText(f"node '{event.node}' failed: {event.message}")
        elif event.kind == "skipped":
            scene.set_state(event.node, "skipped", event.message)
        elif event.kind == "cancelled":
            scene.set_state(event.node, "dirty")

    def on_done(self, result) -> None:
        window, scene = self.window, self.window.scene
        self.last_result = result
        if self._live_pending:
            self._live_pending = False
            self._live_timer.start()
        for node_id, reason in result.reasons.items():
            if node_id in scene.nodes and scene.nodes[node_id].state == "clean":
                scene.nodes[node_id].set_state("clean", reason)
            window.log.appendPlainText(f"ran {node_id}: {reason}")
        for path in result.files:
            window.log.appendPlainText(f"wrote {path}")
        self._update_thumbnails(result)
        summary = (f"{len(result.executed)} ran, {len(result.cached)} cached"
                   if result.status == "ok" else f"{result.status}: {result.error or ''}")
        window.statusBar().showMessage(summary)
        ids = scene.selected_node_ids()
        self.show_outputs(ids[0] if ids else self._last_output_node(result))
        self.mark_dirty()

    def _update_thumbnails(self, result) -> None:
        """Output nodes (and nodes that showed previews) get the last picture they made drawn on them."""
        workflow = self.window.workflow
        for node_id in list(result.outputs):
            node = workflow.nodes.get(node_id)
            node_type = workflow.registry.get(node.type) if node else None
            if node_type is None or not (node_type.output or node_id in self.previews):
                continue
            image = _first_picture(result.outputs[node_id])
            self.window.scene.set_thumbnail(node_id, to_pixmap(image) if image is not None else None)
        self.previews.clear()

    def _last_output_node(self, result) -> str | None:
        workflow = self.window.workflow
        outputs = [n for n in result.outputs if n in workflow.nodes
                   and workflow.registry.get(workflow.nodes[n].type).output]
        return outputs[-1] if outputs else None

    def show_outputs(self, node_id: str | None) -> None:
        """Show the node's first picture, or its text, from the last run."""
        values = (self.last_result.outputs.get(node_id, {}) if self.last_result and node_id else {}) or {}
        image = _first_picture(values)
        if image is not None:
            self.window.viewer.show_image(image)
        texts = [f"{k}: {v}" for k, v in values.items() if isinstance(v, (str, float, int))]
        self.window.preview_text.setText("\n".join(texts))
