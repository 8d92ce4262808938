"""ControlNet Preprocessor (nodes/preprocess.py), run through the engine on small pictures."""

from __future__ import annotations

import socket
import warnings

import numpy as np
import pytest
from PIL import Image

import nodegraph
from nodes import preprocess

# controlnet-aux warns a dozen times on import and on some calls; none of that is what these tests check.
pytestmark = pytest.mark.filterwarnings("ignore")

W, H = 96, 64  # black, with a white square from (32, 16) to (64, 48)
X0, Y0, X1, Y1 = 32, 16, 64, 48
NO_WEIGHTS = [name for name, spec in preprocess.DETECTORS.items() if not spec.files]
SMALL = {"detect_resolution": 128, "image_resolution": 128}


@pytest.fixture
def square(tmp_path):
    im = Image.new("RGB", (W, H), (0, 0, 0))
    im.paste((255, 255, 255), (X0, Y0, X1, Y1))
    path = tmp_path / "square.png"
    im.save(path)
    return path


@pytest.fixture
def photo(tmp_path):
    """A noisy picture of an awkward size (not a multiple of 64), so detectors change its size."""
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)).save(path)
    return path


def workflow(picture, **params):
    wf = nodegraph.Workflow()
    wf.add_node("image.load", "load", params={"path": str(picture)})
    wf.add_node("control.preprocess", "pre", params=params)
    wf.connect("load", "image", "pre", "image")
    return wf


def run(wf):
    """Run on a fresh engine (so nothing comes from the engine's cache); the control picture as HxWx3 uint8."""
    out = nodegraph.Engine(device="cpu").run(wf, targets=["pre"]).outputs["pre"]["image"]
    assert out.ndim == 4 and out.shape[:2] == (1, 3)
    return (out[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def test_node_is_listed_with_its_detectors():
    node_type = nodegraph.REGISTRY.get("control.preprocess")
    assert node_type.title == "ControlNet Preprocessor" and node_type.category == "analyze/control"
    choices = node_type.param("detector").choices
    for name in ("canny", "content_shuffle", "color_shuffle", "downsample", "lineart_standard",
                 "hed", "pidinet", "lineart", "lineart_anime", "mlsd", "teed"):
        assert name in choices
    assert not any("gray" in c or "mask" in c for c in choices)  # broken in controlnet-aux 0.0.10


def test_canny_draws_white_edges_on_the_border_and_black_elsewhere(square):
    edges = run(workflow(square, detector="canny", low_threshold=100, high_threshold=200, **SMALL))
    assert edges.shape == (H, W, 3)
    assert (edges[..., 0] == edges[..., 1]).all() and (edges[..., 0] == edges[..., 2]).all()  # grey lines
    grey = edges[..., 0]
    mid_x, mid_y = (X0 + X1) // 2, (Y0 + Y1) // 2
    # each side of the square has a bright line within a pixel or two of the border
    assert grey[Y0 - 2:Y0 + 2, mid_x].max() > 180  # top
    assert grey[Y1 - 2:Y1 + 2, mid_x].max() > 180  # bottom
    assert grey[mid_y, X0 - 2:X0 + 2].max() > 180  # left
    assert grey[mid_y, X1 - 2:X1 + 2].max() > 180  # right
    # flat areas, inside and outside the square, stay black
    assert grey[Y0 + 4:Y1 - 4, X0 + 4:X1 - 4].max() == 0
    assert grey[:, :X0 - 4].max() == 0 and grey[:, X1 + 4:].max() == 0
    assert grey[:Y0 - 4].max() == 0 and grey[Y1 + 4:].max() == 0


@pytest.mark.parametrize("detector", NO_WEIGHTS)
def test_every_no_weights_detector_keeps_the_picture_size(photo, detector):
    out = run(workflow(photo, detector=detector, **SMALL))
    assert out.shape == (45, 70, 3)
    assert out.max() > 0  # it drew something


@pytest.mark.parametrize("detector", [n for n in NO_WEIGHTS if preprocess.DETECTORS[n].seeded])
def test_shuffles_repeat_with_a_seed_and_change_with_another(photo, detector):
    state = np.random.get_state()
    first = run(workflow(photo, detector=detector, seed=7, **SMALL))
    again = run(workflow(photo, detector=detector, seed=7, **SMALL))
    other = run(workflow(photo, detector=detector, seed=8, **SMALL))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    after = np.random.get_state()  # numpy's global generator is left as it was
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2:] == state[2:]


def test_seed_above_32_bits_counts(photo):
    low = run(workflow(photo, detector="content_shuffle", seed=5, **SMALL))
    high = run(workflow(photo, detector="content_shuffle", seed=5 + 2**40, **SMALL))
    assert not np.array_equal(low, high)


def test_weight_needing_detector_without_weights_names_the_file(square):
    with pytest.raises(nodegraph.NodeFailed) as info:
        run(workflow(square, detector="hed", **SMALL))
    message = str(info.value)
    assert "'hed'" in message and "ControlNetHED.pth" in message


def test_weights_folder_without_the_file_names_the_file(square, tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "something_else.pth").write_bytes(b"")
    with pytest.raises(nodegraph.NodeFailed) as info:
        run(workflow(square, detector="lineart", weights=str(folder), **SMALL))
    message = str(info.value)
    assert "'lineart'" in message and "sk_model.pth" in message and "sk_model2.pth" in message


def test_damaged_weights_are_a_user_error(square, tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "table5_pidinet.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(nodegraph.NodeFailed) as info:
        run(workflow(square, detector="pidinet", weights=str(folder), **SMALL))
    assert "'pidinet'" in str(info.value) and "cannot load" in str(info.value)


def test_pidinet_loads_random_weights_offline_from_a_relative_folder(square, tmp_path, monkeypatch):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from controlnet_aux.pidi.model import pidinet

    torch.manual_seed(0)
    folder = tmp_path / "annotators"
    folder.mkdir()
    # PidiNetDetector.from_pretrained reads torch.load(folder / "table5_pidinet.pth")["state_dict"]
    torch.save({"state_dict": pidinet().state_dict()}, folder / "table5_pidinet.pth")

    wf = workflow(square, detector="pidinet", weights="annotators", **SMALL)
    nodegraph.save(wf, tmp_path / "flow.json")
    wf = nodegraph.load(tmp_path / "flow.json")  # relative paths now resolve against tmp_path

    def no_network(*args, **kwargs):
        raise AssertionError("the preprocessor tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    preprocess._LOADED.clear()
    out = run(wf)
    assert out.shape == (H, W, 3)
    assert len(preprocess._LOADED) == 1
    loaded = next(iter(preprocess._LOADED.values()))

    run(wf)  # a fresh engine: the node runs again but the detector is not reloaded
    assert next(iter(preprocess._LOADED.values())) is loaded and len(preprocess._LOADED) == 1

