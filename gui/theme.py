"""Colours: one per port type (sockets and links) and one per node category (title bars)."""

from __future__ import annotations

from PySide6.QtGui import QColor

PORT_COLORS = {
    "IMAGE": "#64b5f6", "MASK": "#b0bec5", "LATENT": "#f06292", "CONDITIONING": "#ffb74d", "MODEL": "#9575cd",
    "VAE": "#e57373", "TEXT_ENCODER": "#ffd54f", "CONTROLNET": "#4db6ac", "EMBEDDING": "#a1887f",
    "IMAGE_ENCODER": "#7986cb", "DEPTH_MODEL": "#5c6bc0", "UPSCALE_MODEL": "#ff8a65",
    "SEGMENT_MODEL": "#4fc3f7", "DETECT_MODEL": "#26a69a", "CLIPSEG_MODEL": "#9ccc65", "VLM": "#ba68c8",
    "BOXES": "#fff176", "INT": "#81c784",
    "FLOAT": "#aed581", "STRING": "#e0e0e0", "BOOL": "#ef9a9a", "ENUM": "#ce93d8", "SEED": "#4dd0e1",
}
CATEGORY_COLORS = {
    "image": "#2e5d8a", "mask": "#5a5a6e", "generate": "#7a3e6e", "analyze": "#3e6e5a", "values": "#5e6e2e",
}
STATE_COLORS = {
    "clean": "#3c3f44", "dirty": "#8a7a2e", "running": "#2e6e8a", "cached": "#3c5a44", "failed": "#a33a3a",
    "skipped": "#4a4a4a",
}
BACKGROUND, GRID, NODE_BODY, TEXT = "#202226", "#2a2d31", "#2f3236", "#e8e8e8"
GROUP_COLOR = "#5b7a99"  # a frame without a colour of its own


def port_color(type_name: str) -> QColor:
    return QColor(PORT_COLORS.get(str(type_name), "#cccccc"))


def category_color(category: str) -> QColor:
    return QColor(CATEGORY_COLORS.get(category.split("/")[0], "#4a4a4a"))
