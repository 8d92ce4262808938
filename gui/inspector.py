"""The inspector: a form for the selected node's parameters, one widget a parameter, built from its declaration.

It lives apart from the main window so that the form (which widget a parameter kind gets, sliders, file and
model pickers) can grow without the window's wiring around it; every edit it makes goes back through
``MainWindow.set_param``, so the inspector holds no state of the document.
"""

from __future__ import annotations

import json
import random

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit,
    QPushButton, QSlider, QSpinBox, QWidget,
)

import nodegraph
from nodegraph import models

from .canvas import INPUTS, InterfaceItem, stand_in_message

INT32 = 2**31 - 1
SLIDER_SPAN = 1000  # parameters whose range is at most this wide get a slider beside their spin box


def _invalid(param, value) -> str | None:
    """Why ``param`` refuses ``value``, or None when it takes it."""
    try:
        param.coerce(value)
    except ValueError as e:
        return str(e)
    return None


def _with_slider(spin, param, set_) -> QWidget:
    """A spin box, with a slider beside it when the parameter has a bounded range (the value is set when
    the slider is let go, so a drag is one edit, not hundreds)."""
    if param.min is None or param.max is None or not 0 < param.max - param.min <= SLIDER_SPAN:
        return spin  # unbounded, or so wide (a size in pixels) that a slider could not hit a value
    steps = 1000 if isinstance(spin, QDoubleSpinBox) else int(param.max - param.min)
    slider = QSlider(Qt.Horizontal)
    slider.setRange(0, steps)

    def to_slider(v):
        slider.blockSignals(True)
        slider.setValue(round((v - param.min) / (param.max - param.min) * steps))
        slider.blockSignals(False)

    to_slider(spin.value())
    spin.valueChanged.connect(to_slider)
    def moved(pos):
        spin.setValue(param.min + (param.max - param.min) * pos / steps)
        if not slider.isSliderDown():  # a click on the groove or an arrow key: one edit each
            set_(spin.value())

    slider.valueChanged.connect(moved)
    slider.sliderReleased.connect(lambda: set_(spin.value()))
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(slider, 2)
    row.addWidget(spin, 1)
    return box


class Inspector(QWidget):
    """The form itself (``self.form``). ``window`` is the MainWindow: its scene says what is selected, its
    ``set_param`` makes the edits, its run control shows the node's last outputs, and its dialogs and
    warnings are the window's."""

    def __init__(self, window):
        super().__init__()
        self.window_ = window
        self.form = QFormLayout(self)

    def show_selection(self) -> None:
        """Fill the form for the one selected node (empty for none, or for several)."""
        scene, workflow = self.window_.scene, self.window_.graph
        while self.form.rowCount():
            self.form.removeRow(0)
        sides = [i.node_id for i in scene.selectedItems() if isinstance(i, InterfaceItem)]
        if len(sides) == 1 and not scene.selected_node_ids():
            self._show_interface(sides[0])
            return
        ids = [i for i in scene.selected_node_ids() if i in workflow.nodes]
        if len(ids) != 1:
            self.window_.placement.show(None, None)  # clicks on the picture edit no node now
            return
        node = workflow.nodes[ids[0]]
        node_type = workflow.registry.get(node.type)
        if node_type is None:  # drawn as a stand-in: say what it is and what it kept
            title = scene.nodes[node.id].node_type.title if node.id in scene.nodes else node.type
            self.form.addRow(QLabel(f"<b>{title}</b>  <small>{node.id} · {node.type}</small>"))
            text = QLabel(stand_in_message(node) + "\n\n" + json.dumps(node.params, indent=1)[:2000])
            text.setWordWrap(True)
            self.form.addRow(text)
            return
        self.form.addRow(QLabel(f"<b>{node_type.title}</b>  <small>{node.id} · {node_type.id}</small>"))
        if node_type.description:
            text = QLabel(node_type.description)
            text.setWordWrap(True)
            self.form.addRow(text)
        if node_type.id.startswith("subgraph:"):
            self.form.addRow(QLabel("<small>a subgraph: Tab or a double-click enters it</small>"))
        linked = scene.linked_inputs(node.id)
        promoted = self._promoted_here(node.id)
        own = self.window_.navigator.instance_values(node.id)
        for param in node_type.params:
            if param.name in promoted:  # each instance's value wins: an edit here would change nothing
                widget = QLabel(f"set on each instance, as '{promoted[param.name]}'")
            elif param.name in own:
                widget = self._instance_value(own[param.name], param.name, node.params.get(param.name))
            elif param.name in linked:
                widget = QLabel("driven by a link")
            elif (problem := _invalid(param, node.params.get(param.name))) is not None:
                widget = self._invalid_value(node.id, param, problem)
            else:
                widget = self._param_widget(node.id, param)
            widget.setToolTip(param.description)
            label = QLabel(param.name)
            if scene.subgraph is not None and param.name not in promoted:  # right-click: show it on the instances
                label.setContextMenuPolicy(Qt.ActionsContextMenu)
                promote = QAction("Promote to the subgraph's instances", label)
                promote.triggered.connect(lambda _=False, n=node.id, p=param.name: self.window_.promote(n, p))
                label.addAction(promote)
                label.setToolTip("right-click to promote this parameter to the subgraph's instances")
            self.form.addRow(label, widget)
        if node.overrides:
            self._show_overrides(node)
        self.window_.run_control.show_outputs(node.id)

    def _invalid_value(self, node_id: str, param, problem: str) -> QWidget:
        """A value the file holds that this parameter refuses (a file opened to be fixed): say so, offer the default."""
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        text = QLabel(f"the file's value is refused: {problem}")
        text.setWordWrap(True)
        line.addWidget(text, 1)
        button = QPushButton(f"use {param.default!r}")
        button.setObjectName(f"default-{param.name}")
        button.clicked.connect(lambda: self.window_.set_param(node_id, param.name, param.default))
        button.clicked.connect(lambda: QTimer.singleShot(0, self.show_selection))
        line.addWidget(button)
        return row

    def _instance_value(self, found, name: str, defined) -> QWidget:
        """An inner parameter the instance entered through sets for itself: its value, and a way back."""
        value, holder, path = found
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(QLabel(f"{value!r} on instance '{path.split('/')[0]}' (the definition: {defined!r})"), 1)
        button = QPushButton("use the definition's")
        button.setObjectName(f"clear-{name}")
        button.clicked.connect(lambda: self.window_.clear_override(holder, path, name))
        line.addWidget(button)
        return row

    def _show_overrides(self, node) -> None:
        """An instance's own values for inner parameters (set from the command line, a batch, a script)."""
        self.form.addRow(QLabel("<small>this instance's own inner values</small>"))
        for path, values in sorted(node.overrides.items()):
            for name, value in sorted(values.items()):
                button = QPushButton(f"{value!r}: use the definition's")
                button.setObjectName(f"clear-{path}.{name}")
                button.clicked.connect(lambda _=False, p=f"{node.id}/{path}", n=name:
                                       self.window_.clear_override(self.window_.graph, p, n))
                self.form.addRow(f"{path}.{name}", button)

    def _promoted_here(self, node_id: str) -> dict[str, str]:
        """Parameters of ``node_id`` the subgraph on the canvas promotes: parameter -> promoted name."""
        sub = self.window_.scene.subgraph
        return {name: p.name for p in (sub.params if sub else ()) for n, name in p.to if n == node_id}

    def _show_interface(self, side: str) -> None:
        """The subgraph's inputs (and promoted parameters) or outputs: rename, move up or down, remove."""
        sub = self.window_.scene.subgraph
        inputs = side == INPUTS
        self.form.addRow(QLabel(f"<b>{sub.title}</b>  <small>{'inputs' if inputs else 'outputs'} of subgraph "
                                f"{sub.id}</small>"))
        hint = QLabel("Drag from the empty socket to an inner port to add one. Renaming or removing a slot "
                      "changes every instance's links.")
        hint.setWordWrap(True)
        self.form.addRow(hint)
        slots = [*sub.inputs, *sub.params] if inputs else list(sub.outputs)
        for slot in slots:
            row = QWidget()
            line = QHBoxLayout(row)
            line.setContentsMargins(0, 0, 0, 0)
            name = QLineEdit(slot.name)
            name.setObjectName(f"slot-{slot.name}")
            name.editingFinished.connect(lambda s=slot, e=name: self.window_.edit_slot("rename", s.name, e.text()))
            line.addWidget(name, 1)
            for text, what in (("↑", "up"), ("↓", "down"), ("✕", "remove")):
                button = QPushButton(text)
                button.setObjectName(f"slot-{slot.name}-{what}")
                button.setFixedWidth(28)
                button.clicked.connect(lambda _=False, s=slot, w=what: self.window_.edit_slot(w, s.name))
                line.addWidget(button)
            kind = "parameter" if slot in sub.params else str(slot.type)
            self.form.addRow(kind, row)

    def _param_widget(self, node_id: str, param) -> QWidget:
        value = self.window_.graph.nodes[node_id].params[param.name]
        kind = str(param.type)
        set_ = lambda v: self.window_.set_param(node_id, param.name, v)  # noqa: E731
        if kind == "BOOL":
            w = QCheckBox()
            w.setChecked(bool(value))
            w.toggled.connect(set_)
        elif kind == "ENUM":
            w = QComboBox()
            w.addItems(list(param.choices))
            w.setCurrentText(value)
            w.currentTextChanged.connect(set_)
        elif kind == "FLOAT":
            w = QDoubleSpinBox()
            w.setDecimals(3)
            w.setRange(param.min if param.min is not None else -1e9, param.max if param.max is not None else 1e9)
            w.setSingleStep(param.step or 0.1)
            w.setValue(value)
            w.editingFinished.connect(lambda spin=w: set_(spin.value()))
            w = _with_slider(w, param, set_)
        elif kind == "INT" and -INT32 <= (param.min or 0) and (param.max or 0) <= INT32:
            w = QSpinBox()
            w.setRange(int(param.min if param.min is not None else -INT32), int(param.max if param.max is not None else INT32))
            w.setSingleStep(int(param.step or 1))
            w.setValue(value)
            w.editingFinished.connect(lambda spin=w: set_(spin.value()))
            w = _with_slider(w, param, set_)
        elif kind in ("INT", "SEED"):
            w = QWidget()
            row = QHBoxLayout(w)
            row.setContentsMargins(0, 0, 0, 0)
            edit = QLineEdit(str(value))
            edit.editingFinished.connect(lambda: self._set_int_text(node_id, param.name, edit))
            row.addWidget(edit)
            if kind == "SEED":
                dice = QPushButton("random")
                dice.clicked.connect(lambda: (edit.setText(str(random.getrandbits(32))),
                                              self._set_int_text(node_id, param.name, edit)))
                row.addWidget(dice)
        elif param.hint == "multiline":
            w = QPlainTextEdit(value)
            w.setFixedHeight(70)
            w.textChanged.connect(lambda: set_(w.toPlainText()))
        elif param.hint == models.MODEL_HINT:
            w = QWidget()
            row = QHBoxLayout(w)
            row.setContentsMargins(0, 0, 0, 0)
            combo = QComboBox()
            combo.setEditable(True)
            try:  # the model folders' models by name, and the ComfyUI folders' of the parameter's kind
                combo.addItems(models.available(param.kind or None))
            except nodegraph.NodegraphError as e:  # e.g. a broken extra_model_paths.yaml: say so, keep editing
                self.window_._warn(str(e))
            combo.setCurrentText(value)
            combo.currentTextChanged.connect(set_)
            browse = QPushButton("…")
            browse.setToolTip("choose a model folder (diffusers layout) elsewhere; a weights file with Shift")
            browse.clicked.connect(lambda: self._browse_model(combo))
            row.addWidget(combo, 1)
            row.addWidget(browse)
        else:
            w = QWidget()
            row = QHBoxLayout(w)
            row.setContentsMargins(0, 0, 0, 0)
            edit = QLineEdit(value)
            edit.editingFinished.connect(lambda: set_(edit.text()))
            row.addWidget(edit)
            if param.hint == "file":
                browse = QPushButton("…")
                browse.clicked.connect(lambda: self._browse(edit, set_))
                row.addWidget(browse)
        return w

    def _set_int_text(self, node_id: str, name: str, edit: QLineEdit) -> None:
        try:
            self.window_.set_param(node_id, name, int(edit.text()))
        except ValueError:
            self.window_._warn(f"node '{node_id}' parameter '{name}': {edit.text()!r} is not a whole number")

    def _browse_model(self, combo: QComboBox) -> None:
        from PySide6.QtWidgets import QApplication

        if QApplication.keyboardModifiers() & Qt.ShiftModifier:
            path, _ = QFileDialog.getOpenFileName(self.window_, "Choose a weights file", "",
                                                  "Weights (*.safetensors *.bin *.pth *.ckpt *.pt)")
        else:
            path = QFileDialog.getExistingDirectory(self.window_, "Choose a model folder")
        if path:
            combo.setCurrentText(path)

    def _browse(self, edit: QLineEdit, set_) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window_, "Choose a file")
        if path:
            edit.setText(path)
            set_(path)
