"""Editor speed: opening a 500-node workflow, and repainting the visible canvas while panning.

    QT_QPA_PLATFORM=offscreen python bench/bench_editor.py [--nodes 500] [--frames 60]

The workflow is a grid of image nodes (Load Image -> chains of PIL ops -> Save Image) laid out like a
large real graph. "open" is load + build every item + first paint; "pan frame" renders the visible
viewport after a scroll step (what a frame costs while dragging the canvas). Medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHAIN = ["image.blur", "image.contrast", "image.saturation", "image.flip", "image.invert", "image.grayscale",
         "image.sharpen", "image.gamma"]


def build(n: int, path: str) -> None:
    import nodegraph

    wf = nodegraph.Workflow()
    per_row = 10
    rows = max(1, n // per_row)
    for r in range(rows):
        prev = wf.add_node("image.load", f"load{r}", params={"path": "assets/sample.png"}, position=(0, r * 260)).id
        for c in range(1, per_row - 1):
            node = wf.add_node(CHAIN[c % len(CHAIN)], f"n{r}_{c}", position=(c * 260, r * 260)).id
            wf.connect(prev, "image", node, "image")
            prev = node
        save = wf.add_node("image.save", f"save{r}", position=((per_row - 1) * 260, r * 260)).id
        wf.connect(prev, "image", save, "image")
    nodegraph.save(wf, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtWidgets import QApplication

    import nodegraph
    from gui.window import MainWindow

    path = os.path.join(tempfile.mkdtemp(), "big.json")
    build(args.nodes, path)
    app = QApplication.instance() or QApplication([])
    nodegraph.REGISTRY.all()  # node discovery happens once per process, not per file
    opens = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        window = MainWindow(path, engine=nodegraph.Engine(device="cpu"), output_dir=tempfile.mkdtemp())
        window.resize(1600, 950)
        window.show()
        app.processEvents()
        opens.append(time.perf_counter() - start)
        last = window
        window.saved_text = window.workflow.dumps()
    view = last.view
    view.resetTransform()  # 1:1 zoom, as when working on a part of a big graph
    viewport = view.viewport()
    frame = QImage(viewport.size(), QImage.Format_ARGB32)
    samples = []
    for i in range(args.frames):
        view.horizontalScrollBar().setValue(view.horizontalScrollBar().value() + 25)
        view.verticalScrollBar().setValue(view.verticalScrollBar().value() + (15 if i % 2 else -5))
        start = time.perf_counter()
        painter = QPainter(frame)
        view.render(painter)
        painter.end()
        samples.append(time.perf_counter() - start)
    view.fitInView(view.scene().itemsBoundingRect())
    fitted = []
    for _ in range(10):
        start = time.perf_counter()
        painter = QPainter(frame)
        view.render(painter)
        painter.end()
        fitted.append(time.perf_counter() - start)
    nodes = len(last.workflow.nodes)
    items = len(last.scene.items())
    print(f"{'case':<48} {'ms':>8}")
    print(f"{f'open a {nodes}-node workflow ({items} scene items)':<48} {statistics.median(opens) * 1e3:8.1f}")
    print(f"{'pan frame at 1:1 (visible part repainted)':<48} {statistics.median(samples) * 1e3:8.2f}")
    print(f"{'frame with the whole graph in view':<48} {statistics.median(fitted) * 1e3:8.2f}")


if __name__ == "__main__":
    main()
