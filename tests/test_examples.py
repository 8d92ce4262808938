"""Every workflow shipped in workflows/ runs headless through the CLI and writes real pictures.

Workflows that name models (demo-sd, demo-sdxl, demo-esrgan-x2.safetensors, ...) get tiny random-weight
models of those names in a model folder found through NODEGRAPH_MODEL_PATHS, the way a user's own models
are found; picture sizes and step counts are reduced so the whole set runs in seconds on a CPU.
"""

import functools
import glob
import json
import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image

import nodegraph
from nodegraph.cli import main
from nodegraph.expand import flatten

import tiny_models
import tiny_upscalers
from conftest import REPO

EXAMPLES = sorted(glob.glob(os.path.join(REPO, "workflows", "*.json")))
BUILDERS = {
    "demo-sd": tiny_models.sd_pipeline,
    "demo-sdxl": tiny_models.sdxl_pipeline,
    "demo-sd3": tiny_models.sd3_pipeline,
    "demo-flux": tiny_models.flux_pipeline,
    "demo-flux-kontext": functools.partial(tiny_models.flux_pipeline, kontext=True),
    "demo-sana": tiny_models.sana_pipeline,
    "demo-controlnet-canny": tiny_models.controlnet,
    "demo-clip": tiny_models.clip_image_encoder,
    "demo-depth": tiny_models.depth_anything,
    "demo-sam": tiny_models.sam,
    "demo-owlvit": tiny_models.owlvit,
    "demo-clipseg": tiny_models.clipseg,
    "demo-esrgan-x2.safetensors": tiny_upscalers.demo_esrgan_x2,
    "demo-florence2": tiny_models.florence2,
}


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model-folder")
    for name, build in BUILDERS.items():
        build(folder / name)
    return folder


def shrunk(path, out_dir):
    """The example with small pictures and few steps, written next to the outputs."""
    wf = nodegraph.load(path)
    for node in wf.nodes.values():
        if node.type == "latent.empty":
            wf.set_param(node.id, "width", 64)
            wf.set_param(node.id, "height", 64)
            wf.set_param(node.id, "batch_size", min(node.params["batch_size"], 2))
        if node.type == "sampling.sampler":
            wf.set_param(node.id, "steps", 3)
        if node.type == "analyze.florence":  # the tiny model's answers are noise: a short one says as much
            wf.set_param(node.id, "max_new_tokens", 40)
    for path, node in flatten(wf).nodes.items():  # samplers inside subgraph instances: this copy's own value
        if "/" in path and node.type == "sampling.sampler":
            wf.set_param(path, "steps", 3)
    small = out_dir / os.path.basename(path)
    nodegraph.save(wf, small)
    shutil.copytree(os.path.join(REPO, "workflows", "assets"), out_dir / "assets", dirs_exist_ok=True)
    return small


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_example_runs_and_writes_images(path, tmp_path, model_folder, monkeypatch, capsys):
    monkeypatch.setenv("NODEGRAPH_MODEL_PATHS", str(model_folder))
    monkeypatch.setenv("NODEGRAPH_SETTINGS", str(tmp_path / "no-settings.json"))
    small = shrunk(path, tmp_path)
    code = main(["run", str(small), "--output-dir", str(tmp_path / "out"), "--device", "cpu", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    wf = nodegraph.load(small)
    savers = [n for n in wf.nodes.values() if n.type in ("image.save", "text.save")]
    batch = max([n.params["batch_size"] for n in wf.nodes.values() if n.type == "latent.empty"] or [1])
    assert len(report["files"]) >= len(savers)
    for file in [f for f in report["files"] if f.endswith(".txt")]:  # text reports: the analyze example
        text = open(file).read()
        assert text.strip(), f"{file} is empty"
        if os.path.basename(file).startswith("caption"):  # Florence-2's answer: any text (random weights)
            continue
        if "labels" in os.path.basename(file):
            assert len(text.strip().splitlines()) == 4 and all(": 0." in l or ": 1.00" in l for l in text.splitlines())
        else:
            assert -1.0 <= float(text) <= 1.0
    for file in [f for f in report["files"] if not f.endswith(".txt")]:
        with Image.open(file) as im:
            lo, hi = im.convert("L").getextrema()
            assert lo != hi, f"{file} is a flat picture"
    if os.path.basename(path) == "txt2img.json":  # the batch, saved as one grid picture
        [grid] = report["files"]
        assert Image.open(grid).size == (batch * 64 + (batch + 1) * 2, 64 + 2 * 2)
    if os.path.basename(path) == "inpaint.json":  # outside the (grown, feathered) mask of the red circle nothing changed
        before = np.asarray(Image.open(os.path.join(REPO, "workflows", "assets", "shapes.png")).convert("RGB"))
        after = np.asarray(Image.open(report["files"][0]))
        far = np.ones(before.shape[:2], bool)
        far[4:60, 0:42] = False  # a box well around the circle (radius 10 at x 14, y 32), grown and feathered
        assert np.array_equal(after[far], before[far])
        assert not np.array_equal(after[~far], before[~far])


def test_the_readme_names_only_examples_that_exist_and_every_model_backed_one():
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    sentence = text[text.index("- Examples in `workflows/`:"):text.index("They name models")]
    named = set(re.findall(r"`([a-z0-9-]+)`", sentence))
    shipped = {os.path.basename(p)[:-5] for p in EXAMPLES}
    assert named <= shipped
    assert shipped - named == {"image-ops", "load-save"}  # the two without models, shown elsewhere in the README
