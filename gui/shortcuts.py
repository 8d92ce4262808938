"""Help → Keyboard shortcuts: every menu action with its keys, and the canvas's mouse gestures.

The menu part is read from the window's actions, so the list cannot drift from what the keys really do.
"""

from __future__ import annotations

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTableWidget, QTableWidgetItem, QVBoxLayout

CANVAS = [
    ("Add a node at the cursor (search)", "Tab · Shift+A · double-click on empty canvas"),
    ("Add a node from the palette", "drag it onto the canvas · Enter in the search field"),
    ("Connect", "drag from a socket to a socket (sockets that cannot take it dim)"),
    ("Detach / re-route a link", "drag its input end away"),
    ("Cut links", "Ctrl + right-drag across them"),
    ("Add a reroute point", "double-click on a link"),
    ("Remove a reroute point", "double-click it · select it and press Delete"),
    ("Move a frame with its nodes", "drag its title bar"),
    ("Rename a frame", "double-click its title"),
    ("Enter a subgraph", "Tab with its instance selected · double-click the instance"),
    ("Leave a subgraph", "Esc (when nothing runs) · click a part of the breadcrumb"),
    ("Promote an inner parameter", "right-click its name in the inspector"),
    ("Select several", "rubber band · Ctrl+click"),
    ("Delete the selection", "Delete · Backspace"),
    ("Zoom · pan · fit", "wheel · middle-drag · F or Home"),
]


def menu_shortcuts(window) -> list[tuple[str, str]]:
    """(menu path, keys) for every menu action that has a shortcut."""
    rows = []
    for menu_action in window.menuBar().actions():
        menu = menu_action.menu()
        for act in menu.actions() if menu else ():
            keys = " · ".join(k.toString(QKeySequence.NativeText) for k in act.shortcuts())
            if keys:
                rows.append((f"{menu_action.text().replace('&', '')} → {act.text()}", keys))
    return rows


class ShortcutsDialog(QDialog):
    def __init__(self, window):
        super().__init__(window)
        self.setWindowTitle("Keyboard shortcuts")
        rows = menu_shortcuts(window) + CANVAS
        self.table = QTableWidget(len(rows), 2)
        self.table.setHorizontalHeaderLabels(["Action", "Keys / gesture"])
        for i, (what, keys) in enumerate(rows):
            self.table.setItem(i, 0, QTableWidgetItem(what))
            self.table.setItem(i, 1, QTableWidgetItem(keys))
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(620, 520)
