"""The README's subgraph section: its command and its Python block run as written and do what the text says."""

import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys

from PIL import Image

from conftest import REPO

NODEGRAPH = os.path.join(os.path.dirname(sys.executable), "nodegraph")


def section(title: str) -> str:
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_subgraph_command_runs_as_written(tmp_path):
    os.symlink(os.path.join(REPO, "workflows"), tmp_path / "workflows")
    [command] = [line.strip() for line in section("Subgraphs").splitlines() if re.match(r"^    nodegraph ", line)]
    argv = shlex.split(command)
    done = subprocess.run([NODEGRAPH, *argv[1:], "--json"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    reasons = {e["node"]: e["reason"] for e in report["executed"]}
    assert set(reasons) >= {"hires/upscale", "hires/sampler", "hires/decode", "save"}
    [picture] = (tmp_path / "out").glob("*.png")
    with Image.open(picture) as im:
        assert im.size == (128, 128)  # the hires pass doubled the 64 x 64 picture
        carried = json.loads(im.info["workflow"])
    hires = next(n for n in carried["nodes"] if n["id"] == "hires")
    assert hires["params"]["strength"] == 0.4 and hires["overrides"] == {"sampler": {"seed": 3}}


def test_the_readme_subgraph_python_block_runs_as_written(tmp_path, monkeypatch):
    os.symlink(os.path.join(REPO, "workflows"), tmp_path / "workflows")
    monkeypatch.chdir(tmp_path)
    [code] = re.findall(r"```python\n(.*?)```", section("Subgraphs"), re.S)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    assert printed.getvalue().strip() == "['grade/saturate', 'grade/contrast']"
    assert (tmp_path / "out").is_dir() and any((tmp_path / "out").glob("graded_*.png"))
