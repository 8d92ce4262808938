"""ComfyUI's custom sampling (noise, guider, sampler and sigmas nodes feeding SamplerCustomAdvanced, as its
Flux examples are built) folds into one Sampler; ModelSamplingSD3 becomes Sampling Shift."""

import json
import os

import nodegraph
from nodegraph import comfy

from conftest import REPO

FILE = os.path.join(REPO, "tests", "comfy_files", "api_flux_custom_sampling.json")


def links_into(wf, node_id):
    return {l.input: f"{l.source}.{l.output}" for l in wf.links if l.target == node_id}


def test_custom_sampling_folds_into_one_sampler():
    wf = nodegraph.load(FILE, strict=False)
    report = wf.imported
    assert report.unmapped == [] and report.mapped == report.nodes == 24
    assert {"13", "42"} <= set(wf.nodes) and not {"16", "17", "22", "25", "43", "44", "45"} & set(wf.nodes)
    flux = wf.nodes["13"]
    assert flux.type == "sampling.sampler"
    assert {k: flux.params[k] for k in ("seed", "steps", "cfg", "denoise", "scheduler")} == {
        "seed": 219670278747233, "steps": 20, "cfg": 1.0, "denoise": 1.0, "scheduler": "euler"}
    assert links_into(wf, "13") == {"model": "12.model", "conditioning": "26.conditioning", "latent": "27.latent"}
    sd3 = wf.nodes["42"]
    assert {k: sd3.params[k] for k in ("seed", "steps", "cfg", "denoise", "scheduler")} == {
        "seed": 7, "steps": 28, "cfg": 4.5, "denoise": 0.9, "scheduler": "euler"}
    assert links_into(wf, "42") == {"model": "40.model", "conditioning": "6.conditioning",
                                    "negative": "46.conditioning", "latent": "27.latent"}
    assert wf.nodes["40"].type == "model.shift" and wf.nodes["40"].params["shift"] == 3.0
    assert wf.nodes["49"].type == "model.shift" and wf.nodes["49"].params["shift"] == 1.73
    assert any("node 42" in n and "karras" in n for n in report.notes)
    assert any("node 30 (ModelSamplingFlux)" in n for n in report.notes)
    assert [p for p in wf.problems if "not converted" in p.message] == []


def test_a_part_used_elsewhere_is_not_folded_silently(tmp_path):
    prompt = json.loads(open(FILE).read())
    prompt["50"] = {"inputs": {"sigmas": ["17", 0]}, "class_type": "SplitSigmas"}
    (tmp_path / "split.json").write_text(json.dumps(prompt))
    wf = nodegraph.load(tmp_path / "split.json", strict=False)
    unmapped = {u["id"]: u["why"] for u in wf.imported.unmapped}
    assert "only as part of the SamplerCustomAdvanced" in unmapped["17"]
    assert "50" in unmapped


def test_sampling_shift_sets_a_flow_models_shift_and_exports_as_model_sampling_sd3(tmp_path):
    wf = nodegraph.load(FILE, strict=False)
    prompt = comfy.export_api(wf)
    assert prompt["40"] == {"class_type": "ModelSamplingSD3", "inputs": {"shift": 3.0, "model": ["41", 0]},
                            "_meta": {"title": "ModelSamplingSD3"}}
    assert prompt["42"]["class_type"] == "KSampler" and prompt["42"]["inputs"]["negative"] == ["46", 0]
