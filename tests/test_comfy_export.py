"""Export to ComfyUI's API format: import -> export -> import gives the same workflow, and our own
examples go out as prompts a ComfyUI server takes, drawing the same picture when read back."""

import json
import os
import subprocess
import sys
from unittest import mock

import pytest
import torch

import nodegraph
from nodegraph import comfy

from conftest import REPO

FILES = os.path.join(REPO, "tests", "comfy_files")
NODEGRAPH = os.path.join(os.path.dirname(sys.executable), "nodegraph")


def without_layout(workflow) -> dict:
    doc = workflow.to_dict()
    for node in doc["nodes"]:
        node.pop("position")
    return doc


def reimport(prompt: dict, tmp_path, name="back.json"):
    path = tmp_path / name
    path.write_text(json.dumps(prompt))
    return nodegraph.load(path, strict=False)


def flattened(path):
    """The import as it was before subgraphs were kept: every instance as its inner nodes (``30-1``),
    which is what an API file (with no subgraphs) reads back as."""
    with mock.patch("nodegraph.comfy.convert.regroup", lambda doc, conv: doc):
        return nodegraph.load(path, strict=False)


@pytest.mark.parametrize("name", ["api_every_class.json", "api_txt2img.json", "ui_txt2img_v04.json",
                                  "ui_subgraph.json", "ui_subgraph_nested.json"])
def test_import_export_import_gives_the_same_workflow(name, tmp_path):
    first = nodegraph.load(os.path.join(FILES, name), strict=False)
    first.base_dir = tmp_path  # so both copies look for their pictures in the same place
    notes = []
    back = reimport(comfy.export_api(first, notes), tmp_path)
    if first.subgraphs:  # the API format has none: what comes back is the flattened form
        first = flattened(os.path.join(FILES, name))
        first.base_dir = tmp_path
    first_doc, back_doc = without_layout(first), without_layout(back)
    first_doc["metadata"] = back_doc["metadata"] = {}  # "imported from the UI format" / "... the API format"
    first_doc["nodes"] = [n for n in first_doc["nodes"] if n["type"] != "doc.note"]  # ComfyUI's server has no notes
    first_doc.pop("groups", None)  # nor groups
    for link in first_doc["links"]:
        link.pop("via", None)  # nor reroute points
    assert back_doc == first_doc


def test_an_api_file_comes_back_byte_for_byte(tmp_path):
    first = nodegraph.load(os.path.join(FILES, "api_txt2img.json"))
    back = reimport(comfy.export_api(first), tmp_path)
    assert back.dumps() == first.dumps()


def test_a_negative_prompt_becomes_a_clip_text_encode_of_its_own(tmp_path):
    ours = nodegraph.load(os.path.join(REPO, "workflows", "img2img.json"))
    ours.set_param("prompt", "negative", "blurry")
    prompt = comfy.export_api(ours)
    assert prompt["prompt-negative"] == {"class_type": "CLIPTextEncode", "_meta": {"title": "Negative prompt"},
                                         "inputs": {"text": "blurry", "clip": ["checkpoint", 1]}}
    assert prompt["sampler"]["inputs"]["negative"] == ["prompt-negative", 0]
    assert prompt["sampler"]["inputs"]["positive"] == ["prompt", 0]
    assert prompt["sampler"]["class_type"] == "KSampler"


def test_an_exported_example_draws_the_same_picture_when_read_back(tmp_path):
    ours = nodegraph.load(os.path.join(REPO, "workflows", "img2img.json"))
    ours.set_param("sampler", "steps", 4)
    back = reimport(comfy.export_api(ours), tmp_path)
    back.base_dir = ours.base_dir
    assert back.imported.unmapped == [] and back.problems == []
    engine = nodegraph.Engine(device="cpu")
    assert torch.equal(engine.run(back, targets=["decode"]).outputs["decode"]["image"],
                       engine.run(ours, targets=["decode"]).outputs["decode"]["image"])


def test_the_cli_exports_and_says_what_has_no_comfyui_class(tmp_path):
    out = tmp_path / "img2img-api.json"
    done = subprocess.run([NODEGRAPH, "export", "--to", "comfy-api", os.path.join(REPO, "workflows", "img2img.json"),
                           "-o", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    prompt = json.loads(out.read_text())
    assert {entry["class_type"] for entry in prompt.values()} >= {"CheckpointLoaderSimple", "KSampler", "LoadImage",
                                                                  "VAEEncode", "VAEDecode", "SaveImage"}
    refused = subprocess.run([NODEGRAPH, "export", os.path.join(REPO, "workflows", "txt2img.json")],
                             capture_output=True, text=True)
    assert refused.returncode == 1
    assert "no ComfyUI class for: grid (image.grid)" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_workflow_with_subgraphs_goes_out_flattened_under_comfyuis_path_ids(tmp_path):
    ours = nodegraph.load(os.path.join(FILES, "ui_subgraph_nested.json"))
    ours.set_param("12", "width", 24)  # an instance's own promoted value
    ours.set_mode("14", "muted")
    prompt = comfy.export_api(ours)
    assert set(prompt) == {"10", "11:1", "11:2:1", "12:1", "12:2:1", "13"}
    assert prompt["11:2:1"]["class_type"] == "ImageCrop" and prompt["11:2:1"]["inputs"]["image"] == ["11:1", 0]
    assert (prompt["11:2:1"]["inputs"]["width"], prompt["12:2:1"]["inputs"]["width"]) == (40, 24)
    assert prompt["13"]["inputs"]["images"] == ["11:2:1", 0]
    ours.set_mode("12", "bypassed")  # one node in ComfyUI's terms: its image passes straight through
    ours.set_mode("14", "active")
    prompt = comfy.export_api(ours)
    assert "12:1" not in prompt and prompt["14"]["inputs"]["images"] == ["10", 0]
