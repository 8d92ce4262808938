"""The image viewer: the selected node's picture, with wheel zoom, drag to pan, fit, 1:1 and Save As.

Save As writes a PNG that carries the workflow that made the picture (as Save Image does), so the file
can be dropped back onto the editor to reopen its graph. For a node that takes points or boxes (a
segmenter's prompts) the viewer also draws them, with the node's mask tinted over the picture, and hands
clicks and drags to a placer (gui/placement.py) that turns them into the node's parameters.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QFileDialog, QGraphicsEllipseItem, QGraphicsPixmapItem, QGraphicsRectItem,
                               QGraphicsScene, QGraphicsView, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget)

from nodegraph.files import atomic_write
from nodegraph.imaging import png_bytes, to_pil


def first_picture(image):
    """The first picture of an IMAGE tensor (or of a MASK, shown grey) as a Pillow image."""
    return to_pil(image[:1].expand(-1, 3, -1, -1) if image.shape[1] == 1 else image[:1])[0]


def to_pixmap(image) -> QPixmap:
    """The first picture of an IMAGE tensor (or MASK, shown grey) as a QPixmap."""
    picture = first_picture(image)
    data = picture.tobytes("raw", "RGB")
    qimage = QImage(data, picture.width, picture.height, 3 * picture.width, QImage.Format_RGB888).copy()
    return QPixmap.fromImage(qimage)


def tint_pixmap(mask, color: str = "#00b0ff", opacity: int = 110) -> QPixmap:
    """A MASK's first picture as a see-through colour (alpha from the mask), to lay over the picture it cuts."""
    import numpy as np

    alpha = (mask[0, 0].detach().float().clamp(0, 1).cpu().numpy() * opacity).astype(np.uint8)
    c = QColor(color)
    rgba = np.empty(alpha.shape + (4,), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = c.red(), c.green(), c.blue(), alpha
    height, width = alpha.shape
    return QPixmap.fromImage(QImage(rgba.tobytes(), width, height, 4 * width, QImage.Format_RGBA8888).copy())


KEEP_COLOR, LEAVE_OUT_COLOR, BOX_COLOR = "#4caf50", "#f44336", "#ffeb3b"


class ImageView(QGraphicsView):
    """Zoom with the wheel around the cursor, pan by dragging; fits the picture until the user zooms.

    While a ``placer`` is set, a click places a point (right-click or Alt+click one to leave out) and, where
    the placer takes boxes, a drag draws a box; the placer gets picture pixel coordinates."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.item = QGraphicsPixmapItem()
        self.item.setTransformationMode(Qt.SmoothTransformation)
        self.scene().addItem(self.item)
        self.setDragMode(QGraphicsView.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        self.setRenderHint(QPainter.SmoothPixmapTransform)
        self.fitting = True
        self.placer = None  # gui.placement.Placement while the shown node takes points or boxes
        self._press = None  # (scene point, keep) of a press that may become a click or a box
        self._rubber = QGraphicsRectItem()
        self._rubber.setPen(QPen(QColor(BOX_COLOR), 0, Qt.DashLine))
        self._rubber.setZValue(3)
        self._rubber.hide()
        self.scene().addItem(self._rubber)

    def set_placer(self, placer) -> None:
        self.placer = placer
        self.setDragMode(QGraphicsView.NoDrag if placer else QGraphicsView.ScrollHandDrag)
        self.viewport().setCursor(Qt.CrossCursor if placer else Qt.OpenHandCursor)

    def _on_picture(self, event) -> QPointF:
        """The event's place in picture pixels, kept inside the picture."""
        p, size = self.mapToScene(event.position().toPoint()), self.item.pixmap().size()
        return QPointF(min(max(p.x(), 0.0), size.width()), min(max(p.y(), 0.0), size.height()))

    def mousePressEvent(self, event) -> None:
        if self.placer is None or event.button() not in (Qt.LeftButton, Qt.RightButton):
            return super().mousePressEvent(event)
        keep = event.button() == Qt.LeftButton and not event.modifiers() & Qt.AltModifier
        self._press = (self._on_picture(event), keep)
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        if self._press is None:
            return super().mouseMoveEvent(event)
        start, keep = self._press
        if keep and self.placer.takes_boxes:
            self._rubber.setRect(QRectF(start, self._on_picture(event)).normalized())
            self._rubber.show()
        event.accept()

    def mouseReleaseEvent(self, event) -> None:
        if self._press is None:
            return super().mouseReleaseEvent(event)
        (start, keep), end = self._press, self._on_picture(event)
        self._press = None
        self._rubber.hide()
        dragged = (end - start).manhattanLength() * self.zoom() > 6  # screen pixels: a shaky click stays a click
        if dragged and keep and self.placer.takes_boxes:
            self.placer.add_box(start.x(), start.y(), end.x(), end.y())
        elif not dragged:
            self.placer.click(start.x(), start.y(), keep, radius=8 / max(self.zoom(), 1e-6))
        event.accept()

    def zoom(self) -> float:
        return self.transform().m11()

    def wheelEvent(self, event) -> None:
        factor = 1.25 if event.angleDelta().y() > 0 else 0.8
        self.scale(factor, factor)
        self.fitting = False

    def fit(self) -> None:
        self.fitting = True
        if not self.item.pixmap().isNull():
            self.fitInView(self.item, Qt.KeepAspectRatio)

    def actual_size(self) -> None:
        self.fitting = False
        self.resetTransform()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.fitting:
            self.fit()


class ImageViewer(QWidget):
    """The viewer panel: the picture, its size and zoom, and the Fit / 1:1 / Save As buttons."""

    def __init__(self, workflow_text=lambda folder: "", parent=None):
        super().__init__(parent)
        self.workflow_text = workflow_text  # called at save time with the PNG's folder: the workflow to embed
        self.image = None
        self.view = ImageView()
        self.info = QLabel("run the workflow to see pictures here")
        self.overlay = QGraphicsPixmapItem()  # the shown node's mask, tinted over its input picture
        self.overlay.setZValue(1)
        self.view.scene().addItem(self.overlay)
        self.marks: list = []  # the drawn points and boxes
        buttons = QHBoxLayout()
        for text, slot in (("Fit", self.view.fit), ("1:1", self.view.actual_size), ("Save As…", self.choose_save)):
            button = QPushButton(text)
            button.clicked.connect(slot)
            button.clicked.connect(self._show_info)
            buttons.addWidget(button)
        self.clear_button = QPushButton("Clear points")
        self.clear_button.setToolTip("remove every point and box placed on this picture")
        self.clear_button.clicked.connect(lambda: self.view.placer and self.view.placer.clear())
        self.clear_button.hide()
        buttons.addWidget(self.clear_button)
        buttons.addWidget(self.info, 1)
        self.placing_hint = QLabel("")  # what a click does, while the shown node takes points or boxes
        self.placing_hint.setWordWrap(True)
        self.placing_hint.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.placing_hint)

    def show_image(self, image) -> None:
        self.image = image
        pixmap = to_pixmap(image)
        self.view.item.setPixmap(pixmap)
        self.view.setSceneRect(self.view.item.boundingRect())
        if self.view.fitting:
            self.view.fit()
        self._show_info()

    def pixmap(self) -> QPixmap:
        return self.view.item.pixmap()

    def show_marks(self, placer, points=(), boxes=(), mask=None) -> None:
        """Draw a node's points (green kept, red left out) and boxes over the picture, tint its mask, and hand
        clicks to ``placer``; ``placer=None`` goes back to plain viewing."""
        for mark in self.marks:
            self.view.scene().removeItem(mark)
        self.marks = []
        self.overlay.setPixmap(tint_pixmap(mask) if mask is not None else QPixmap())
        self.view.set_placer(placer)
        self.clear_button.setVisible(placer is not None)
        self.placing_hint.setVisible(placer is not None)
        if placer is not None:
            self.clear_button.setText("Clear points" if placer.takes_points else "Clear boxes")
            self.placing_hint.setText(placer.hint())
        radius = 5 / max(self.view.zoom(), 1e-6)
        for point in points:
            color = QColor(KEEP_COLOR if point.keep else LEAVE_OUT_COLOR)
            dot = QGraphicsEllipseItem(point.x - radius, point.y - radius, 2 * radius, 2 * radius)
            dot.setPen(QPen(Qt.white, 0))
            dot.setBrush(QBrush(color))
            self.marks.append(dot)
        for x0, y0, x1, y1 in boxes:
            box = QGraphicsRectItem(QRectF(x0, y0, x1 - x0, y1 - y0))
            box.setPen(QPen(QColor(BOX_COLOR), 0))
            self.marks.append(box)
        for mark in self.marks:
            mark.setZValue(2)
            self.view.scene().addItem(mark)
        self._show_info()

    def _show_info(self) -> None:
        if self.image is not None:
            self.info.setText(f"{self.image.shape[-1]}×{self.image.shape[-2]}  ·  {self.view.zoom():.0%}")

    def choose_save(self) -> None:
        if self.image is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save picture", "picture.png", "PNG (*.png)")
        if path:
            self.save(path)

    def save(self, path: str | Path) -> Path:
        """Write the shown picture as a PNG with its workflow embedded (atomically: no partial file)."""
        path = Path(path)
        if path.suffix.lower() != ".png":
            path = path.with_suffix(".png")
        return atomic_write(path, png_bytes(first_picture(self.image), self.workflow_text(path.parent)))
