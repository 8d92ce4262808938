"""The README's ComfyUI commands run as written and do what the text says."""

import json
import os
import re
import shlex
import subprocess
import sys

from PIL import Image

from conftest import REPO

NODEGRAPH = os.path.join(os.path.dirname(sys.executable), "nodegraph")


def section_commands(title: str) -> list[str]:
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    body = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in body.splitlines() if re.match(r"^    nodegraph ", line)]


def test_the_readme_comfyui_commands_run_as_written(tmp_path):
    os.symlink(os.path.join(REPO, "workflows"), tmp_path / "workflows")
    commands = section_commands("ComfyUI workflows")
    assert [c.split()[1] for c in commands] == ["import", "run", "export"]
    outputs = {}
    for command in commands:
        argv = shlex.split(command)
        done = subprocess.run([NODEGRAPH, *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        outputs[argv[1]] = done.stdout
        outputs[argv[1] + " stderr"] = done.stderr
    assert "converted from ComfyUI, 9 of 9 nodes" in outputs["run stderr"]
    report = json.loads(outputs["import"])
    assert report["unmapped"] == [] and report["mapped"] == report["nodes"] == 9  # the Reroute is followed
    assert report["output"] == "txt2img.json"
    ours = json.loads((tmp_path / "txt2img.json").read_text())
    assert {n["type"] for n in ours["nodes"]} >= {"model.checkpoint", "cond.text", "sampling.sampler", "doc.note"}
    [picture] = (tmp_path / "out").glob("*.png")
    with Image.open(picture) as im:
        assert im.size == (64, 64)
        red = sum(1 for r, g, b in im.convert("RGB").getdata() if r > 150 and g < 100 and b < 100)
    assert red > 20  # "a small red circle on the left"
    prompt = json.loads((tmp_path / "img2img-api.json").read_text())
    assert {"KSampler", "LoadImage", "VAEEncode"} <= {entry["class_type"] for entry in prompt.values()}
