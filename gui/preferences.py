"""Editor preferences and the Settings dialog.

The editor's own choices (device, cache budget, live mode, output folder, recent files) are kept the Qt
way, in QSettings. Model folders and the ComfyUI folder are the exception: they live in the engine's
settings file (``nodegraph.settings``), so ``nodegraph run`` on the command line finds the same models.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QHBoxLayout, QLabel, QLineEdit, QListWidget, QPushButton, QVBoxLayout,
                               QWidget)

from nodegraph import settings as engine_settings

DEVICES = ("auto", "cpu", "cuda", "mps")
MAX_RECENT = 10


class Preferences:
    """Typed access to the editor's QSettings, with the defaults in one place."""

    def __init__(self):
        self.qt = QSettings("nodegraph", "editor")

    def device(self) -> str:
        value = self.qt.value("device", "auto", type=str)
        return value if value in DEVICES else "auto"

    def cache_gib(self) -> float:
        return max(0.25, self.qt.value("cache_gib", 4.0, type=float))

    def live_mode(self) -> bool:
        return self.qt.value("live_mode", False, type=bool)

    def output_dir(self) -> str:
        return self.qt.value("output_dir", "output", type=str) or "output"

    def set(self, **values) -> None:
        for key, value in values.items():
            self.qt.setValue(key, value)

    # ----- recent files ----------------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        value = self.qt.value("recent_files", [], type=list)
        return [p for p in value if isinstance(p, str)]

    def add_recent(self, path: str | Path) -> None:
        path = str(Path(path).resolve())
        self.qt.setValue("recent_files", [path, *[p for p in self.recent_files() if p != path]][:MAX_RECENT])

    def clear_recent(self) -> None:
        self.qt.setValue("recent_files", [])

    # ----- model folders: the engine's settings file -------------------------------------------------
    @staticmethod
    def model_folders() -> list[str]:
        return [p for p in engine_settings.load_settings().get("model_folders", []) if isinstance(p, str)]

    @staticmethod
    def set_model_folders(folders: list[str]) -> None:
        data = engine_settings.load_settings()
        data["model_folders"] = list(dict.fromkeys(folders))
        engine_settings.save_settings(data)

    @staticmethod
    def comfyui_folder() -> str:
        value = engine_settings.load_settings().get("comfyui")
        return value if isinstance(value, str) else ""

    @staticmethod
    def set_comfyui_folder(path: str) -> None:
        """Store the ComfyUI install to search (an empty path removes the setting)."""
        data = engine_settings.load_settings()
        if path.strip():
            data["comfyui"] = path.strip()
        else:
            data.pop("comfyui", None)
        engine_settings.save_settings(data)


class SettingsDialog(QDialog):
    """Model folders, the ComfyUI folder, device, cache budget, live mode default and output folder."""

    def __init__(self, prefs: Preferences, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.prefs = prefs
        self.folders = QListWidget()
        self.folders.addItems(prefs.model_folders())
        add, remove = QPushButton("Add…"), QPushButton("Remove")
        add.clicked.connect(self._choose_folder)
        remove.clicked.connect(lambda: [self.folders.takeItem(self.folders.row(i)) for i in self.folders.selectedItems()])
        folder_box = QWidget()
        box = QVBoxLayout(folder_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.folders)
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        box.addLayout(row)
        self.comfyui = QLineEdit(prefs.comfyui_folder())
        self.comfyui.setPlaceholderText("its models/ and extra_model_paths.yaml are searched")
        self.comfyui.setMinimumWidth(340)  # room for a path
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._choose_comfyui)
        comfy_box = QWidget()
        comfy_col = QVBoxLayout(comfy_box)
        comfy_col.setContentsMargins(0, 0, 0, 0)
        comfy_row = QHBoxLayout()
        comfy_row.addWidget(self.comfyui, 1)
        comfy_row.addWidget(browse)
        comfy_col.addLayout(comfy_row)
        overridden = os.environ.get(engine_settings.COMFYUI_ENV)
        if overridden:  # say why the field seems not to count
            note = QLabel(f"{engine_settings.COMFYUI_ENV}={overridden} is set and wins over this field")
            note.setWordWrap(True)
            comfy_col.addWidget(note)
        self.device = QComboBox()
        self.device.addItems(list(DEVICES))
        self.device.setCurrentText(prefs.device())
        self.cache = QDoubleSpinBox(suffix=" GiB", decimals=2, minimum=0.25, maximum=4096, singleStep=1)
        self.cache.setValue(prefs.cache_gib())
        self.live = QCheckBox("re-run the changed part after each edit")
        self.live.setChecked(prefs.live_mode())
        self.output = QLineEdit(prefs.output_dir())
        form = QFormLayout(self)
        form.addRow("Model folders", folder_box)
        form.addRow("ComfyUI folder", comfy_box)
        form.addRow("Device", self.device)
        form.addRow("Cache budget", self.cache)
        form.addRow("Live mode", self.live)
        form.addRow("Output folder", self.output)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def add_folder(self, path: str) -> None:
        if path and not self.folders.findItems(path, Qt.MatchExactly):
            self.folders.addItem(path)

    def _choose_folder(self) -> None:
        self.add_folder(QFileDialog.getExistingDirectory(self, "Add a model folder"))

    def _choose_comfyui(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a ComfyUI folder", self.comfyui.text())
        if path:
            self.comfyui.setText(path)

    def save(self) -> None:
        """Store what the dialog shows (called on OK)."""
        self.prefs.set_model_folders([self.folders.item(i).text() for i in range(self.folders.count())])
        self.prefs.set_comfyui_folder(self.comfyui.text())
        self.prefs.set(device=self.device.currentText(), cache_gib=self.cache.value(), live_mode=self.live.isChecked(),
                       output_dir=self.output.text().strip() or "output")
