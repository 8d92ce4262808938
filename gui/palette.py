"""Finding nodes to add: the search ranking, the palette tree (drag a node onto the canvas) and the
quick-add popup that Tab, Shift+A or a double-click opens at the cursor."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QPointF, Qt
from PySide6.QtWidgets import QAbstractItemView, QDialog, QLineEdit, QListWidget, QListWidgetItem, QTreeWidget, QVBoxLayout

import nodegraph
from nodegraph import library

from .canvas import NODE_MIME


def addable_types(workflow) -> list:
    """What the palette and quick-add offer: every registered node type, the workflow's own subgraphs,
    and the library's subgraphs (adding one copies its definition into the workflow)."""
    found = list(nodegraph.REGISTRY.all())
    own = workflow.root().subgraphs
    found += [sub.node_type() for _, sub in sorted(own.items())]
    found += [t for t in library.declarations() if t.id.removeprefix("subgraph:") not in own]
    return found


def best_match(text: str, node_types):
    """The node type a search means (see :func:`ranked`)."""
    matches = ranked(text, node_types)
    return matches[0] if matches else None


def ranked(text: str, node_types) -> list:
    """Node types matching a search, best first: exact title, then title prefix, then all words in the
    title, then in the id, then anywhere in the description."""
    query = " ".join(text.lower().split())
    if not query:
        return []
    words = query.split()

    def rank(t):
        title = t.title.lower()
        if title == query:
            return 0
        if title.startswith(query):
            return 1
        if all(w in title for w in words):
            return 2
        if all(w in t.id for w in words):
            return 3
        if all(w in f"{title} {t.category} {t.description}".lower() for w in words):
            return 4
        return None

    scored = sorted((r, len(t.title), t.title, t.id) for t in node_types if (r := rank(t)) is not None)
    by_id = {t.id: t for t in node_types}
    return [by_id[entry[-1]] for entry in scored]


class QuickAdd(QDialog):
    """The search that Tab, Shift+A or a double-click opens at the cursor: type, Enter adds the first match."""

    def __init__(self, window, scene_pos: QPointF):  # window: the MainWindow
        super().__init__(window, Qt.Popup)
        self.window_, self.scene_pos = window, scene_pos
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.edit = QLineEdit(placeholderText="add a node…")
        self.list = QListWidget()
        layout.addWidget(self.edit)
        layout.addWidget(self.list)
        self.resize(320, 280)
        self.edit.textChanged.connect(self._fill)
        self.edit.returnPressed.connect(self._add_current)
        self.list.itemActivated.connect(lambda _item: self._add_current())
        self._fill("")

    def _fill(self, text: str) -> None:
        self.list.clear()
        for node_type in ranked(text, addable_types(self.window_.workflow))[:15]:
            item = QListWidgetItem(f"{node_type.title}   ({node_type.category})")
            item.setData(Qt.UserRole, node_type.id)
            self.list.addItem(item)
        self.list.setCurrentRow(0)

    def _add_current(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.window_.add_node(item.data(Qt.UserRole), self.scene_pos)
        self.close()


class PaletteTree(QTreeWidget):
    """Node types by category; a node can be dragged onto the canvas (or activated to add it in view)."""

    def __init__(self, types, parent=None):
        super().__init__(parent)
        self.types = types  # () -> the node types to list (see addable_types)
        self.setHeaderHidden(True)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragOnly)

    def mimeData(self, items) -> QMimeData:
        data = QMimeData()
        type_ids = [i.data(0, Qt.UserRole) for i in items if i.data(0, Qt.UserRole)]
        if type_ids:
            data.setData(NODE_MIME, type_ids[0].encode())
        return data

    def fill(self, text: str) -> None:
        """Show the node types whose title, id, category or description hold every word typed."""
        from PySide6.QtWidgets import QTreeWidgetItem

        self.clear()
        words = text.lower().split()
        groups: dict[str, QTreeWidgetItem] = {}
        for node_type in self.types():
            haystack = f"{node_type.title} {node_type.id} {node_type.category} {node_type.description}".lower()
            if not all(w in haystack for w in words):
                continue
            group = groups.get(node_type.category)
            if group is None:
                group = groups[node_type.category] = QTreeWidgetItem(self, [node_type.category])
                group.setFlags(group.flags() & ~Qt.ItemIsDragEnabled)
            item = QTreeWidgetItem(group, [node_type.title])
            item.setData(0, Qt.UserRole, node_type.id)
            item.setToolTip(0, f"{node_type.id}\n{node_type.description}")
        self.expandAll()
