"""Load Upscale Model with a transformers Swin2SR folder, run by the same Upscale Image node (nodes/upscale.py,
nodes/_upscale_transformers.py), with a tiny random Swin2SR saved by save_pretrained with its image processor.

Random weights give no meaning to a picture, so the tests check what can go wrong on our side: the output
equals transformers' own model called on the picture through its image processor (rescale, symmetric padding)
and cropped back to the scale times the picture, tiles blend into the whole-picture result away from their
seams, and a transformers folder of another kind is refused with a sentence naming it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import nodegraph
from nodegraph import Output, Param, PortType as T, Registry, node
from nodes import _tiling

import tiny_models
import tiny_upscalers

NODES = Registry(discover=False)
for _type in ("model.upscale", "image.upscale_model"):
    NODES.add(nodegraph.REGISTRY.get(_type))


@node("test.pictures", title="Random pictures", category="test", registry=NODES,
      params=[Param("width", T.INT, 19, min=1, max=4096), Param("height", T.INT, 13, min=1, max=4096),
              Param("batch", T.INT, 2, min=1, max=8), Param("seed", T.INT, 0, min=0, max=1000)],
      outputs=[Output("image", T.IMAGE)])
def pictures(ctx, width, height, batch, seed):
    """Smooth random 8-bit pictures (noise blurred by upsampling, on the 1/255 steps a PNG holds)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, max(2, height // 4), max(2, width // 4), generator=gen)
    fine = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    mixed = (0.8 * fine + 0.2 * torch.rand(batch, 3, height, width, generator=gen)).clamp(0, 1)
    return {"image": (mixed * 255).round() / 255}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("upscale-models")
    tiny_upscalers.swin2sr(folder / "swin2sr-x2")
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


def upscaled(engine, wf):
    result = engine.run(wf, targets=["upscale"])
    return result, result.outputs["upscale"]["image"], result.outputs["pictures"]["image"]


def transformers_upscale(folder, picture):
    """transformers' example, on one (3, H, W) picture: the image processor on the 8-bit picture, the model,
    the reconstruction cropped back to the scale times the picture."""
    from transformers import Swin2SRForImageSuperResolution, Swin2SRImageProcessor

    model = Swin2SRForImageSuperResolution.from_pretrained(folder, local_files_only=True).eval()
    processor = Swin2SRImageProcessor.from_pretrained(folder, local_files_only=True)
    pil = Image.fromarray((picture.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    with torch.no_grad():
        out = model(**processor(images=pil, return_tensors="pt")).reconstruction
    scale = model.config.upscale
    return out[:, :, :pil.height * scale, :pil.width * scale].clamp(0, 1)


def test_a_swin2sr_folder_by_name_upscales_as_transformers_does(model_folder):
    result, out, pictures = upscaled(nodegraph.Engine(device="cpu"), workflow("swin2sr-x2"))
    assert out.shape == (2, 3, 26, 38) and out.dtype == torch.float32
    loaded = result.outputs["loader"]["upscale_model"]
    assert loaded.scale == 2 and loaded.description == "a 2x Swin2SR super-resolution model (transformers)"
    expected = torch.cat([transformers_upscale(model_folder / "swin2sr-x2", pictures[i]) for i in range(2)])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)  # the processor rescales by 1/255: 1 ulp apart
    assert not torch.equal(out[0], out[1])


def _near_inner_edges(size: int, tile: int, overlap: int, scale: int, reach: int):
    """Output rows (or columns) within ``reach`` input pixels of a tile edge inside the picture."""
    near = torch.zeros(size * scale, dtype=torch.bool)
    for start, end in _tiling.spans(size, tile, overlap):
        for edge in (start, end):
            if 0 < edge < size:
                near[max(0, (edge - reach) * scale):(edge + reach) * scale] = True
    return near


def test_tiles_equal_the_whole_picture_away_from_seams():
    # 80 pixels in tiles of 48 overlapping by 16: tiles at 0 and 32, both on the 4-pixel window grid, so each
    # tile's attention windows are the whole picture's; a pixel 12 or more from a tile's inner edge sees the
    # same neighbourhood in both (a window and its shifted half, the convolutions before and after)
    size, tile, overlap, scale, reach = 80, 48, 16, 2, 12
    engine = nodegraph.Engine(device="cpu")
    _, whole, _ = upscaled(engine, workflow("swin2sr-x2", width=size, height=size, batch=1))
    _, tiled, _ = upscaled(engine, workflow("swin2sr-x2", tile=tile, overlap=overlap, width=size, height=size, batch=1))
    assert tiled.shape == whole.shape == (1, 3, size * scale, size * scale)
    near = _near_inner_edges(size, tile, overlap, scale, reach)
    seams = near[:, None] | near[None, :]
    difference = (tiled - whole).abs().amax(dim=(0, 1))
    assert difference[~seams].max() < 1e-5
    assert 1e-5 < difference[seams].max() < 0.05  # near the seams each tile saw padding: a little apart


def test_a_transformers_folder_of_another_kind_is_refused_in_words(model_folder):
    tiny_models.depth_anything(model_folder / "depth")
    with pytest.raises(nodegraph.NodeFailed, match="node 'loader' failed: .*depth is a folder holding a "
                                                   "'depth_anything' model; Load Upscale Model takes"):
        nodegraph.Engine(device="cpu").run(workflow("depth"), targets=["upscale"])
