"""Load Upscale Model and Upscale Image (nodes/upscale.py), with tiny random models of real architectures.

Random weights give no meaning to a picture, so the tests check what can go wrong on our side: the output
equals spandrel's own model called on the same pixels (reading the files, devices, dtypes and batches), it
is the model's scale times the input, tiles blend into the whole-picture result away from their seams and
hide the seams better than tiles that only abut, and every file that must not be opened is refused with a
sentence naming the node and the file. The models come from tests/tiny_upscalers.py, saved as their released
files are, and are found by name in a model folder or in a ComfyUI install's models/upscale_models/.
"""

from __future__ import annotations

import json
import os

import pytest
import torch

import nodegraph
from nodegraph import Input, Output, Param, PortType as T, Registry, node
from nodegraph import models as model_refs
from nodes import _tiling, upscale

import tiny_upscalers as tiny
from conftest import REPO

pytestmark = [
    pytest.mark.filterwarnings("ignore:torch.meshgrid:UserWarning"),  # inside spandrel's SwinIR
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning"),  # building a TorchScript file
]

#: file name -> (state dict builder, scale, spandrel's architecture name, how it is saved)
MODELS = {
    "demo-esrgan-x2.safetensors": (lambda: tiny.realesrgan_state_dict(scale=2), 2, "ESRGAN", "safetensors"),
    "realesrgan-x4.pth": (lambda: tiny.realesrgan_state_dict(scale=4, seed=1), 4, "ESRGAN", "params_ema"),
    "compact-x4.pth": (lambda: tiny.compact_state_dict(scale=4), 4, "RealESRGAN Compact", "params"),
    "swinir-x2.safetensors": (lambda: tiny.swinir_state_dict(scale=2), 2, "SwinIR", "safetensors"),
}

# The two upscale nodes and a source of random pictures, in a registry of their own (the test node stays
# out of `nodegraph nodes`).
NODES = Registry(discover=False)
for _type in ("model.upscale", "image.upscale_model"):
    NODES.add(nodegraph.REGISTRY.get(_type))


@node("test.pictures", title="Random pictures", category="test", registry=NODES,
      params=[Param("width", T.INT, 19, min=1, max=4096), Param("height", T.INT, 13, min=1, max=4096),
              Param("batch", T.INT, 2, min=1, max=8), Param("seed", T.INT, 0, min=0, max=1000)],
      outputs=[Output("image", T.IMAGE)])
def pictures(ctx, width, height, batch, seed):
    """Smooth random pictures (noise blurred by upsampling), like photographs more than like static."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, max(2, height // 4), max(2, width // 4), generator=gen)
    fine = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    return {"image": (0.8 * fine + 0.2 * torch.rand(batch, 3, height, width, generator=gen)).clamp(0, 1)}


def save(name: str, folder):
    build, _, _, how = MODELS[name]
    if how == "safetensors":
        return tiny.write_safetensors(build(), folder / name)
    return tiny.write_pth(build(), folder / name, wrap=how)


def reference(name: str):
    """spandrel's model built straight from the state dict in memory: no file, none of our code."""
    import spandrel

    return spandrel.ModelLoader().load_from_state_dict(MODELS[name][0]()).eval()


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """The models are tiny: a second intra-op thread only adds waiting (tens of times slower on 2 busy cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("upscale-models")
    for name in MODELS:
        save(name, folder)
    return folder


@pytest.fixture(autouse=True)
def model_paths(model_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("NODEGRAPH_MODEL_PATHS", str(model_folder))
    monkeypatch.setenv("NODEGRAPH_SETTINGS", str(tmp_path / "settings.json"))
    return model_folder


def workflow(model: str, tile: int = 0, overlap: int = 0, **picture) -> nodegraph.Workflow:
    wf = nodegraph.Workflow(NODES)
    wf.add_node("test.pictures", "pictures", params=picture)
    wf.add_node("model.upscale", "loader", params={"model": model})
    wf.add_node("image.upscale_model", "upscale", params={"tile": tile, "overlap": overlap})
    wf.connect("loader", "upscale_model", "upscale", "upscale_model")
    wf.connect("pictures", "image", "upscale", "image")
    return wf


def upscaled(engine, wf, **run):
    result = engine.run(wf, targets=["upscale"], **run)
    return result, result.outputs["upscale"]["image"], result.outputs["pictures"]["image"]


def failure(model: str) -> str:
    with pytest.raises(nodegraph.NodeFailed) as e:
        nodegraph.Engine(device="cpu").run(workflow(model), targets=["upscale"])
    return str(e.value)


# ----- what spandrel computes, by name, from a model folder and from ComfyUI's ---------------------------

@pytest.mark.parametrize("name", list(MODELS))
def test_each_architecture_loads_by_name_and_computes_what_spandrel_computes(name):
    _, scale, arch, _ = MODELS[name]
    engine = nodegraph.Engine(device="cpu")
    result, out, pictures = upscaled(engine, workflow(name))
    assert out.shape == (2, 3, 13 * scale, 19 * scale) and out.dtype == torch.float32
    loaded = result.outputs["loader"]["upscale_model"]
    assert loaded.scale == scale and arch in loaded.description and loaded.path.endswith(name)
    model = reference(name)
    expected = torch.cat([model(pictures[i:i + 1]) for i in range(2)])
    assert torch.equal(out, expected)
    assert not torch.equal(out[0], out[1])  # the batch's pictures each went through, in order


def test_a_comfyui_install_lends_its_upscale_models_folder(tmp_path, monkeypatch):
    root = tmp_path / "ComfyUI"
    (root / "main.py").parent.mkdir(parents=True)
    (root / "main.py").write_text("")
    save("realesrgan-x4.pth", root / "models" / "upscale_models" / "RealESRGAN")
    monkeypatch.setenv("NODEGRAPH_COMFYUI", str(root))
    monkeypatch.setenv("NODEGRAPH_MODEL_PATHS", str(tmp_path / "no-models"))
    assert "RealESRGAN/realesrgan-x4.pth" in model_refs.available("upscale_models")
    engine = nodegraph.Engine(device="cpu")
    _, out, pictures = upscaled(engine, workflow("RealESRGAN/realesrgan-x4.pth", batch=1))
    assert torch.equal(out, reference("realesrgan-x4.pth")(pictures))


def test_odd_sizes_are_padded_to_what_the_model_takes_and_cropped_back():
    # SwinIR takes at least 16 pixels a side; the 2x Real-ESRGAN a multiple of 4 (it pixel-unshuffles)
    engine = nodegraph.Engine(device="cpu")
    for name, size in (("swinir-x2.safetensors", (7, 5)), ("demo-esrgan-x2.safetensors", (9, 6))):
        _, out, pictures = upscaled(engine, workflow(name, width=size[0], height=size[1], batch=1))
        assert out.shape[-2:] == (size[1] * 2, size[0] * 2)
        assert torch.equal(out, reference(name)(pictures))
        _, tiled, _ = upscaled(engine, workflow(name, tile=4, overlap=2, width=40, height=9, batch=1))
        assert tiled.shape[-2:] == (18, 80)  # tiles grown to what the model takes: 16 for SwinIR, 4 for ESRGAN


def test_a_grayscale_model_sees_the_luminance_and_gives_gray_rgb(model_folder):
    tiny.write_safetensors(tiny.realesrgan_state_dict(scale=4, channels=1), model_folder / "gray-x4.safetensors")
    _, out, pictures = upscaled(nodegraph.Engine(device="cpu"), workflow("gray-x4.safetensors", batch=1))
    import spandrel

    model = spandrel.ModelLoader().load_from_state_dict(tiny.realesrgan_state_dict(scale=4, channels=1))
    luma = sum(pictures[:, i:i + 1] * k for i, k in enumerate(upscale.LUMA))
    assert torch.equal(out[:, :1], model(luma))
    assert torch.equal(out[:, 1], out[:, 0]) and torch.equal(out[:, 2], out[:, 0])


# ----- tiles ---------------------------------------------------------------------------------------------

def _near_inner_edges(size: int, tile: int, overlap: int, scale: int, reach: int):
    """Output rows (or columns) within ``reach`` input pixels of a tile edge inside the picture."""
    near = torch.zeros(size * scale, dtype=torch.bool)
    for start, end in _tiling.spans(size, tile, overlap):
        for edge in (start, end):
            if 0 < edge < size:
                near[max(0, (edge - reach) * scale):(edge + reach) * scale] = True
    return near


def test_tiles_equal_the_whole_picture_away_from_seams_and_the_cross_fade_hides_the_seams():
    name, scale, size, tile = "compact-x4.pth", 4, 48, 16
    reach = 4  # the tiny Compact model's receptive field: 3 convolutions of 3x3, 3 pixels a side, and one to spare
    engine = nodegraph.Engine(device="cpu")
    _, whole, _ = upscaled(engine, workflow(name, width=size, height=size, batch=1))
    errors = {}
    for overlap in (0, 8):
        _, tiled, _ = upscaled(engine, workflow(name, tile=tile, overlap=overlap, width=size, height=size, batch=1))
        near = _near_inner_edges(size, tile, overlap, scale, reach)
        seams = near[:, None] | near[None, :]
        difference = (tiled - whole).abs().amax(dim=(0, 1))
        assert difference[~seams].max() < 1e-5  # away from every seam a tile saw all the model needs
        errors[overlap] = difference[seams].mean().item()
    assert errors[0] > 1e-3  # abutting tiles really disagree at their seams (padding instead of neighbours)
    assert errors[8] < errors[0] / 3  # and the cross-fade over the overlap takes most of that away


def test_blend_weights_cross_fade_to_one_and_the_last_tile_ends_at_the_edge():
    along = _tiling.spans(100, 40, 8)
    assert along == [(0, 40), (30, 70), (60, 100)]  # 3 tiles of 40 cover 100 with overlaps of 8 or more
    for size, tile, overlap in ((512, 256, 32), (1000, 128, 16), (97, 16, 15), (17, 16, 0)):
        cover = _tiling.spans(size, tile, overlap)
        assert cover[0][0] == 0 and cover[-1][1] == size and all(e - s == tile for s, e in cover)
        assert all(a[1] - b[0] >= overlap for a, b in zip(cover, cover[1:]))  # every neighbour shares enough
        assert len(cover) == 1 or (len(cover) - 2) * (tile - overlap) + tile < size  # one tile fewer would not do
    total = torch.zeros(200)
    for i, (start, end) in enumerate(along):
        w = _tiling.weights(along, i, 2)
        assert w.min() > 0 and w.max() == 1
        total[start * 2:end * 2] += w
    assert torch.allclose(total, torch.ones(200))
    assert _tiling.spans(30, 40, 8) == [(0, 30)] and _tiling.count(30, 100, 40, 8) == 3
    requirements = reference("swinir-x2.safetensors").size_requirements
    assert upscale._fitting_tile(12, requirements) == 16 and upscale._fitting_tile(100, requirements) == 100


def test_progress_is_reported_per_tile_and_a_cancel_stops_between_tiles():
    engine = nodegraph.Engine(device="cpu")
    wf = workflow("compact-x4.pth", tile=16, overlap=4, width=40, height=24, batch=2)  # 3 x 2 tiles a picture
    fractions = []
    engine.run(wf, targets=["upscale"],
               on_event=lambda e: fractions.append(e.fraction) if e.kind == "progress" and e.node == "upscale" else 0)
    assert fractions == pytest.approx([(i + 1) / 12 for i in range(12)])
    seen = []

    def listener(event):
        if event.kind == "progress" and event.node == "upscale":
            seen.append(event.fraction)

    wf.set_param("upscale", "overlap", 6)  # a change, so the node runs again
    with pytest.raises(nodegraph.RunCancelled):
        engine.run(wf, targets=["upscale"], on_event=listener, cancel=lambda: len(seen) >= 3)
    assert len(seen) == 3  # stopped right after the third tile


def test_overlap_must_be_smaller_than_the_tile():
    with pytest.raises(nodegraph.NodeFailed, match=r"overlap \(16\) must be smaller than tile \(16\)"):
        nodegraph.Engine(device="cpu").run(workflow("compact-x4.pth", tile=16, overlap=16), targets=["upscale"])


# ----- the cache: a changed file loads again -------------------------------------------------------------

def test_editing_the_file_loads_it_again_and_an_unchanged_one_stays_cached(model_folder):
    path = tiny.write_pth(tiny.compact_state_dict(seed=5), model_folder / "edited.pth", wrap="params")
    engine = nodegraph.Engine(device="cpu")
    wf = workflow("edited.pth", batch=1)
    first, out, _ = upscaled(engine, wf)
    again, _, _ = upscaled(engine, wf)
    assert "loader" in first.executed and "loader" in again.cached
    tiny.write_pth(tiny.compact_state_dict(seed=6), path, wrap="params")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    changed, out2, _ = upscaled(engine, wf)
    assert "loader" in changed.executed and not torch.equal(out, out2)


# ----- files that are refused ----------------------------------------------------------------------------

MARKER = {"ran": False}


def ran_code(*_):
    MARKER["ran"] = True
    return {}


class Smuggler:
    """An object that runs ``ran_code`` when unpickled by anything less strict than weights_only."""

    def __reduce__(self):
        return ran_code, ()


def test_a_pth_with_a_pickled_object_is_refused_without_running_it(model_folder):
    state = tiny.compact_state_dict()
    torch.save({"params": state, "hook": Smuggler()}, model_folder / "smuggler.pth")
    message = failure("smuggler.pth")
    assert "node 'loader'" in message and "smuggler.pth" in message
    assert "pickled objects other than tensors" in message
    assert "test_upscale.ran_code" in message  # what it wanted to call
    assert "weights_only=False" not in message  # torch's own advice to open it anyway is not passed on
    assert MARKER["ran"] is False


def test_a_model_that_is_not_image_to_image_is_refused_saying_what_spandrel_took_it_for(model_folder):
    tiny.write_safetensors(tiny.lama_state_dict(), model_folder / "big-lama.safetensors")
    message = failure("big-lama.safetensors")
    assert "node 'loader'" in message and "big-lama.safetensors" in message
    assert "a LaMa inpainting model" in message and "MaskedImageModelDescriptor" in message
    assert "needs a mask" in message


def without_conv_hr() -> dict:
    return {k: v for k, v in tiny.realesrgan_state_dict(4).items() if "conv_hr" not in k}


@pytest.mark.parametrize("name, write, says", [
    ("unknown.safetensors", lambda p: tiny.write_safetensors({"encoder.weight": torch.zeros(4, 4)}, p),
     "spandrel does not recognise the model in"),
    ("text.safetensors", lambda p: p.write_text("not weights"), "cannot read"),
    ("tensor.pth", lambda p: torch.save(torch.zeros(3), p), "holds a Tensor, not a state dict"),
    ("broken.pth", lambda p: p.write_bytes(b"\x80\x02not really"), "cannot be read by torch's weights-only reader"),
    ("scripted.pt", lambda p: torch.jit.script(torch.nn.Conv2d(3, 3, 1)).save(str(p)), "TorchScript archive"),
    ("old.ckpt", lambda p: p.write_bytes(b"never opened"), "convert it to .safetensors"),
    ("model.bin", lambda p: p.write_bytes(b"never opened"), "convert it to .safetensors"),
    ("notes.txt", lambda p: p.write_text("hello"), "a .txt file is not opened"),
    ("esrgan-damaged.safetensors", lambda p: tiny.write_safetensors(without_conv_hr(), p),
     "looks like an ESRGAN model to spandrel but does not load"),
])
def test_a_wrong_file_fails_with_a_sentence_naming_the_node_and_the_file(model_folder, name, write, says):
    write(model_folder / name)
    message = failure(name)
    assert "node 'loader'" in message and name in message and says in message


def test_a_missing_model_says_where_it_looked():
    message = failure("nowhere-x4.pth")
    assert "node 'loader'" in message and "'nowhere-x4.pth' not found" in message


# ----- the port type and ComfyUI's classes ---------------------------------------------------------------

def test_the_port_type_is_in_the_workflow_schema():
    from nodegraph.schema import workflow_schema_path

    assert workflow_schema_path().read_text().count('"UPSCALE_MODEL"') == 2  # subgraph inputs and outputs
    assert nodegraph.REGISTRY.get("model.upscale").param("model").kind == "upscale_models"


def test_comfyuis_upscale_nodes_convert_and_run(tmp_path, monkeypatch):
    from PIL import Image

    root = tmp_path / "ComfyUI"
    root.mkdir()
    (root / "main.py").write_text("")
    save("demo-esrgan-x2.safetensors", root / "models" / "upscale_models")
    monkeypatch.setenv("NODEGRAPH_COMFYUI", str(root))
    monkeypatch.setenv("NODEGRAPH_MODEL_PATHS", str(tmp_path / "no-models"))
    Image.open(os.path.join(REPO, "workflows", "assets", "sample.png")).save(tmp_path / "sample.png")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "sample.png"}},
        "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "demo-esrgan-x2.safetensors"}},
        "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"filename_prefix": "up", "images": ["3", 0]}},
    }
    (tmp_path / "api.json").write_text(json.dumps(prompt))
    wf = nodegraph.load(tmp_path / "api.json")
    assert wf.imported.unmapped == [] and wf.problems == []
    assert (wf.nodes["2"].type, wf.nodes["2"].params["model"]) == ("model.upscale", "demo-esrgan-x2.safetensors")
    assert wf.nodes["3"].type == "image.upscale_model"
    assert (wf.nodes["3"].params["tile"], wf.nodes["3"].params["overlap"]) == (512, 32)  # ComfyUI's fixed tiling
    result = nodegraph.Engine(device="cpu").run(wf, output_dir=tmp_path / "out")
    [saved] = result.files
    with Image.open(saved) as up, Image.open(tmp_path / "sample.png") as original:
        assert up.size == (original.width * 2, original.height * 2)


def test_the_example_exports_to_comfyuis_classes_and_says_what_comfyui_cannot_keep(tmp_path):
    from nodegraph import comfy

    ours = nodegraph.load(os.path.join(REPO, "workflows", "upscale.json"))
    notes = []
    prompt = comfy.export_api(ours, notes)
    assert prompt["upscaler"]["class_type"] == "UpscaleModelLoader"
    assert prompt["upscaler"]["inputs"] == {"model_name": "demo-esrgan-x2.safetensors"}
    assert prompt["upscale"]["class_type"] == "ImageUpscaleWithModel"
    assert prompt["upscale"]["inputs"] == {"upscale_model": ["upscaler", 0], "image": ["load", 0]}
    assert notes == ["upscale: ComfyUI tiles by 512 pixels overlapping by 32, not by 256 and 32"]
    ours.set_param("upscale", "tile", 512)
    back = tmp_path / "back.json"
    back.write_text(json.dumps(comfy.export_api(ours)))
    again = nodegraph.load(back, strict=False)
    assert (again.nodes["upscale"].type, again.nodes["upscale"].params) == ("image.upscale_model",
                                                                           {"tile": 512, "overlap": 32})
