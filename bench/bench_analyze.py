"""Analyze nodes' speed: Segment, Detect Objects, Text to Mask (CLIPSeg) and Florence-2 on one picture.

    python bench/bench_analyze.py [--device cpu] [--repeat 5]

The models are the tests' tiny random ones (tests/tiny_models.py), saved in their transformers layouts and
loaded by our loaders; each row is one node's run function on the 384x256 sample picture after a warm-up,
so the figures are the processor's pre- and post-processing plus the model call (for models this small,
mostly the former and kernel launches). Load time is the loader node's first call. Medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))  # tiny_models: random-weight models in the released layouts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import torch

    from bare_context import BareContext
    from PIL import Image

    import tiny_models
    from nodegraph.imaging import from_pil
    from nodes import clipseg, detect, florence, segment

    ctx = BareContext(torch.device(args.device))
    picture = from_pil([Image.open(ROOT / "workflows" / "assets" / "sample.png")], ctx.device)
    folder = Path(tempfile.mkdtemp(prefix="bench-analyze-"))

    def sync():
        if ctx.device.type == "cuda":
            torch.cuda.synchronize()

    def timed(fn):
        fn()  # warm-up
        times = []
        for _ in range(args.repeat):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1e3

    def loaded(loader, builder, name, key):
        path = builder(folder / name)
        start = time.perf_counter()
        value = loader(ctx, model=str(path), dtype="float32")[key]
        sync()
        return value, (time.perf_counter() - start) * 1e3

    rows = []
    sam, load_ms = loaded(segment.load_segmenter, tiny_models.sam, "sam", "segment_model")
    rows.append(("Segment (SAM), a box and a point", load_ms, timed(lambda: segment.segment(
        ctx, sam, picture, points="192,144", drawn_boxes="96,64,288,224", multimask="best", combine="union",
        threshold=0.0))))
    owl, load_ms = loaded(detect.load_detector, tiny_models.owlvit, "owlvit", "detect_model")
    rows.append(("Detect Objects (OWL-ViT), 2 labels", load_ms, timed(lambda: detect.detect_objects(
        ctx, owl, picture, prompt="a house, a tree", threshold=0.0, text_threshold=0.25, max_boxes=4))))
    seg, load_ms = loaded(clipseg.load_clipseg, tiny_models.clipseg, "clipseg", "clipseg_model")
    rows.append(("Text to Mask (CLIPSeg), 2 texts", load_ms, timed(lambda: clipseg.text_to_mask(
        ctx, seg, picture, prompt="a house, a tree", combine="union", threshold=0.0))))
    vlm, load_ms = loaded(florence.load_florence, tiny_models.florence2, "florence2", "vlm")
    rows.append(("Florence-2 caption, 20 new tokens", load_ms, timed(lambda: florence.florence(
        ctx, vlm, picture, task="caption", text="", max_new_tokens=20, num_beams=1))))

    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeat}")
    print("| node | load ms | run ms |")
    print("| --- | ---: | ---: |")
    for name, load_ms, run_ms in rows:
        print(f"| {name} | {load_ms:.0f} | {run_ms:.1f} |")


if __name__ == "__main__":
    main()
