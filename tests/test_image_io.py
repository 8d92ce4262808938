"""Load Image, Save Image and Preview as a user meets them: formats, orientation, alpha, file identity."""

import os

import numpy as np
import pytest
from PIL import Image

import nodegraph

from conftest import REPO


def load_workflow(path, target="save"):
    wf = nodegraph.Workflow()
    wf.add_node("image.load", "load", params={"path": str(path)})
    wf.add_node("image.preview", "show")
    wf.connect("load", "image", "show", "image")
    return wf


def picture(size=(40, 30)):
    """Red left half, blue right half."""
    im = Image.new("RGB", size, (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, size[0] // 2, size[1]))
    return im


@pytest.mark.parametrize("fmt, ext", [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp"), ("TIFF", "tif")])
def test_each_supported_format_loads_as_an_rgb_tensor(tmp_path, fmt, ext):
    path = tmp_path / f"pic.{ext}"
    picture().save(path, fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    result = nodegraph.Engine(device="cpu").run(load_workflow(path))
    image = result.outputs["load"]["image"]
    assert tuple(image.shape) == (1, 3, 30, 40)
    left, right = image[0, :, 15, 5], image[0, :, 15, 35]
    assert left[0] > 0.9 and left[2] < 0.1 and right[2] > 0.9 and right[0] < 0.1
    assert float(result.outputs["load"]["mask"].min()) == 1.0  # no alpha: everything opaque
    assert result.outputs["show"]["image"] is image  # Preview shows it without writing a file
    assert result.files == []


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    picture((40, 30)).save(path, "JPEG", exif=exif, quality=95)
    image = nodegraph.Engine(device="cpu").run(load_workflow(path)).outputs["load"]["image"]
    assert tuple(image.shape) == (1, 3, 40, 30)  # displayed upright: taller than wide
    assert image[0, 0, 5, 15] > 0.9  # the red half is now on top
    assert image[0, 2, 35, 15] > 0.9


def test_alpha_becomes_the_mask(tmp_path):
    im = picture().convert("RGBA")
    alpha = Image.new("L", im.size, 0)
    alpha.paste(255, (10, 5, 20, 15))
    im.putalpha(alpha)
    im.save(tmp_path / "cutout.png")
    mask = nodegraph.Engine(device="cpu").run(load_workflow(tmp_path / "cutout.png")).outputs["load"]["mask"]
    assert tuple(mask.shape) == (1, 1, 30, 40)
    assert float(mask[0, 0, 10, 15]) == 1.0 and float(mask[0, 0, 25, 35]) == 0.0
    assert float(mask.sum()) == 100.0


def test_editing_the_file_on_disk_reruns_the_loader_and_says_why(tmp_path):
    path = tmp_path / "pic.png"
    picture().save(path)
    engine, wf = nodegraph.Engine(device="cpu"), load_workflow(path)
    engine.run(wf)
    assert engine.run(wf).executed == []
    Image.new("RGB", (40, 30), (0, 255, 0)).save(path)
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    result = engine.run(wf)
    assert result.executed == ["load", "show"]
    assert result.reasons["load"] == "its input file changed"
    assert float(result.outputs["load"]["image"][0, 1].mean()) == 1.0


def test_relative_paths_are_relative_to_the_workflow_file(tmp_path):
    wf = nodegraph.load(os.path.join(REPO, "workflows", "load-save.json"))
    result = nodegraph.Engine(device="cpu").run(wf, targets=["load"], output_dir=tmp_path)
    assert tuple(result.outputs["load"]["image"].shape) == (1, 3, 256, 384)


@pytest.mark.parametrize("content, message", [
    (None, "no such image file"),
    (b"GIF89a" + b"\0" * 40, "not a readable PNG, JPEG, WebP or TIFF image"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not a readable PNG, JPEG, WebP or TIFF image"),
])
def test_unreadable_files_fail_with_the_node_and_file_named(tmp_path, content, message):
    path = tmp_path / "x.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(nodegraph.NodeFailed) as info:
        nodegraph.Engine(device="cpu").run(load_workflow(path))
    assert str(info.value).startswith("node 'load' failed: ") and message in str(info.value)


def test_save_writes_numbered_files_with_the_workflow_embedded(tmp_path):
    wf = load_workflow(os.path.join(REPO, "workflows", "assets", "sample.png"))
    wf.add_node("image.save", "save", params={"filename_prefix": "shots/pic"})
    wf.connect("load", "image", "save", "image")
    engine = nodegraph.Engine(device="cpu")
    first = engine.run(wf, output_dir=tmp_path).files
    wf.set_param("save", "embed_workflow", False)
    second = engine.run(wf, output_dir=tmp_path).files
    assert [p.name for p in first + second] == ["pic_00001.png", "pic_00002.png"]
    assert "workflow" in Image.open(first[0]).info and "workflow" not in Image.open(second[0]).info
    saved = np.asarray(Image.open(first[0]))
    assert saved.shape == (256, 384, 3)
    assert np.array_equal(saved, np.asarray(Image.open(os.path.join(REPO, "workflows", "assets", "sample.png")).convert("RGB")))
    assert sorted(os.listdir(tmp_path / "shots")) == ["pic_00001.png", "pic_00002.png"]  # no temporary files left


def test_a_png_without_a_workflow_says_so(tmp_path):
    picture().save(tmp_path / "plain.png")
    with pytest.raises(nodegraph.WorkflowFileError, match="has no embedded workflow"):
        nodegraph.load(tmp_path / "plain.png")


def test_a_value_node_drives_a_parameter_through_a_link(tmp_path):
    wf = load_workflow(os.path.join(REPO, "workflows", "assets", "sample.png"))
    wf.add_node("value.int", "size", params={"value": 32})
    wf.add_node("image.resize", "small")
    wf.connect("load", "image", "small", "image")
    wf.connect("size", "value", "small", "width")
    wf.connect("size", "value", "small", "height")
    engine = nodegraph.Engine(device="cpu")
    assert tuple(engine.run(wf, targets=["small"]).outputs["small"]["image"].shape) == (1, 3, 32, 32)
    wf.set_param("size", "value", 48)
    result = engine.run(wf, targets=["small"])
    assert result.executed == ["size", "small"]
    assert result.reasons["small"] == "input 'height' from node 'size' changed; input 'width' from node 'size' changed"
    assert tuple(result.outputs["small"]["image"].shape) == (1, 3, 48, 48)
