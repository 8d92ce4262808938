"""``nodegraph edit``: start the editor."""

from __future__ import annotations

import sys


def main(path: str | None = None, output_dir: str = "output", device: str = "auto") -> int:
    from PySide6.QtWidgets import QApplication

    import nodegraph

    from .window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("nodegraph")
    window = MainWindow(path, engine=nodegraph.Engine(device=device), output_dir=output_dir)
    window.show()
    return app.exec()
