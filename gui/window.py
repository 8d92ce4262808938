"""The main window: canvas, palette, inspector, viewer, log, the menus and the run controls."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QDialog, QDockWidget, QFileDialog, QInputDialog, QLabel, QLineEdit, QMainWindow, QMessageBox, QPlainTextEdit,
    QScrollArea, QTreeWidgetItem, QVBoxLayout, QWidget,
)

import nodegraph
from nodegraph.document import embedded_text

from .canvas import GraphScene, GraphView
from .inspector import Inspector
from .palette import PaletteTree, QuickAdd, best_match
from .preferences import Preferences, SettingsDialog
from .run_control import RunControl
from .runner import Runner
from .shortcuts import ShortcutsDialog
from .viewer import ImageViewer

EXAMPLES = Path(__file__).resolve().parent.parent / "workflows"  # the example workflows of a source checkout


class Snapshot(QUndoCommand):
    """One edit, as the canonical document before and after it (every kind of edit undoes the same way)."""

    def __init__(self, window: "MainWindow", before: str, after: str):
        super().__init__("edit")
        self.window, self.before, self.after, self.first = window, before, after, True
        self.base_dir = window.workflow.base_dir  # what the documents' relative paths are relative to

    def redo(self) -> None:
        if self.first:  # the edit is already done when the command is pushed
            self.first = False
            return
        self.window._restore(self.after, self.base_dir)

    def undo(self) -> None:
        self.window._restore(self.before, self.base_dir)


AUTOSAVE_MS = 30_000


def recovery_dir() -> Path:
    import os

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nodegraph" / "recovery"


class MainWindow(QMainWindow):
    def __init__(self, path: str | None = None, engine: nodegraph.Engine | None = None, output_dir: str | None = None,
                 confirm=None, ask_text=None):
        super().__init__()
        # confirm(title, question) -> bool and ask_text(title, label, text) -> str | None: dialogs for people,
        # replaceable where no one is there to answer
        self.confirm = confirm or (lambda title, text: QMessageBox.question(self, title, text) == QMessageBox.Yes)
        self.ask_text = ask_text or self._ask_text
        self.resize(1500, 900)
        self.prefs = Preferences()
        self.output_dir = output_dir or self.prefs.output_dir()
        self.runner = Runner(engine or self._new_engine())
        self.run_control = RunControl(self)
        self.runner.event.connect(self.run_control.on_event)
        self.runner.done.connect(self.run_control.on_done)
        self.path: Path | None = None
        self.saved_text = ""
        self.undo_stack = QUndoStack(self)
        self._snapshot = ""
        self.setAcceptDrops(True)
        self._autosave = QTimer(self, interval=AUTOSAVE_MS)
        self._autosave.timeout.connect(self.autosave)
        self._autosave.start()
        self.scene = GraphScene(nodegraph.Workflow(), parent=self)
        self.view = GraphView(self.scene)
        self.view.quick_add.connect(self.open_quick_add)
        self.view.drop_node.connect(lambda type_id, pos: self.scene.add_node(type_id, pos))
        self.setCentralWidget(self.view)
        self._build_docks()
        self._build_actions()
        self.statusBar().showMessage("ready")
        if path:
            self.open_file(path)
        else:
            self._set_workflow(nodegraph.Workflow(), None)

    # ----- layout --------------------------------------------------------------------------------
    def _build_docks(self) -> None:
        palette = QWidget()
        layout = QVBoxLayout(palette)
        self.search = QLineEdit(placeholderText="search nodes (Enter adds)")
        self.tree = PaletteTree()
        layout.addWidget(self.search)
        layout.addWidget(self.tree)
        self.search.textChanged.connect(self.tree.fill)
        self.search.returnPressed.connect(self._add_first_match)
        self.tree.itemActivated.connect(lambda item, _col: self._add_from_palette(item))
        self.tree.fill("")
        self._dock("Nodes", palette, Qt.LeftDockWidgetArea)

        self.inspector = Inspector(self)
        self.form = self.inspector.form
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.inspector)
        inspector_dock = self._dock("Inspector", scroll, Qt.RightDockWidgetArea)

        preview = QWidget()
        pl = QVBoxLayout(preview)
        self.viewer = ImageViewer(workflow_text=lambda folder: embedded_text(self.workflow, folder))
        self.viewer.setMinimumSize(320, 240)
        self.preview_text = QLabel("")
        self.preview_text.setWordWrap(True)
        pl.addWidget(self.viewer, 1)
        pl.addWidget(self.preview_text)
        preview_dock = self._dock("Viewer", preview, Qt.RightDockWidgetArea)

        self.log = QPlainTextEdit(readOnly=True)
        self.log.setMaximumBlockCount(2000)
        log_dock = self._dock("Log", self.log, Qt.BottomDockWidgetArea)
        self.resizeDocks([inspector_dock, preview_dock], [420, 380], Qt.Vertical)
        self.resizeDocks([inspector_dock], [400], Qt.Horizontal)
        self.resizeDocks([log_dock], [120], Qt.Vertical)

    def _dock(self, title: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_actions(self) -> None:
        def action(menu, text, shortcut, slot):
            act = QAction(text, self)
            if shortcut:
                act.setShortcut(QKeySequence(shortcut))
            act.triggered.connect(slot)
            menu.addAction(act)
            return act

        files = self.menuBar().addMenu("&File")
        action(files, "New", QKeySequence.New, self.new_file)
        action(files, "Open…", QKeySequence.Open, self.choose_file)
        self.recent_menu = files.addMenu("Open Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self.examples_menu = files.addMenu("Open Example")
        self.examples_menu.aboutToShow.connect(self._fill_examples)
        action(files, "Save", QKeySequence.Save, self.save_file)
        action(files, "Save As…", QKeySequence.SaveAs, self.save_file_as)
        action(files, "Quit", "Ctrl+Q" if QKeySequence(QKeySequence.Quit).isEmpty() else QKeySequence.Quit, self.close)
        run = self.menuBar().addMenu("&Run")
        toolbar = self.addToolBar("Run")
        toolbar.setObjectName("run-toolbar")
        for text, shortcut, slot in (("Run", "Ctrl+Return", self.run_all),
                                     ("Run to selected", "Ctrl+Shift+Return", self.run_selected),
                                     ("Cancel", "Escape", self.runner.cancel)):
            toolbar.addAction(action(run, text, shortcut, slot))
        self.live_action = action(run, "Live mode", "Ctrl+L", lambda: self.set_live(self.live_action.isChecked()))
        self.live_action.setCheckable(True)
        self.live_action.setChecked(self.live)
        toolbar.addAction(self.live_action)
        edit = self.menuBar().addMenu("&Edit")
        action(edit, "Undo", QKeySequence.Undo, self.undo_stack.undo)
        redo = action(edit, "Redo", "Ctrl+Shift+Z", self.undo_stack.redo)
        redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])  # Blender / ComfyUI habits
        action(edit, "Cut", QKeySequence.Cut, self.cut_selection)
        action(edit, "Copy", QKeySequence.Copy, self.copy_selection)
        action(edit, "Paste", QKeySequence.Paste, self.paste)
        action(edit, "Duplicate", "Ctrl+D", lambda: self.paste(self.selection_text()))
        action(edit, "Select all", QKeySequence.SelectAll, self.select_all)
        mute = action(edit, "Mute / unmute", "Ctrl+M", lambda: self.toggle_mode("muted"))
        mute.setShortcuts([QKeySequence("Ctrl+M"), QKeySequence("M")])  # ComfyUI, and Blender's M
        action(edit, "Bypass / unbypass", "Ctrl+B", lambda: self.toggle_mode("bypassed"))
        edit.addSeparator()
        action(edit, "Frame selected nodes", "Ctrl+G", lambda: self.scene.group_selected())
        action(edit, "Remove frame", "Ctrl+Shift+G", self.scene.ungroup_selected)
        edit.addSeparator()
        action(edit, "Settings…", QKeySequence.Preferences if not QKeySequence(QKeySequence.Preferences).isEmpty()
               else "Ctrl+,", self.open_settings)
        view = self.menuBar().addMenu("&View")
        action(view, "Zoom to fit", "F", self.view.fit_all)
        help_ = self.menuBar().addMenu("&Help")
        action(help_, "Keyboard shortcuts", "F1", self.show_shortcuts)

    # ----- the workflow and its file ----------------------------------------------------------------
    @property
    def workflow(self) -> nodegraph.Workflow:
        return self.scene.workflow

    def _set_workflow(self, workflow: nodegraph.Workflow, path: Path | None) -> None:
        self.scene.workflow = workflow
        self.scene.rebuild()
        self.scene.edited.connect(self._after_edit, Qt.UniqueConnection)
        self.scene.message.connect(self.statusBar().showMessage, Qt.UniqueConnection)
        self.scene.selectionChanged.connect(self.inspector.show_selection, Qt.UniqueConnection)
        self.scene.rename_group.connect(self.rename_group, Qt.UniqueConnection)
        self.path, self.saved_text = path, workflow.dumps()
        self.untitled_title = None  # the title of an untitled copy: "NAME (example)", "NAME (from ComfyUI)"
        self._snapshot = self.saved_text
        self.undo_stack.clear()
        self._offer_recovery()
        self._update_title()
        self.run_control.mark_dirty()
        self.view.fit_all()

    def open_file(self, path: str | Path) -> bool:
        try:
            workflow = nodegraph.load(path, strict=False)
        except nodegraph.NodegraphError as e:
            self._warn(str(e))
            return False
        for problem in workflow.problems:
            self.log.appendPlainText(f"{path}: {problem}")
        report = workflow.imported
        keep_path = report is None and not str(path).lower().endswith(".png")
        self._set_workflow(workflow, Path(path) if keep_path else None)
        if report is not None:  # converted: Save asks where to keep ours instead of overwriting ComfyUI's file
            self.untitled_title = f"{Path(path).stem} (from ComfyUI)"
            self._update_title()
            for line in [f"not converted: node {u['id']} ({u['class_type']}): {u['why']}" for u in report.unmapped] + [
                    f"note: {n}" for n in report.notes]:
                self.log.appendPlainText(f"{path}: {line}")
            self.statusBar().showMessage(
                f"ComfyUI workflow: {report.mapped} of {report.nodes} nodes converted"
                + (f"; {len(report.unmapped)} kept as placeholders (see the log)" if report.unmapped else ""))
        self.prefs.add_recent(path)
        return True

    def open_demo(self, run: bool = True) -> bool:
        """Open the bundled demo workflow (the demo model drawing a prompt) and run it: what a first start shows."""
        try:
            from nodegraph_demo.first_run import first_run_workflow

            workflow = first_run_workflow()
        except (ImportError, nodegraph.NodegraphError) as e:
            self._warn(f"no demo workflow: {e}")
            return False
        self._set_workflow(workflow, None)
        self.statusBar().showMessage("the demo workflow: change the prompt or the seed and run again")
        if run:
            QTimer.singleShot(0, self.run_all)
        return True

    def choose_file(self) -> None:
        if not self._may_discard():
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open workflow", "", "Workflows (*.json *.png)")
        if path:
            self.open_file(path)

    def new_file(self) -> None:
        if self._may_discard():
            self._set_workflow(nodegraph.Workflow(), None)

    def save_file(self) -> bool:
        if self.path is None:
            return self.save_file_as()
        nodegraph.save(self.workflow, self.path)
        self.saved_text = self.workflow.dumps()
        self._discard_recovery()
        self._update_title()
        self.statusBar().showMessage(f"saved {self.path}")
        return True

    def save_file_as(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(self, "Save workflow", "", "Workflows (*.json)")
        if not path:
            return False
        self.path = Path(path)
        moved = nodegraph.rebase(self.workflow, self.path.parent)  # relative input paths keep their files
        if moved:
            self.scene.rebuild()
            self._snapshot = self.workflow.dumps()  # not an edit to undo: undo rebases older states too
            self.log.appendPlainText(f"paths made relative to {self.path.parent}: {', '.join(moved)}")
        if not self.save_file():
            return False
        self.prefs.add_recent(self.path)
        return True

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
            nodegraph.save(self.workflow, target)

    def _discard_recovery(self) -> None:
        self.recovery_path().unlink(missing_ok=True)

    def _offer_recovery(self) -> None:
        target = self.recovery_path()
        if not target.is_file():
            return
        import datetime

        when = datetime.datetime.fromtimestamp(target.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        name = self.path.name if self.path else "an untitled workflow"
        if self.confirm("Recover unsaved work", f"Restore the unsaved changes to {name} from {when}?"):
            try:
                recovered = nodegraph.loads(target.read_text(encoding="utf-8"), strict=False)
            except (OSError, nodegraph.NodegraphError) as e:
                self._warn(f"the recovery file could not be read: {e}")
                return
            recovered.base_dir = self.workflow.base_dir
            self.scene.workflow = recovered
            self.scene.rebuild()
            self._snapshot = recovered.dumps()  # modified against saved_text: the title shows it
        else:
            self._discard_recovery()

    def modified(self) -> bool:
        return self.workflow.dumps() != self.saved_text

    def _update_title(self) -> None:
        name = self.path.name if self.path else self.untitled_title or "untitled"
        self.setWindowTitle(f"{name}{' *' if self.modified() else ''} — nodegraph")

    def _warn(self, text: str) -> None:
        self.log.appendPlainText(text)
        self.statusBar().showMessage(text)

    # ----- palette -------------------------------------------------------------------------------
    def open_quick_add(self, scene_pos: QPointF) -> QuickAdd:
        popup = QuickAdd(self, scene_pos)
        popup.move(self.view.mapToGlobal(self.view.mapFromScene(scene_pos)))
        popup.show()
        popup.edit.setFocus()
        return popup

    def _add_first_match(self) -> None:
        """Enter adds the best match: a node whose title is what was typed beats one that merely mentions it."""
        best = best_match(self.search.text(), nodegraph.REGISTRY.all())
        if best is not None:
            center = self.view.mapToScene(self.view.viewport().rect().center())
            self.scene.add_node(best.id, QPointF(center.x() - 100, center.y() - 40))

    def _add_from_palette(self, item: QTreeWidgetItem) -> None:
        type_id = item.data(0, Qt.UserRole)
        if type_id:
            center = self.view.mapToScene(self.view.viewport().rect().center())
            self.scene.add_node(type_id, QPointF(center.x() - 100, center.y() - 40))

    def set_param(self, node_id: str, name: str, value) -> None:
        try:
            self.workflow.set_param(node_id, name, value)
        except nodegraph.NodegraphError as e:
            self._warn(str(e))
            return
        self.scene.nodes[node_id].update()
        self._after_edit()

    def _after_edit(self) -> None:
        now = self.workflow.dumps()
        changed = now != self._snapshot
        if changed:
            self.undo_stack.push(Snapshot(self, self._snapshot, now))
            self._snapshot = now
        self._update_title()
        self.run_control.edited(changed)

    def _restore(self, text: str, base_dir: Path | None) -> None:
        """Put the workflow back as ``text`` describes it (undo / redo). Its relative paths were written
        for ``base_dir``; since then Save As may have moved the workflow, so they are rebased to where it is."""
        workflow = nodegraph.loads(text, strict=False)
        workflow.base_dir = base_dir
        if self.workflow.base_dir is not None:
            nodegraph.rebase(workflow, self.workflow.base_dir)
        self.scene.workflow = workflow
        self.scene.rebuild()
        self._snapshot = workflow.dumps()  # as rebased: the next edit's "before" is relative to base_dir now
        self._update_title()
        self.run_control.mark_dirty()
        self.inspector.show_selection()

    # ----- clipboard, modes ------------------------------------------------------------------------
    def selection_text(self) -> str:
        """The selected nodes and the links between them, as a workflow document."""
        ids = set(self.scene.selected_node_ids())
        part = nodegraph.Workflow(self.workflow.registry)
        for node_id in ids:
            part.nodes[node_id] = self.workflow.nodes[node_id]
        part.links = [l for l in self.workflow.links if l.source in ids and l.target in ids]
        return part.dumps()

    def copy_selection(self) -> None:
        if self.scene.selected_node_ids():
            QGuiApplication.clipboard().setText(self.selection_text())

    def cut_selection(self) -> None:
        """Copy the selected nodes, then delete them: one undo step brings them back."""
        if self.scene.selected_node_ids():
            self.copy_selection()
            self.scene.delete_selected()

    def select_all(self) -> None:
        for item in self.scene.nodes.values():
            item.setSelected(True)

    def paste(self, text: str | None = None) -> None:
        """Add the nodes of a workflow document (the clipboard's) with fresh ids, offset, and select them."""
        text = QGuiApplication.clipboard().text() if text is None else text
        try:
            part = nodegraph.loads(text, strict=False)
        except nodegraph.NodegraphError as e:
            self._warn(f"nothing to paste: {e}")
            return
        renamed = {}
        for node in part.nodes.values():
            if self.workflow.registry.get(node.type) is None:
                continue
            x, y = node.position
            new = self.workflow.add_node(node.type, params=dict(node.params), position=(x + 40, y + 40),
                                         mode=node.mode, title=node.title)
            renamed[node.id] = new.id
        for link in part.links:
            if link.source in renamed and link.target in renamed:
                self.workflow.connect(renamed[link.source], link.output, renamed[link.target], link.input)
        self.scene.rebuild()
        for node_id in renamed.values():
            self.scene.nodes[node_id].setSelected(True)
        self._after_edit()

    def toggle_mode(self, mode: str) -> None:
        ids = self.scene.selected_node_ids()
        for node_id in ids:
            current = self.workflow.nodes[node_id].mode
            self.workflow.set_mode(node_id, "active" if current == mode else mode)
        if ids:
            self.scene.rebuild()
            for node_id in ids:
                self.scene.nodes[node_id].setSelected(True)
            self._after_edit()

    # ----- running: gui/run_control.py ------------------------------------------------------------
    @property
    def live(self) -> bool:
        return self.run_control.live

    @property
    def last_result(self) -> nodegraph.RunResult | None:
        return self.run_control.last_result

    def set_live(self, on: bool) -> None:
        self.run_control.set_live(on)

    def run_all(self) -> None:
        self.run_control.run_all()

    def run_selected(self) -> None:
        self.run_control.run_selected()

    def _start(self, targets) -> None:
        self.run_control.start(targets)

    # ----- frames, recent files, settings, help --------------------------------------------------------
    def _ask_text(self, title: str, label: str, text: str) -> str | None:
        value, ok = QInputDialog.getText(self, title, label, text=text)
        return value if ok else None

    def rename_group(self, group_id: str) -> None:
        title = self.ask_text("Rename frame", "Title:", self.workflow.groups[group_id].title)
        if title is not None and title != self.workflow.groups[group_id].title:
            self.scene.set_group_title(group_id, title)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.prefs.recent_files():
            act = self.recent_menu.addAction(path)
            act.setEnabled(Path(path).exists())
            act.triggered.connect(lambda _=False, p=path: self._may_discard() and self.open_file(p))
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Clear list", self.prefs.clear_recent)

    def _fill_examples(self) -> None:
        self.examples_menu.clear()
        found = sorted(EXAMPLES.glob("*.json")) if EXAMPLES.is_dir() else []
        for path in found:
            act = self.examples_menu.addAction(path.stem)
            act.triggered.connect(lambda _=False, p=path: self._may_discard() and self.open_example(p))
        if not found:
            self.examples_menu.addAction(f"no examples in {EXAMPLES}").setEnabled(False)

    def open_example(self, path: str | Path) -> bool:
        """Open an example as a new, untitled workflow: its inputs still load from beside the example, and
        Save asks where to keep the copy (rewriting those paths) instead of changing the example itself."""
        try:
            workflow = nodegraph.load(path, strict=False)
        except nodegraph.NodegraphError as e:
            self._warn(str(e))
            return False
        self._set_workflow(workflow, None)
        self.untitled_title = f"{Path(path).stem} (example)"
        self._update_title()
        self.statusBar().showMessage(f"example {Path(path).stem}: Run it, change it, Save As to keep your copy")
        return True

    def _new_engine(self) -> nodegraph.Engine:
        return nodegraph.Engine(device=self.prefs.device(), cache_bytes=int(self.prefs.cache_gib() * 1024**3))

    def open_settings(self, dialog: SettingsDialog | None = None) -> None:
        dialog = dialog or SettingsDialog(self.prefs, self)
        if dialog.exec() == QDialog.Accepted:
            self.apply_settings(dialog)

    def apply_settings(self, dialog: SettingsDialog) -> None:
        """Store the dialog's choices; a new device or cache budget takes a new engine (its cache starts empty)."""
        before = (self.prefs.device(), self.prefs.cache_gib())
        dialog.save()
        self.output_dir = self.prefs.output_dir()
        self.set_live(self.prefs.live_mode())
        if (self.prefs.device(), self.prefs.cache_gib()) != before:
            if self.runner.busy:
                self.runner.cancel()
                self.runner.wait(10)
            self.runner.engine = self._new_engine()
            self._warn(f"engine now on {self.prefs.device()} with a {self.prefs.cache_gib():g} GiB cache "
                       "(cached results were dropped)")
        self.inspector.show_selection()  # model pickers list the folders' models
        self.run_control.mark_dirty()

    def show_shortcuts(self) -> None:
        ShortcutsDialog(self).exec()

    # ----- open by dropping a workflow (.json, or a PNG this program wrote) on the window --------------
    def dragEnterEvent(self, event) -> None:
        urls = event.mimeData().urls()
        if urls and urls[0].toLocalFile().lower().endswith((".json", ".png")):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        path = event.mimeData().urls()[0].toLocalFile()
        if self._may_discard():
            self.open_file(path)
        event.acceptProposedAction()

    def _may_discard(self) -> bool:
        """Ask before unsaved changes are lost; True when it is fine to go on."""
        if not self.modified():
            return True
        answer = QMessageBox.question(self, "Unsaved changes", "Save the workflow first?",
                                      QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel)
        if answer == QMessageBox.Discard:
            self._discard_recovery()
        return answer == QMessageBox.Discard or (answer == QMessageBox.Save and self.save_file())

    def closeEvent(self, event) -> None:
        if not self._may_discard():
            event.ignore()
            return
        self.runner.cancel()
        self.runner.wait(5)
        for signal in (self.scene.selectionChanged, self.scene.edited, self.scene.message):
            signal.disconnect()  # the scene emits while it is torn down; the window is gone by then
        self._autosave.stop()
        self._discard_recovery()  # closed on purpose: nothing to recover
        event.accept()
