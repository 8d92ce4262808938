"""The main window: canvas, palette, inspector, viewer, log, the menus and the run controls.

The window lays these out and wires its parts together: the parameter form (``gui/inspector.py``), the
document with its undo history and recovery (``gui/document.py``), the clipboard (``gui/clipboard.py``) and
run control (``gui/run_control.py``). Menus, tests and scripts call the window; its methods hand over to
the part that holds the work.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence, QUndoStack
from PySide6.QtWidgets import (
    QDialog, QDockWidget, QInputDialog, QLabel, QLineEdit, QMainWindow, QMessageBox, QPlainTextEdit,
    QScrollArea, QTreeWidgetItem, QVBoxLayout, QWidget,
)

import nodegraph
from nodegraph import library, subgraph_edit
from nodegraph.document import embedded_text
from nodegraph.subgraph import subgraph_id, uses

from . import clipboard
from .canvas import INPUTS, OUTPUTS, GraphScene, GraphView
from .document import Document
from .inspector import Inspector
from .navigation import Navigator
from .palette import PaletteTree, QuickAdd, addable_types, best_match
from .preferences import Preferences, SettingsDialog
from .run_control import RunControl
from .runner import Runner
from .shortcuts import ShortcutsDialog
from .placement import Placement
from .viewer import ImageViewer

EXAMPLES = Path(__file__).resolve().parent.parent / "workflows"  # the example workflows of a source checkout


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
        self.document = Document(self)
        self.setAcceptDrops(True)
        self.scene = GraphScene(nodegraph.Workflow(), parent=self)
        self.view = GraphView(self.scene)
        self.view.quick_add.connect(self.open_quick_add)
        self.view.tab.connect(self._tab)
        self.view.open_node.connect(self.enter_subgraph)
        self.view.drop_node.connect(self.add_node)
        self.navigator = Navigator(self)
        canvas = QWidget()
        column = QVBoxLayout(canvas)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.navigator.bar)
        column.addWidget(self.view, 1)
        self.setCentralWidget(canvas)
        self._build_docks()
        self._build_actions()
        self.statusBar().showMessage("ready")
        if path:
            self.open_file(path)
        else:
            self.document.set_workflow(nodegraph.Workflow(), None)

    # ----- layout --------------------------------------------------------------------------------
    def _build_docks(self) -> None:
        palette = QWidget()
        layout = QVBoxLayout(palette)
        self.search = QLineEdit(placeholderText="search nodes (Enter adds)")
        self.tree = PaletteTree(lambda: addable_types(self.workflow))
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
        self.placement = Placement(self)  # points and boxes placed on the viewer's picture
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
                                     ("Cancel", "Escape", self._escape)):
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
        action(edit, "Make subgraph", "Ctrl+Alt+G", self.make_subgraph)  # the frame keys, one level deeper
        action(edit, "Unpack subgraph", "Ctrl+Alt+Shift+G", self.unpack_subgraph)
        action(edit, "Enter subgraph (Tab)", None, lambda: self.enter_subgraph())
        action(edit, "Leave subgraph (Esc)", None, self.navigator.leave)
        action(edit, "Publish subgraph to library…", None, self.publish_subgraph)
        edit.addSeparator()
        action(edit, "Settings…", QKeySequence.Preferences if not QKeySequence(QKeySequence.Preferences).isEmpty()
               else "Ctrl+,", self.open_settings)
        view = self.menuBar().addMenu("&View")
        action(view, "Zoom to fit", "F", self.view.fit_all)
        help_ = self.menuBar().addMenu("&Help")
        action(help_, "Keyboard shortcuts", "F1", self.show_shortcuts)

    # ----- the workflow on the canvas, and edits to it --------------------------------------------
    @property
    def workflow(self) -> nodegraph.Workflow:
        """The whole workflow (what is saved, run and undone), wherever the canvas is."""
        return self.scene.workflow.root()

    @property
    def graph(self) -> nodegraph.Workflow:
        """The level the canvas shows: the workflow, or the body of the subgraph entered."""
        return self.scene.workflow

    def _connect_scene(self) -> None:
        """What the window hears from the scene; the document calls this each time it sets a workflow (the
        connections are unique, so they are made once)."""
        self.scene.edited.connect(self._after_edit, Qt.UniqueConnection)
        self.scene.message.connect(self.statusBar().showMessage, Qt.UniqueConnection)
        self.scene.selectionChanged.connect(self.inspector.show_selection, Qt.UniqueConnection)
        self.scene.rename_group.connect(self.rename_group, Qt.UniqueConnection)

    def set_param(self, node_id: str, name: str, value) -> None:
        try:
            self.graph.set_param(node_id, name, value)
        except nodegraph.NodegraphError as e:
            self._warn(str(e))
            return
        item = self.scene.nodes.get(node_id.split("/")[0])  # a path sets an inner value of that instance
        if item is not None:
            item.update()
        self._after_edit()

    def _after_edit(self) -> None:
        """An edit was made (on the canvas, in the inspector, from a menu): one undo step, then what it dirtied."""
        self.run_control.edited(self.document.record_edit())
        self.refresh_palette()

    def refresh_palette(self) -> None:
        """The palette lists the workflow's own subgraphs too: refill it when they change."""
        known = sorted(self.workflow.subgraphs)
        if known != getattr(self, "_palette_subgraphs", None):
            self._palette_subgraphs = known
            self.tree.fill(self.search.text())

    def _warn(self, text: str) -> None:
        self.log.appendPlainText(text)
        self.statusBar().showMessage(text)

    # ----- the document: gui/document.py ---------------------------------------------------------
    @property
    def path(self) -> Path | None:
        return self.document.path

    @path.setter
    def path(self, path: Path | None) -> None:
        self.document.path = path

    @property
    def saved_text(self) -> str:
        return self.document.saved_text

    @saved_text.setter
    def saved_text(self, text: str) -> None:
        self.document.saved_text = text

    @property
    def undo_stack(self) -> QUndoStack:
        return self.document.undo_stack

    def open_file(self, path: str | Path) -> bool:
        return self.document.open_file(path)

    def open_demo(self, run: bool = True) -> bool:
        return self.document.open_demo(run)

    def open_example(self, path: str | Path) -> bool:
        return self.document.open_example(path)

    def choose_file(self) -> None:
        self.document.choose_file()

    def new_file(self) -> None:
        self.document.new_file()

    def save_file(self) -> bool:
        return self.document.save_file()

    def save_file_as(self) -> bool:
        return self.document.save_file_as()

    def recovery_path(self) -> Path:
        return self.document.recovery_path()

    def autosave(self) -> None:
        self.document.autosave()

    def modified(self) -> bool:
        return self.document.modified()

    # ----- palette -------------------------------------------------------------------------------
    def open_quick_add(self, scene_pos: QPointF) -> QuickAdd:
        popup = QuickAdd(self, scene_pos)
        popup.move(self.view.mapToGlobal(self.view.mapFromScene(scene_pos)))
        popup.show()
        popup.edit.setFocus()
        return popup

    def _add_first_match(self) -> None:
        """Enter adds the best match: a node whose title is what was typed beats one that merely mentions it."""
        best = best_match(self.search.text(), addable_types(self.workflow))
        if best is not None:
            center = self.view.mapToScene(self.view.viewport().rect().center())
            self.add_node(best.id, QPointF(center.x() - 100, center.y() - 40))

    def _add_from_palette(self, item: QTreeWidgetItem) -> None:
        type_id = item.data(0, Qt.UserRole)
        if type_id:
            center = self.view.mapToScene(self.view.viewport().rect().center())
            self.add_node(type_id, QPointF(center.x() - 100, center.y() - 40))

    def add_node(self, type_id: str, pos: QPointF) -> str | None:
        """Add a node of ``type_id`` at ``pos``; a library subgraph is first copied into the workflow."""
        sub_id = subgraph_id(type_id)
        try:
            if sub_id is not None:
                library.embed(self.workflow, sub_id)
                if sub_id in self._definitions_around():
                    raise nodegraph.NodegraphError(f"subgraph {sub_id!r} cannot hold an instance of itself")
            return self.scene.add_node(type_id, pos)
        except nodegraph.NodegraphError as e:
            self._warn(str(e))
            return None

    def _definitions_around(self) -> set[str]:
        """The definitions the canvas is inside (an instance of any of them here would contain itself)."""
        graph, found = self.graph, set()
        while graph.owner is not None:
            sub = subgraph_edit.enclosing(graph)
            found.add(sub.id)
            found |= {sid for sid, s in self.workflow.subgraphs.items() if sub.id in uses(s)}
            graph = graph.owner
        return found

    # ----- subgraphs: gui/navigation.py moves between levels ------------------------------------------
    def _tab(self, scene_pos: QPointF) -> None:
        """Tab enters the selected subgraph instance (Blender's habit); elsewhere it opens the quick-add."""
        if not self.enter_subgraph():
            self.open_quick_add(scene_pos)

    def enter_subgraph(self, node_id: str | None = None) -> bool:
        ids = [node_id] if node_id else self.scene.selected_node_ids()
        return len(ids) == 1 and self.navigator.enter(ids[0])

    def _escape(self) -> None:
        """Esc cancels a run; with none going, it leaves the subgraph the canvas is in."""
        if self.runner.busy:
            self.runner.cancel()
        else:
            self.navigator.leave()

    def make_subgraph(self) -> str | None:
        ids = self.scene.selected_node_ids()
        if not ids:
            self._warn("select the nodes to make a subgraph of")
            return None
        title = self.ask_text("Make subgraph", "Title:", "Subgraph")
        if not title:
            return None
        try:
            instance = subgraph_edit.make_subgraph(self.graph, ids, title=title)
        except nodegraph.NodegraphError as e:
            self._warn(str(e))
            return None
        self.scene.rebuild()
        self.scene.nodes[instance.id].setSelected(True)
        self._after_edit()
        return instance.id

    def unpack_subgraph(self) -> list[str]:
        ids = [i for i in self.scene.selected_node_ids() if self.navigator.can_enter(i)]
        if len(ids) != 1:
            self._warn("select one subgraph instance to unpack")
            return []
        new_ids = subgraph_edit.unpack(self.graph, ids[0])
        self.scene.rebuild()
        for node_id in new_ids:
            self.scene.nodes[node_id].setSelected(True)
        self._after_edit()
        return new_ids

    def publish_subgraph(self, folder: str | None = None) -> Path | None:
        """Write the selected instance's subgraph (or the one the canvas is in) to the library."""
        ids = [i for i in self.scene.selected_node_ids() if self.navigator.can_enter(i)]
        sub = (self.workflow.subgraphs[subgraph_id(self.graph.nodes[ids[0]].type)] if len(ids) == 1
               else self.scene.subgraph)
        if sub is None:
            self._warn("select a subgraph instance, or enter one, to publish it")
            return None
        try:
            path = library.publish(self.workflow, sub.id, folder)
        except nodegraph.NodegraphError as e:
            self._warn(str(e))
            return None
        self._warn(f"published {sub.title!r} (version {sub.version}) to {path}")
        self.tree.fill(self.search.text())
        self._after_edit()
        return path

    def edit_slot(self, what: str, name: str, new_name: str = "") -> None:
        """Rename, move or remove a slot of the subgraph the canvas is in (its instances follow)."""
        sub = self.scene.subgraph
        slot = sub.slot(name) if sub is not None else None
        if slot is None or (what == "rename" and new_name == name):
            return
        try:
            if what == "rename":
                subgraph_edit.rename_slot(sub, name, new_name.strip())
            elif what == "remove":
                subgraph_edit.remove_slot(sub, name)
            else:
                kind = next(k for k in (sub.inputs, sub.outputs, sub.params) if slot in k)
                subgraph_edit.move_slot(sub, name, kind.index(slot) + (-1 if what == "up" else 1))
        except nodegraph.NodegraphError as e:
            self._warn(str(e))
        self._after_edit()
        side = OUTPUTS if slot in sub.outputs else INPUTS
        QTimer.singleShot(0, lambda: self._show_again(side))  # not now: the form's own widget is still calling

    def _show_again(self, node_id: str) -> None:
        self.scene.rebuild()
        if node_id in self.scene.nodes:
            self.scene.nodes[node_id].setSelected(True)

    def clear_override(self, graph, path: str, name: str) -> None:
        """Let an instance's inner parameter (``instance/inner path`` in ``graph``) follow the definition again."""
        graph.clear_override(path, name)
        QTimer.singleShot(0, self.inspector.show_selection)  # not now: the form's own button is still calling
        self._after_edit()

    def promote(self, node_id: str, param: str) -> None:
        """Show an inner parameter on every instance of the subgraph the canvas is in."""
        try:
            subgraph_edit.promote(self.scene.subgraph, node_id, param)
        except (nodegraph.NodegraphError, AttributeError) as e:
            self._warn(str(e) if isinstance(e, nodegraph.NodegraphError) else "enter a subgraph to promote")
            return
        self.scene.rebuild()
        self._after_edit()

    # ----- clipboard (gui/clipboard.py), selection, modes ----------------------------------------------
    def selection_text(self) -> str:
        return clipboard.selection_text(self.scene)

    def copy_selection(self) -> None:
        clipboard.copy_selection(self.scene)

    def cut_selection(self) -> None:
        clipboard.cut_selection(self.scene)

    def paste(self, text: str | None = None) -> None:
        if clipboard.paste(self.scene, text, self._warn):
            self._after_edit()

    def select_all(self) -> None:
        for item in self.scene.nodes.values():
            item.setSelected(True)

    def toggle_mode(self, mode: str) -> None:
        ids = self.scene.selected_node_ids()
        for node_id in ids:
            current = self.graph.nodes[node_id].mode
            self.graph.set_mode(node_id, "active" if current == mode else mode)
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
        title = self.ask_text("Rename frame", "Title:", self.graph.groups[group_id].title)
        if title is not None and title != self.graph.groups[group_id].title:
            self.scene.set_group_title(group_id, title)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.prefs.recent_files():
            act = self.recent_menu.addAction(path)
            act.setEnabled(Path(path).exists())
            act.triggered.connect(lambda _=False, p=path: self.document.may_discard() and self.open_file(p))
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Clear list", self.prefs.clear_recent)

    def _fill_examples(self) -> None:
        self.examples_menu.clear()
        found = sorted(EXAMPLES.glob("*.json")) if EXAMPLES.is_dir() else []
        for path in found:
            act = self.examples_menu.addAction(path.stem)
            act.triggered.connect(lambda _=False, p=path: self.document.may_discard() and self.open_example(p))
        if not found:
            self.examples_menu.addAction(f"no examples in {EXAMPLES}").setEnabled(False)

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
        if self.document.may_discard():
            self.open_file(path)
        event.acceptProposedAction()

    def closeEvent(self, event) -> None:
        if not self.document.may_discard():
            event.ignore()
            return
        self.runner.cancel()
        self.runner.wait(5)
        for signal in (self.scene.selectionChanged, self.scene.edited, self.scene.message):
            signal.disconnect()  # the scene emits while it is torn down; the window is gone by then
        self.document.close()  # closed on purpose: nothing to recover
        event.accept()
