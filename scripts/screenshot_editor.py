"""Screenshot of the editor with an example workflow loaded and run (docs/editor.png, docs/subgraph.png).

    QT_QPA_PLATFORM=offscreen python scripts/screenshot_editor.py [workflow] [out.png] [node to select] [instance to enter]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("XDG_CONFIG_HOME", tempfile.mkdtemp())  # leave the real preferences (recent files) alone
ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    import nodegraph
    from gui.window import MainWindow

    workflow = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "workflows" / "image-ops.json")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else ROOT / "docs" / "editor.png")
    app = QApplication.instance() or QApplication([])
    window = MainWindow(workflow, engine=nodegraph.Engine(device="cpu"), output_dir=tempfile.mkdtemp())
    window.resize(1600, 950)
    window.show()
    loop = QEventLoop()
    window.runner.done.connect(loop.quit)
    window.run_all()
    QTimer.singleShot(120_000, loop.quit)
    loop.exec()
    for instance in sys.argv[4].split("/") if len(sys.argv) > 4 else ():
        window.navigator.enter(instance)  # inside a subgraph: the breadcrumb shows where
    select = sys.argv[3] if len(sys.argv) > 3 else "pad"
    if select in window.scene.nodes:
        window.scene.nodes[select].setSelected(True)
    window.view.fit_all()
    app.processEvents()
    out.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(out))
    window.close()  # an orderly close: the scene goes before the application
    window.deleteLater()
    app.processEvents()
    print(out)


if __name__ == "__main__":
    main()
