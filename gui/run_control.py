"""Run control: starting runs, showing their events on the canvas, their results in the viewer, and live mode.

It lives apart from the main window so that what happens around a run (node states, thumbnails, the log,
re-running after an edit) sits in one place, next to nothing else; the run itself goes off the UI thread
in ``gui.runner``.
"""

from __future__ import annotations

import dataclasses

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


STATE_OF = {"started": "running", "finished": "clean", "cached": "cached", "failed": "failed",
            "skipped": "skipped", "cancelled": "dirty"}
PRIORITY = ("failed", "running", "skipped", "dirty", "clean", "cached")


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
        self.states: dict[str, tuple[str, str]] = {}  # flat node id (hires/sampler) -> (state, message), last run
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
        dirty = {window.navigator.visible(n) for n in dirty}  # an instance is dirty when what runs inside it is
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
            self.start([self.window.navigator.prefix() + i for i in ids])

    def start(self, targets) -> None:
        window = self.window
        if window.runner.busy:
            window.statusBar().showMessage("a run is already going (Esc cancels it)")
            return
        if window.runner.start(window.workflow, targets, window.output_dir):
            window.statusBar().showMessage("running…")

    def on_event(self, event) -> None:
        """Show the event on the node it names, or on the instance that node runs inside (saying which)."""
        scene, flat_id = self.window.scene, event.node
        if event.kind in STATE_OF:
            self.states[event.node] = (STATE_OF[event.kind], event.message)
        if event.kind == "failed":
            self.window.log.appendPlainText(f"node '{event.node}' failed: {event.message}")
        shown = self.window.navigator.visible(event.node)
        if shown is None:
            return  # outside the level the canvas shows
        if shown != event.node.removeprefix(self.window.navigator.prefix()) and event.message:
            event = dataclasses.replace(event, message=f"{event.node}: {event.message}")
        event = dataclasses.replace(event, node=shown)
        if event.kind == "started":
            scene.set_state(event.node, "running", event.message, 0.0)
        elif event.kind == "progress":
            scene.set_state(event.node, "running", "", event.fraction)
            if event.preview is not None:
                self.previews[flat_id] = event.preview
                scene.set_thumbnail(event.node, to_pixmap(event.preview))  # the sampler shows its steps
                if event.node in scene.selected_node_ids() or not scene.selected_node_ids():
                    self.window.viewer.show_image(event.preview)
        elif event.kind == "finished":
            scene.set_state(event.node, "clean")
        elif event.kind == "cached":
            scene.set_state(event.node, "cached")
        elif event.kind == "failed":
            scene.set_state(event.node, "failed", event.message)
        elif event.kind == "skipped":
            scene.set_state(event.node, "skipped", event.message)
        elif event.kind == "cancelled":
            scene.set_state(event.node, "dirty")

    def restore_states(self) -> None:
        """After the canvas changed level: each node shows the state its last run left it in (an instance,
        the most telling state of what ran inside it: failed, then running, skipped, and so on)."""
        prefix, scene = self.window.navigator.prefix(), self.window.scene
        for node_id, item in scene.nodes.items():
            own = self.states.get(prefix + node_id)
            inner = [(flat, st) for flat, st in self.states.items() if flat.startswith(f"{prefix}{node_id}/")]
            if own is None and inner:
                flat, own = min(inner, key=lambda kv: PRIORITY.index(kv[1][0]))
                own = (own[0], f"{flat}: {own[1]}" if own[1] else "")
            if own is not None:
                item.set_state(*own)

    def on_done(self, result) -> None:
        window, scene = self.window, self.window.scene
        self.last_result = result
        if self._live_pending:
            self._live_pending = False
            self._live_timer.start()
        prefix = window.navigator.prefix()
        for node_id, reason in result.reasons.items():
            here = node_id[len(prefix):] if node_id.startswith(prefix) else None
            if here in scene.nodes and scene.nodes[here].state == "clean":
                scene.nodes[here].set_state("clean", reason)
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
        graph, prefix = self.window.graph, self.window.navigator.prefix()
        for flat_id in list(result.outputs):
            node = graph.nodes.get(flat_id[len(prefix):]) if flat_id.startswith(prefix) else None
            node_type = graph.registry.get(node.type) if node else None
            if node_type is None or not (node_type.output or flat_id in self.previews):
                continue
            image = _first_picture(result.outputs[flat_id])
            self.window.scene.set_thumbnail(node.id, to_pixmap(image) if image is not None else None)
        self.previews.clear()

    def _last_output_node(self, result) -> str | None:
        graph, prefix = self.window.graph, self.window.navigator.prefix()
        here = [n[len(prefix):] for n in result.outputs if n.startswith(prefix)]
        outputs = [n for n in here if n in graph.nodes and graph.registry.get(graph.nodes[n].type).output]
        return outputs[-1] if outputs else None

    def show_outputs(self, node_id: str | None) -> None:
        """Show the node's first picture, or its text, from the last run (an instance: its first output's)."""
        flat = self.window.navigator.flat_output(node_id) if node_id else None
        values = (self.last_result.outputs.get(flat, {}) if self.last_result and flat else {}) or {}
        image = _first_picture(values)
        placing = self.window.placement.show(node_id, self.last_result)  # its input picture, points and mask
        if image is not None and not placing:
            self.window.viewer.show_image(image)
        texts = [f"{k}: {v}" for k, v in values.items() if isinstance(v, (str, float, int))]
        self.window.preview_text.setText("\n".join(texts))
