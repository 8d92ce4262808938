"""Layout-only canvas items: group frames around nodes, and reroute points that links are drawn through.

Neither changes what the graph computes: a group is a titled frame stored in the workflow's ``groups``, a
reroute point is stored on its link (``via``). Editing them records an undo step but never re-runs a node.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem

from . import theme

FRAME_MARGIN, FRAME_TITLE, REROUTE_RADIUS = 18.0, 26.0, 6.0


class GroupItem(QGraphicsItem):
    """A titled frame drawn around its member nodes; dragging its title bar moves the members with it,
    a double-click on the title renames it."""

    def __init__(self, scene, group_id: str):
        super().__init__()
        self.graph, self.group_id = scene, group_id
        self._rect = QRectF()
        self._drag: QPointF | None = None
        self.setFlags(QGraphicsItem.ItemIsSelectable)
        self.setZValue(-2)
        self.refresh()

    @property
    def group(self):
        return self.graph.workflow.groups[self.group_id]

    def members(self) -> list:
        return [self.graph.nodes[n] for n in self.group.nodes if n in self.graph.nodes]

    def refresh(self) -> None:
        """Fit the frame to where its members are now."""
        rect = QRectF()
        members = self.members()
        for item in members:
            rect = rect.united(item.sceneBoundingRect())
        self.setVisible(bool(members))  # a frame whose nodes were all deleted has nothing to frame
        self.prepareGeometryChange()
        self._rect = rect.adjusted(-FRAME_MARGIN, -FRAME_MARGIN - FRAME_TITLE, FRAME_MARGIN, FRAME_MARGIN)
        self.update()

    def title_rect(self) -> QRectF:
        return QRectF(self._rect.left(), self._rect.top(), self._rect.width(), FRAME_TITLE)

    def boundingRect(self) -> QRectF:
        return self._rect

    def paint(self, painter: QPainter, option, widget=None) -> None:
        color = QColor(self.group.color or theme.GROUP_COLOR)
        fill = QColor(color)
        fill.setAlpha(45)
        painter.setBrush(fill)
        painter.setPen(QPen(QColor("#f0c040") if self.isSelected() else color, 1.5))
        painter.drawRoundedRect(self._rect, 8, 8)
        bar = QColor(color)
        bar.setAlpha(140)
        painter.fillRect(self.title_rect().adjusted(1, 1, -1, 0), bar)
        painter.setPen(QColor(theme.TEXT))
        font = QFont()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        painter.setFont(font)
        painter.drawText(self.title_rect().adjusted(10, 0, -10, 0), Qt.AlignVCenter | Qt.AlignLeft,
                         self.group.title or "Group")

    # Only the title bar grabs the mouse: a press inside the frame still selects nodes or starts a rubber band.
    def mousePressEvent(self, event) -> None:
        if event.button() != Qt.LeftButton or not self.title_rect().contains(event.pos()):
            event.ignore()
            return
        self._drag = event.scenePos()
        if not event.modifiers() & Qt.ControlModifier:
            self.graph.clearSelection()
        self.setSelected(True)
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        if self._drag is None:
            return super().mouseMoveEvent(event)
        delta = event.scenePos() - self._drag
        self._drag = event.scenePos()
        for item in self.members():
            item.setPos(item.pos() + delta)  # the scene then writes its position and refits this frame

    def mouseReleaseEvent(self, event) -> None:
        self._drag = None
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event) -> None:
        if self.title_rect().contains(event.pos()):
            self.graph.rename_group.emit(self.group_id)
            event.accept()
        else:
            event.ignore()


class RerouteItem(QGraphicsItem):
    """A point a link is drawn through; drag it to route the link, select it and press Delete (or
    double-click it) to remove it."""

    def __init__(self, link, index: int, position: QPointF):
        super().__init__()
        self.link, self.index = link, index
        self.setPos(position)
        self.setFlags(QGraphicsItem.ItemIsMovable | QGraphicsItem.ItemIsSelectable
                      | QGraphicsItem.ItemSendsGeometryChanges)
        self.setZValue(2)
        self.setToolTip("reroute point: drag to move, double-click or Delete to remove")

    def boundingRect(self) -> QRectF:
        r = REROUTE_RADIUS + 2
        return QRectF(-r, -r, 2 * r, 2 * r)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setBrush(theme.port_color(self.link.source.type_name))
        painter.setPen(QPen(QColor("#f0c040") if self.isSelected() else QColor("#111111"), 1.5))
        painter.drawEllipse(QPointF(0, 0), REROUTE_RADIUS, REROUTE_RADIUS)

    def itemChange(self, change, value):
        if change == QGraphicsItem.ItemPositionHasChanged:
            self.link.move_point(self.index, self.pos())
        return super().itemChange(change, value)

    def mouseDoubleClickEvent(self, event) -> None:
        self.link.graph().remove_reroute(self)
        event.accept()
