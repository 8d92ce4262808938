"""Every workflow shipped in workflows/ runs headless and writes real pictures."""

import glob
import os

import pytest
from PIL import Image

import nodegraph

from conftest import REPO


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "workflows", "*.json"))), ids=os.path.basename)
def test_example_runs_and_writes_images(path, tmp_path):
    wf = nodegraph.load(path)
    result = nodegraph.Engine(device="cpu").run(wf, output_dir=tmp_path)
    assert result.status == "ok" and result.skipped == {}
    savers = [n.id for n in wf.nodes.values() if n.type == "image.save" and n.mode == "active"]
    assert savers and len(result.files) == len(savers)
    for file in result.files:
        with Image.open(file) as im:
            im.load()
            extrema = im.convert("L").getextrema()
            assert extrema[0] != extrema[1], f"{file.name} is a flat picture"
