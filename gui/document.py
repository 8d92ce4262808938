"""The document: the workflow as a file (new, open, examples, save, save as), its undo history, autosave and
recovery after a crash, and the window title that says which file it is and whether it is saved.

It lives apart from the main window so that what is being edited, and what Save or Undo does to it, is one
concern with its own state (the path, the text as saved, the last recorded snapshot), apart from the
widgets that show the workflow and the runs that read it.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QUndoCommand, QUndoStack
from PySide6.QtWidgets import QFileDialog, QMessageBox

import nodegraph
from nodegraph import library

AUTOSAVE_MS = 30_000


def recovery_dir() -> Path:
    import os

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nodegraph" / "recovery"


class Snapshot(QUndoCommand):
    """One edit, as the canonical document before and after it (every kind of edit undoes the same way)."""

    def __init__(self, document: "Document", before: str, after: str):
        super().__init__("edit")
        self.document, self.before, self.after, self.first = document, before, after, True
        self.base_dir = document.window.workflow.base_dir  # what the documents' relative paths are relative to

    def redo(self) -> None:
        if self.first:  # the edit is already done when the command is pushed
            self.first = False
            return
        self.document.restore(self.after, self.base_dir)

    def undo(self) -> None:
        self.document.restore(self.before, self.base_dir)


class Document:
    """The open workflow's file and history. ``window`` is the MainWindow: its scene holds the workflow (the
    one truth), and its dialogs, log, status bar and title speak to the user; a new workflow, an undo or a
    recovery asks its run control to show what is dirty."""

    def __init__(self, window):
        self.window = window
        self.path: Path | None = None
        self.saved_text = ""
        self.untitled_title = None  # the title of an untitled copy: "NAME (example)", "NAME (from ComfyUI)"
        self.undo_stack = QUndoStack(window)
        self._snapshot = ""
        self._autosave = QTimer(window, interval=AUTOSAVE_MS)
        self._autosave.timeout.connect(self.autosave)
        self._autosave.start()

    # ----- the workflow and its file ----------------------------------------------------------------
    def set_workflow(self, workflow: nodegraph.Workflow, path: Path | None) -> None:
        window = self.window
        window.navigator.reset(workflow)
        window._connect_scene()
        window.refresh_palette()  # the palette lists this workflow's own subgraphs
        self.path, self.saved_text = path, workflow.dumps()
        self.untitled_title = None
        self._snapshot = self.saved_text
        self.undo_stack.clear()
        self._offer_recovery()
        self.update_title()
        window.run_control.mark_dirty()
        window.view.fit_all()

    def open_file(self, path: str | Path) -> bool:
        window = self.window
        try:
            workflow = nodegraph.load(path, strict=False)
        except nodegraph.NodegraphError as e:
            window._warn(str(e))
            return False
        for problem in workflow.problems:
            window.log.appendPlainText(f"{path}: {problem}")
        for sub_id, (have, newer) in library.updates(workflow).items():  # it keeps its own copy; say there is more
            window.log.appendPlainText(f"{path}: subgraph {sub_id!r} is version {have} here; the library has "
                                       f"version {newer} (this workflow keeps its own copy)")
        report = workflow.imported
        keep_path = report is None and not str(path).lower().endswith(".png")
        self.set_workflow(workflow, Path(path) if keep_path else None)
        if report is not None:  # converted: Save asks where to keep ours instead of overwriting ComfyUI's file
            self.untitled_title = f"{Path(path).stem} (from ComfyUI)"
            self.update_title()
            for line in [f"not converted: node {u['id']} ({u['class_type']}): {u['why']}" for u in report.unmapped] + [
                    f"note: {n}" for n in report.notes]:
                window.log.appendPlainText(f"{path}: {line}")
            window.statusBar().showMessage(
                f"ComfyUI workflow: {report.mapped} of {report.nodes} nodes converted"
                + (f"; {len(report.unmapped)} kept as placeholders (see the log)" if report.unmapped else ""))
        window.prefs.add_recent(path)
        return True

    def open_demo(self, run: bool = True) -> bool:
        """Open the bundled demo workflow (the demo model drawing a prompt) and run it: what a first start shows."""
        try:
            from nodegraph_demo.first_run import first_run_workflow

            workflow = first_run_workflow()
        except (ImportError, nodegraph.NodegraphError) as e:
            self.window._warn(f"no demo workflow: {e}")
            return False
        self.set_workflow(workflow, None)
        self.window.statusBar().showMessage("the demo workflow: change the prompt or the seed and run again")
        if run:
            QTimer.singleShot(0, self.window.run_all)
        return True

    def open_example(self, path: str | Path) -> bool:
        """Open an example as a new, untitled workflow: its inputs still load from beside the example, and
        Save asks where to keep the copy (rewriting those paths) instead of changing the example itself."""
        try:
            workflow = nodegraph.load(path, strict=False)
        except nodegraph.NodegraphError as e:
            self.window._warn(str(e))
            return False
        self.set_workflow(workflow, None)
        self.untitled_title = f"{Path(path).stem} (example)"
        self.update_title()
        self.window.statusBar().showMessage(f"example {Path(path).stem}: Run it, change it, Save As to keep your copy")
        return True

    def choose_file(self) -> None:
        if not self.may_discard():
            return
        path, _ = QFileDialog.getOpenFileName(self.window, "Open workflow", "", "Workflows (*.json *.png)")
        if path:
            self.open_file(path)

    def new_file(self) -> None:
        if self.may_discard():
            self.set_workflow(nodegraph.Workflow(), None)

    def save_file(self) -> bool:
        if self.path is None:
            return self.save_file_as()
        nodegraph.save(self.window.workflow, self.path)
        self.saved_text = self.window.workflow.dumps()
        self.discard_recovery()
        self.update_title()
        self.window.statusBar().showMessage(f"saved {self.path}")
        return True

    def save_file_as(self) -> bool:
        window = self.window
        path, _ = QFileDialog.getSaveFileName(window, "Save workflow", "", "Workflows (*.json)")
        if not path:
            return False
        self.path = Path(path)
        moved = nodegraph.rebase(window.workflow, self.path.parent)  # relative input paths keep their files
        if moved:
            window.scene.rebuild()
            self._snapshot = window.workflow.dumps()  # not an edit to undo: undo rebases older states too
            window.log.appendPlainText(f"paths made relative to {self.path.parent}: {', '.join(moved)}")
        if not self.save_file():
            return False
        window.prefs.add_recent(self.path)
        return True

    def may_discard(self) -> bool:
        """Ask before unsaved changes are lost; True when it is fine to go on."""
        if not self.modified():
            return True
        answer = QMessageBox.question(self.window, "Unsaved changes", "Save the workflow first?",
                                      QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel)
        if answer == QMessageBox.Discard:
            self.discard_recovery()
        return answer == QMessageBox.Discard or (answer == QMessageBox.Save and self.save_file())

    def modified(self) -> bool:
        return self.window.workflow.dumps() != self.saved_text

    def update_title(self) -> None:
        name = self.path.name if self.path else self.untitled_title or "untitled"
        self.window.setWindowTitle(f"{name}{' *' if self.modified() else ''} — nodegraph")

    # ----- undo: every edit is recorded as the whole document before and after it --------------------
    def record_edit(self) -> bool:
        """Make what changed since the last record one undo step; True when anything did."""
        now = self.window.workflow.dumps()
        changed = now != self._snapshot
        if changed:
            self.undo_stack.push(Snapshot(self, self._snapshot, now))
            self._snapshot = now
        self.update_title()
        return changed

    def restore(self, text: str, base_dir: Path | None) -> None:
        """Put the workflow back as ``text`` describes it (undo / redo). Its relative paths were written
        for ``base_dir``; since then Save As may have moved the workflow, so they are rebased to where it is."""
        window = self.window
        workflow = nodegraph.loads(text, strict=False)
        workflow.base_dir = base_dir
        if window.workflow.base_dir is not None:
            nodegraph.rebase(workflow, window.workflow.base_dir)
        window.navigator.show(workflow, fit=False)  # the level the canvas was at, as far as it still exists
        window.refresh_palette()
        self._snapshot = workflow.dumps()  # as rebased: the next edit's "before" is relative to base_dir now
        self.update_title()
        window.run_control.mark_dirty()
        window.inspector.show_selection()

    # ----- autosave and recovery after a crash ------------------------------------------------------
    def recovery_path(self) -> Path:
        import hashlib

        key = str(self.path.resolve()) if self.path else "untitled"
        return recovery_dir() / (hashlib.sha1(key.encode()).hexdigest()[:16] + ".json")

    def autosave(self) -> None:
        """While there are unsaved changes, keep a copy where the next start will find it."""
        if self.modified():
            target = self.recovery_path()
            target.parent.mkdir(parents=True, exist_ok=True)
            nodegraph.save(self.window.workflow, target)

    def discard_recovery(self) -> None:
        self.recovery_path().unlink(missing_ok=True)

    def close(self) -> None:
        """The window closed on purpose: stop autosaving, and leave nothing to recover."""
        self._autosave.stop()
        self.discard_recovery()

    def _offer_recovery(self) -> None:
        window = self.window
        target = self.recovery_path()
        if not target.is_file():
            return
        import datetime

        when = datetime.datetime.fromtimestamp(target.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        name = self.path.name if self.path else "an untitled workflow"
        if window.confirm("Recover unsaved work", f"Restore the unsaved changes to {name} from {when}?"):
            try:
                recovered = nodegraph.loads(target.read_text(encoding="utf-8"), strict=False)
            except (OSError, nodegraph.NodegraphError) as e:
                window._warn(f"the recovery file could not be read: {e}")
                return
            recovered.base_dir = window.workflow.base_dir
            window.scene.workflow = recovered
            window.scene.rebuild()
            self._snapshot = recovered.dumps()  # modified against saved_text: the title shows it
        else:
            self.discard_recovery()
