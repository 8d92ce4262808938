"""``nodegraph edit``: start the editor."""

from __future__ import annotations

import sys


def main(path: str | None = None, output_dir: str | None = None, device: str | None = None) -> int:
    """Open the editor; ``output_dir`` and ``device`` override the saved settings for this session."""
    from PySide6.QtWidgets import QApplication

    import nodegraph

    from .window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("nodegraph")
    engine = None
    if device:
        from .preferences import Preferences

        engine = nodegraph.Engine(device=device, cache_bytes=int(Preferences().cache_gib() * 1024**3))
    window = MainWindow(path, engine=engine, output_dir=output_dir)
    window.show()
    if path is None and not window.modified():  # a first start (no file, nothing recovered): show what it does
        window.open_demo()
    return app.exec()
