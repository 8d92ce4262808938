"""A workflow records its models by name, size and sha256, and finds them again when moved or renamed."""

import hashlib
import json
import os
import shutil

import pytest

import nodegraph
from nodegraph import models
from nodegraph.cli import main

from test_diffusion_sd import sd_folder, txt2img  # noqa: F401 (fixture)


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A user's machine: its own model folder, settings and hash cache."""
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("NODEGRAPH_MODEL_PATHS", str(folder))
    monkeypatch.setenv("NODEGRAPH_SETTINGS", str(tmp_path / "settings.json"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return folder


def saving_workflow(model_name, path):
    wf = txt2img(model_name)
    wf.add_node("image.save", "save", params={"filename_prefix": "pic"})
    wf.connect("decode", "image", "save", "image")
    nodegraph.save(wf, path)
    return path


def test_a_run_records_each_model_and_the_png_carries_the_record(sd_folder, machine, tmp_path, capsys):  # noqa: F811
    shutil.copytree(sd_folder, machine / "my-sd")
    workflow = saving_workflow("my-sd", tmp_path / "w.json")
    assert main(["run", str(workflow), "--output-dir", str(tmp_path / "out"), "--json"]) == 0
    [png] = json.loads(capsys.readouterr().out)["files"]
    record = nodegraph.load(png).metadata["models"]["ckpt.model"]
    files = sorted(p for p in (machine / "my-sd").rglob("*") if p.is_file())
    expected = hashlib.sha256("\n".join(
        f"{p.relative_to(machine / 'my-sd').as_posix()}:{hashlib.sha256(p.read_bytes()).hexdigest()}" for p in files
    ).encode()).hexdigest()
    assert record == {"name": "my-sd", "size": sum(p.stat().st_size for p in files), "sha256": expected}


def test_hashes_are_remembered_by_path_size_and_mtime(machine):
    model = machine / "weights.safetensors"
    model.write_bytes(b"A" * 1000)
    first = models.describe(model)
    assert first.sha256 == hashlib.sha256(b"A" * 1000).hexdigest()
    st = model.stat()
    model.write_bytes(b"B" * 1000)  # same size; put the old mtime back: the remembered hash is used
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert models.describe(model).sha256 == first.sha256
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a newer mtime: hashed again
    assert models.describe(model).sha256 == hashlib.sha256(b"B" * 1000).hexdigest()


def test_on_another_machine_a_renamed_model_is_found_by_its_hash(sd_folder, machine, tmp_path, capsys):  # noqa: F811
    shutil.copytree(sd_folder, machine / "my-sd")
    workflow = saving_workflow("my-sd", tmp_path / "w.json")
    wf = nodegraph.load(workflow)
    models.record(wf)
    nodegraph.save(wf, workflow)
    (machine / "my-sd").rename(machine / "sd15-renamed")  # the other machine calls it something else
    assert main(["run", str(workflow), "--output-dir", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert f"ckpt.model: 'my-sd' found by its hash at {machine / 'sd15-renamed'}" in err


def test_every_missing_model_is_listed_before_anything_runs(sd_folder, machine, tmp_path, capsys):  # noqa: F811
    shutil.copytree(sd_folder, machine / "my-sd")
    wf = txt2img("my-sd")
    wf.add_node("model.vae", "vae2", params={"model": "my-sd"})
    wf.connect("vae2", "vae", "decode", "vae")
    wf.base_dir = tmp_path
    models.record(wf)
    nodegraph.save(wf, tmp_path / "w.json")
    shutil.rmtree(machine / "my-sd")
    code = main(["run", str(tmp_path / "w.json"), "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 2
    assert all("'my-sd'" in line and "sha256" in line and "is missing" in line for line in err)
    assert err[0].endswith("node 'ckpt' port 'model': " + err[0].split("port 'model': ")[1])
    assert not (tmp_path / "out").exists()
    assert main(["validate", str(tmp_path / "w.json")]) == 1
    assert "is missing" in capsys.readouterr().err
