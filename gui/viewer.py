"""The image viewer: the selected node's picture, with wheel zoom, drag to pan, fit, 1:1 and Save As.

Save As writes a PNG that carries the workflow that made the picture (as Save Image does), so the file
can be dropped back onto the editor to reopen its graph.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPainter, QPixmap
from PySide6.QtWidgets import (QFileDialog, QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QHBoxLayout, QLabel,
                               QPushButton, QVBoxLayout, QWidget)

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


class ImageView(QGraphicsView):
    """Zoom with the wheel around the cursor, pan by dragging; fits the picture until the user zooms."""

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
        buttons = QHBoxLayout()
        for text, slot in (("Fit", self.view.fit), ("1:1", self.view.actual_size), ("Save As…", self.choose_save)):
            button = QPushButton(text)
            button.clicked.connect(slot)
            button.clicked.connect(self._show_info)
            buttons.addWidget(button)
        buttons.addWidget(self.info, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view, 1)
        layout.addLayout(buttons)

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
