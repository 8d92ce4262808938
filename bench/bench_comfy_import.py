"""ComfyUI import and export speed: a large UI-format workflow converted, validated and written back.

    python bench/bench_comfy_import.py [--chains 50] [--repeat 5]

The workflow is ``--chains`` txt2img pipelines in ComfyUI's UI format (0.4: positional widgets, link
arrays, a Reroute on every VAE link), ten nodes each, so 50 chains are 500 nodes and 600 links. "import"
is ``nodegraph.loads`` of the text (read, convert, validate); "export" is ``comfy.export_api`` of the
result. Medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (class, widgets_values, [(input name, source node offset, source slot)], outputs used)
CHAIN = [
    ("CheckpointLoaderSimple", ["demo-sd"], []),
    ("CLIPTextEncode", ["a small red circle on the left, blue background"], [("clip", 0, 1)]),
    ("CLIPTextEncode", [""], [("clip", 0, 1)]),
    ("EmptyLatentImage", [64, 64, 1], []),
    ("KSampler", [42, "randomize", 20, 4.0, "euler_ancestral", "normal", 1.0],
     [("model", 0, 0), ("positive", 1, 0), ("negative", 2, 0), ("latent_image", 3, 0)]),
    ("Reroute", None, [("", 0, 2)]),
    ("VAEDecode", None, [("samples", 4, 0), ("vae", 5, 0)]),
    ("ImageInvert", None, [("image", 6, 0)]),
    ("ImageScaleBy", ["bilinear", 2.0], [("image", 7, 0)]),
    ("SaveImage", ["bench"], [("images", 8, 0)]),
]


def build(chains: int) -> str:
    nodes, links = [], []
    for c in range(chains):
        base = c * len(CHAIN)
        for i, (cls, widgets, inputs) in enumerate(CHAIN):
            node = {"id": base + i + 1, "type": cls, "pos": [i * 340, c * 300], "size": [315, 120], "flags": {},
                    "order": base + i, "mode": 0, "inputs": [], "outputs": [], "properties": {}}
            if widgets is not None:
                node["widgets_values"] = widgets
            for name, offset, slot in inputs:
                link_id = len(links) + 1
                links.append([link_id, base + offset + 1, slot, base + i + 1, len(node["inputs"]), "*"])
                node["inputs"].append({"name": name, "type": "*", "link": link_id})
            nodes.append(node)
    return json.dumps({"last_node_id": len(nodes), "last_link_id": len(links), "nodes": nodes, "links": links,
                       "groups": [], "config": {}, "extra": {}, "version": 0.4})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import nodegraph
    from nodegraph import comfy

    text = build(args.chains)
    nodegraph.REGISTRY.all()  # node discovery happens once per process, not per file
    imports, exports = [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        workflow = nodegraph.loads(text)
        imports.append(time.perf_counter() - start)
        start = time.perf_counter()
        comfy.export_api(workflow)
        exports.append(time.perf_counter() - start)
    count = len(json.loads(text)["nodes"])
    print("| case | ComfyUI nodes | our nodes | median ms |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| import (read, convert, validate) | {count} | {len(workflow.nodes)} | {statistics.median(imports) * 1e3:.1f} |")
    print(f"| export to the API format | {count} | {len(workflow.nodes)} | {statistics.median(exports) * 1e3:.1f} |")


if __name__ == "__main__":
    main()
