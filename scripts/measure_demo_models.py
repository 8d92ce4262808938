"""Measure the shipped demo models through the product's example workflows, on the CPU: the figures in
docs/demo-model.md that the tests (tests/test_demo_models.py) check on fewer pictures.

    python scripts/measure_demo_models.py [--pictures 16] [--seeds 8]

Prints, per workflow, how often an object takes the prompted colour and goes to the prompted place (and how
often a one-object prompt gave exactly one object), then
the ControlNet's edge F-score with and without it, and what the inpaint and outpaint examples paint.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import nodegraph  # noqa: E402
from nodegraph_demo.evaluate import (  # noqa: E402
    NAMES,
    colour_names,
    colour_prompts,
    edge_agreement,
    f_score,
    in_region,
    main_object,
    object_count,
    place_prompts,
)
from nodegraph_demo.scenes import canny  # noqa: E402


def example(name: str):
    return nodegraph.load(str(REPO / "workflows" / f"{name}.json"))


def prompt_figures(engine, workflow: str, size: str, pictures: int, out: str
                   ) -> tuple[list[float], list[float], float]:
    """For each colour word (8) and each place (4), the fraction of its pictures that show it: the issue asks
    for at least 0.9 per word and per place, so the worst one matters as much as the mean. Then the
    fraction of all those pictures (every prompt names one object) that show exactly one."""
    wf = example(workflow)
    wf.set_param("size", "batch_size", pictures)
    counts = []

    def objects(prompt: str):
        wf.set_param("prompt", "prompt", prompt)
        images = engine.run(wf, output_dir=out).outputs["decode"]["image"]
        counts.extend(object_count(p) for p in images)
        return [main_object(p) for p in images]

    colours = [sum(o is not None and o[0] == colour for o in objects(prompt)) / pictures
               for colour, prompt in colour_prompts(size)]
    places = [sum(o is not None and in_region(place, o[1], o[2]) for o in objects(prompt)) / pictures
              for place, prompt in place_prompts(size)]
    return colours, places, counts.count(1) / len(counts)


def controlnet_figures(engine, seeds: int, out: str, prompt: str | None) -> list[tuple[float, float]]:
    wf = example("controlnet-canny")
    if prompt is not None:
        wf.set_param("prompt", "prompt", prompt)
    rows = []
    for seed in range(1, seeds + 1):
        wf.set_param("sampler", "seed", seed)
        pair = []
        for mode in ("active", "bypassed"):
            wf.set_mode("control", mode)
            result = engine.run(wf, output_dir=out).outputs
            pair.append(f_score(edge_agreement(canny(result["decode"]["image"]), result["edges"]["image"])))
        rows.append(tuple(pair))
    return rows


def _inpaint_green(outputs) -> bool:
    """inpaint: the masked red circle came out green, as prompted."""
    picture = outputs["decode"]["image"][0]
    names = colour_names(picture.permute(1, 2, 0))[outputs["sun"]["mask"][0, 0] > 0.5]
    return NAMES[int(names.mode().values)] == "green"


def _outpaint_green(outputs) -> bool:
    """outpaint: the new strip right of the kept 40 pixels holds the prompted green square."""
    found = main_object(outputs["decode"]["image"][0][:, :, 40:])
    return found is not None and found[0] == "green"


REPAINTS = {  # example -> (its check, the node whose image and mask (0 = keep) it repaints)
    "inpaint": (_inpaint_green, ("picture", "feather")),
    "outpaint": (_outpaint_green, ("canvas", "canvas")),
}


def repaint_figures(engine, name: str, seeds: int, out: str) -> tuple[int, bool]:
    """Seeds whose repainted part is what the prompt asks for, and whether every kept pixel is the input's."""
    check, (source, masker) = REPAINTS[name]
    wf = example(name)
    hits, kept = 0, True
    for seed in range(1, seeds + 1):
        wf.set_param("sampler", "seed", seed)
        outputs = engine.run(wf, output_dir=out).outputs
        picture, same = outputs["decode"]["image"][0], outputs[masker]["mask"][0, 0] == 0
        hits += check(outputs)
        kept &= torch.equal(picture[:, same], outputs[source]["image"][0][:, same])
    return hits, kept


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pictures", type=int, default=16, help="pictures per prompt (default 16)")
    p.add_argument("--seeds", type=int, default=8, help="seeds for the ControlNet, inpaint and outpaint examples (default 8)")
    args = p.parse_args()
    engine = nodegraph.Engine(device="cpu")
    out = tempfile.mkdtemp()
    print(f"| workflow | object size | colour: mean (worst word) | position: mean (worst place) | one object |"
          f"  ({args.pictures} pictures per prompt)")
    print("| --- | --- | ---: | ---: | ---: |")
    for workflow in ("txt2img", "sana-dcae"):
        for size in ("small", "large"):
            colours, places, single = prompt_figures(engine, workflow, size, args.pictures, out)
            print(f"| {workflow} | {size} | {sum(colours) / len(colours):.3f} ({min(colours):.3f}) "
                  f"| {sum(places) / len(places):.3f} ({min(places):.3f}) | {single:.3f} |", flush=True)
    for label, prompt in (("example prompt", None), ("empty prompt", "")):
        rows = controlnet_figures(engine, args.seeds, out, prompt)
        print(f"controlnet-canny, {label}: F with " + " ".join(f"{a:.2f}" for a, _ in rows)
              + "; bypassed " + " ".join(f"{b:.2f}" for _, b in rows), flush=True)
    for name, what in (("inpaint", "green inside the mask"), ("outpaint", "a green square in the new strip")):
        hits, kept = repaint_figures(engine, name, args.seeds, out)
        print(f"{name}: {what} in {hits} of {args.seeds} seeds; the kept pixels "
              + ("identical to the input in every seed" if kept else "CHANGED"), flush=True)


if __name__ == "__main__":
    main()
