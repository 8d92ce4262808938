"""Image operation nodes (nodes/image_transform.py, image_adjust.py, image_mask.py), run through the engine."""

from __future__ import annotations

import pytest
from PIL import Image

import nodegraph

W, H = 40, 30  # the test picture: blue, with a red 10x10 square whose top-left corner is at (10, 5)
SQ_X, SQ_Y, SQ = 10, 5, 10
RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)


@pytest.fixture
def pictures(tmp_path):
    square = Image.new("RGB", (W, H), (0, 0, 255))
    square.paste((255, 0, 0), (SQ_X, SQ_Y, SQ_X + SQ, SQ_Y + SQ))
    paths = {"square": square}
    paths["black"] = Image.new("RGB", (W, H), (0, 0, 0))
    paths["white"] = Image.new("RGB", (W, H), (255, 255, 255))
    paths["grey"] = Image.new("RGB", (W, H), (64, 128, 192))
    paths["small"] = Image.new("RGB", (8, 6), (0, 255, 0))
    for name, im in list(paths.items()):
        paths[name] = tmp_path / f"{name}.png"
        im.save(paths[name])
    return paths


def run(wf, target, tmp_path, output="image"):
    result = nodegraph.Engine(device="cpu").run(wf, targets=[target], output_dir=tmp_path / "out")
    return result.outputs[target][output]


def one_node(pictures, type_id, params=None, picture="square", port="image", output="image"):
    """A workflow: load `picture` -> `type_id` (id 'op'), linked into its `port`."""
    wf = nodegraph.Workflow()
    wf.add_node("image.load", "load", params={"path": str(pictures[picture])})
    wf.add_node(type_id, "op", params=params or {})
    wf.connect("load", "image", "op", port)
    return wf


def pixel(t, x, y, batch=0):
    return tuple(round(float(v), 3) for v in t[batch, :, y, x])


def red_square_mask(t):
    """Where a MASK is selected: its bounding box (x0, y0, x1, y1) and the number of pixels."""
    ys, xs = (t[0, 0] > 0.5).nonzero(as_tuple=True)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1), int(len(xs))


# ----- transform ------------------------------------------------------------------------------


def test_crop_returns_the_box_contents(pictures, tmp_path):
    wf = one_node(pictures, "image.crop", {"x": 5, "y": 5, "width": 10, "height": 10})
    out = run(wf, "op", tmp_path)
    assert tuple(out.shape) == (1, 3, 10, 10)
    assert pixel(out, 0, 0) == BLUE  # x 5..9 lie left of the square
    assert pixel(out, 4, 9) == BLUE
    assert pixel(out, 5, 0) == RED  # x 10 is the square's first column
    assert pixel(out, 9, 9) == RED


def test_bad_crop_box_fails_naming_node_and_problem(pictures, tmp_path):
    wf = one_node(pictures, "image.crop", {"x": 35, "y": 0, "width": 10, "height": 10})
    with pytest.raises(nodegraph.NodeFailed) as info:
        run(wf, "op", tmp_path)
    message = str(info.value)
    assert info.value.node == "op"
    assert "node 'op'" in message and "outside the 40x30 image" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "mode, size, expected",
    [
        ("exact", (20, 20), (20, 20)),
        ("fit", (20, 20), (20, 15)),  # 40x30 scaled to fit inside 20x20 keeps 4:3
        ("fit", (80, 80), (80, 60)),
        ("fill", (20, 20), (20, 20)),
        ("fill", (10, 30), (10, 30)),
    ],
)
def test_resize_modes_give_the_right_size(pictures, tmp_path, mode, size, expected):
    width, height = size
    wf = one_node(pictures, "image.resize", {"width": width, "height": height, "mode": mode, "resample": "bicubic"})
    out = run(wf, "op", tmp_path)
    assert (out.shape[-1], out.shape[-2]) == expected
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_resize_exact_nearest_scales_content_and_fill_crops_the_centre(pictures, tmp_path):
    wf = one_node(pictures, "image.resize", {"width": 20, "height": 15, "mode": "exact", "resample": "nearest"})
    out = run(wf, "op", tmp_path)
    # nearest samples source pixel 2i+1: the square (10..19, 5..14) lands on (5..9, 2..6)
    assert pixel(out, 5, 2) == RED and pixel(out, 9, 6) == RED
    assert pixel(out, 4, 3) == BLUE and pixel(out, 10, 3) == BLUE
    assert pixel(out, 5, 1) == BLUE and pixel(out, 5, 7) == BLUE
    # fill into 30x30 with no scaling: the centre 30 columns (5..34) of the 40 are kept
    wf = one_node(pictures, "image.resize", {"width": 30, "height": 30, "mode": "fill", "resample": "nearest"})
    out = run(wf, "op", tmp_path)
    assert pixel(out, 4, SQ_Y) == BLUE and pixel(out, 5, SQ_Y) == RED and pixel(out, 14, SQ_Y) == RED
    assert pixel(out, 15, SQ_Y) == BLUE


def test_rotate_expand_swaps_sides_and_fills_with_colour(pictures, tmp_path):
    wf = one_node(pictures, "image.rotate", {"angle": 90.0, "expand": True})
    out = run(wf, "op", tmp_path)
    assert (out.shape[-1], out.shape[-2]) == (H, W)
    # counter-clockwise: (x, y) goes to (y, W - 1 - x)
    assert pixel(out, SQ_Y, W - 1 - SQ_X) == RED
    wf = one_node(pictures, "image.rotate", {"angle": 45.0, "expand": True, "fill": "#00ff00"})
    out = run(wf, "op", tmp_path)
    assert out.shape[-1] > W and pixel(out, 0, 0) == (0.0, 1.0, 0.0)
    wf = one_node(pictures, "image.rotate", {"angle": 45.0, "expand": False})
    assert tuple(run(wf, "op", tmp_path).shape) == (1, 3, H, W)


def test_invalid_colour_fails_naming_node_and_problem(pictures, tmp_path):
    wf = one_node(pictures, "image.rotate", {"angle": 30.0, "fill": "#12345z"})
    with pytest.raises(nodegraph.NodeFailed) as info:
        run(wf, "op", tmp_path)
    message = str(info.value)
    assert "node 'op'" in message and "'#12345z' is not a colour" in message and "fill" in message


def test_flip_mirrors_a_known_pixel(pictures, tmp_path):
    out = run(one_node(pictures, "image.flip", {"direction": "horizontal"}), "op", tmp_path)
    assert pixel(out, W - 1 - SQ_X, SQ_Y) == RED and pixel(out, SQ_X, SQ_Y) == BLUE
    assert pixel(out, W - SQ_X - SQ, SQ_Y) == RED and pixel(out, W - SQ_X - SQ - 1, SQ_Y) == BLUE
    out = run(one_node(pictures, "image.flip", {"direction": "vertical"}), "op", tmp_path)
    assert pixel(out, SQ_X, H - 1 - SQ_Y) == RED and pixel(out, SQ_X, SQ_Y) == BLUE


def test_pad_adds_border_and_masks_exactly_the_border(pictures, tmp_path):
    params = {"left": 4, "top": 2, "right": 6, "bottom": 0, "color": "#ffffff"}
    wf = one_node(pictures, "image.pad", params)
    result = nodegraph.Engine(device="cpu").run(wf, targets=["op"], output_dir=tmp_path)
    image, mask = result.outputs["op"]["image"], result.outputs["op"]["mask"]
    assert tuple(image.shape) == (1, 3, H + 2, W + 10)
    assert tuple(mask.shape) == (1, 1, H + 2, W + 10)
    assert pixel(image, 0, 0) == (1.0, 1.0, 1.0) and pixel(image, W + 9, H + 1) == (1.0, 1.0, 1.0)
    assert pixel(image, 4, 2) == BLUE and pixel(image, 4 + SQ_X, 2 + SQ_Y) == RED
    expected = mask.new_ones(mask.shape)
    expected[..., 2 : 2 + H, 4 : 4 + W] = 0
    assert bool((mask == expected).all())


def test_pad_feather_fades_the_mask_into_the_picture(pictures, tmp_path):
    params = {"left": 8, "top": 0, "right": 0, "bottom": 0, "feather": 4}
    wf = one_node(pictures, "image.pad", params)
    mask = run(wf, "op", tmp_path, output="mask")[0, 0]
    row = [round(float(v), 2) for v in mask[H // 2, 6:14]]
    assert row[:2] == [1.0, 1.0]  # the border itself stays fully selected
    assert row[2] < 1.0 and row[2] > row[3] > row[4] > row[5] > 0.0  # fades over 4 pixels of the original
    assert row[6:] == [0.0, 0.0]
    assert float(mask[:, 12:].max()) == 0.0  # no padding on the other sides: nothing fades from there


# ----- adjust -----------------------------------------------------------------------------------


def test_invert_of_known_colours(pictures, tmp_path):
    out = run(one_node(pictures, "image.invert"), "op", tmp_path)
    assert pixel(out, 0, 0) == (1.0, 1.0, 0.0)  # blue -> yellow
    assert pixel(out, SQ_X, SQ_Y) == (0.0, 1.0, 1.0)  # red -> cyan


def test_grayscale_has_equal_channels(pictures, tmp_path):
    out = run(one_node(pictures, "image.grayscale"), "op", tmp_path)
    assert out.shape[1] == 3
    assert bool((out[:, 0] == out[:, 1]).all() and (out[:, 1] == out[:, 2]).all())
    assert pixel(out, SQ_X, SQ_Y)[0] > pixel(out, 0, 0)[0]  # red is lighter than blue


@pytest.mark.parametrize(
    "type_id, params, x, y, expected",
    [
        ("image.brightness", {"factor": 0.0}, 0, 0, (0.0, 0.0, 0.0)),
        ("image.brightness", {"factor": 1.0}, SQ_X, SQ_Y, RED),
        ("image.saturation", {"factor": 1.0}, 0, 0, BLUE),
        ("image.blur", {"radius": 2.0}, 0, 0, BLUE),  # far from the square, blur changes nothing
        ("image.blur", {"radius": 0.0}, SQ_X, SQ_Y, RED),
        ("image.sharpen", {"factor": 3.0}, 0, 0, BLUE),
        ("image.unsharp_mask", {"radius": 2.0, "percent": 200, "threshold": 0}, 0, 0, BLUE),
        ("image.autocontrast", {"cutoff": 0.0}, SQ_X, SQ_Y, RED),
        ("image.contrast", {"factor": 1.0}, SQ_X, SQ_Y, RED),
        ("image.gamma", {"gamma": 2.5}, SQ_X, SQ_Y, RED),  # black and white stay
    ],
)
def test_adjustments_on_known_pixels(pictures, tmp_path, type_id, params, x, y, expected):
    out = run(one_node(pictures, type_id, params), "op", tmp_path)
    assert tuple(out.shape) == (1, 3, H, W)
    assert pixel(out, x, y) == expected


def test_tone_adjustments_on_grey(pictures, tmp_path):
    grey = (64 / 255, 128 / 255, 192 / 255)
    out = run(one_node(pictures, "image.gamma", {"gamma": 2.0}, picture="grey"), "op", tmp_path)
    for got, want in zip(pixel(out, 3, 3), grey):
        assert got == pytest.approx(want**0.5, abs=1 / 255)
    out = run(one_node(pictures, "image.saturation", {"factor": 0.0}, picture="grey"), "op", tmp_path)
    r, g, b = pixel(out, 3, 3)
    assert r == g == b
    out = run(one_node(pictures, "image.brightness", {"factor": 0.5}, picture="grey"), "op", tmp_path)
    for got, want in zip(pixel(out, 3, 3), grey):
        assert got == pytest.approx(want / 2, abs=1 / 255)
    out = run(one_node(pictures, "image.contrast", {"factor": 0.0}, picture="grey"), "op", tmp_path)
    assert len(set(pixel(out, 3, 3))) == 1  # flat grey
    out = run(one_node(pictures, "image.equalize", picture="square"), "op", tmp_path)
    assert tuple(out.shape) == (1, 3, H, W)


def test_blur_softens_the_square_edge(pictures, tmp_path):
    out = run(one_node(pictures, "image.blur", {"radius": 2.0}), "op", tmp_path)
    r, _, b = pixel(out, SQ_X, SQ_Y + SQ // 2)
    assert 0.2 < r < 0.9 and 0.1 < b < 0.8


# ----- combining and masks ----------------------------------------------------------------------


def two_images(pictures, type_id, a, b, ports=("image_a", "image_b"), params=None):
    wf = nodegraph.Workflow()
    wf.add_node("image.load", "a", params={"path": str(pictures[a])})
    wf.add_node("image.load", "b", params={"path": str(pictures[b])})
    wf.add_node(type_id, "op", params=params or {})
    wf.connect("a", "image", "op", ports[0])
    wf.connect("b", "image", "op", ports[1])
    return wf


def test_blend_half_of_black_and_white_is_grey(pictures, tmp_path):
    out = run(two_images(pictures, "image.blend", "black", "white", params={"factor": 0.5}), "op", tmp_path)
    assert float(out.min()) == pytest.approx(0.5, abs=1 / 255) and float(out.max()) == pytest.approx(0.5, abs=1 / 255)
    out = run(two_images(pictures, "image.blend", "black", "white", params={"factor": 0.0}), "op", tmp_path)
    assert float(out.max()) == 0.0


def test_blend_of_different_sizes_fails_naming_both(pictures, tmp_path):
    wf = two_images(pictures, "image.blend", "square", "small")
    with pytest.raises(nodegraph.NodeFailed) as info:
        run(wf, "op", tmp_path)
    assert "node 'op'" in str(info.value)
    assert "image_a is 40x30 but image_b is 8x6; resize one first" in str(info.value)


def test_composite_picks_foreground_inside_the_mask(pictures, tmp_path):
    wf = two_images(pictures, "image.composite", "square", "white", ports=("background", "foreground"))
    wf.add_node("mask.from_color", "sel", params={"color": "#ff0000"})
    wf.connect("a", "image", "sel", "image")
    wf.connect("sel", "mask", "op", "mask")
    out = run(wf, "op", tmp_path)
    assert pixel(out, SQ_X, SQ_Y) == (1.0, 1.0, 1.0) and pixel(out, SQ_X + SQ - 1, SQ_Y + SQ - 1) == (1.0, 1.0, 1.0)
    assert pixel(out, SQ_X - 1, SQ_Y) == BLUE and pixel(out, 0, 0) == BLUE
    assert float(out[0, 0].sum()) == SQ * SQ  # white only inside the square


def test_blend_and_composite_broadcast_a_batch_of_one():
    import torch

    blend = nodegraph.REGISTRY.get("image.blend").run
    one, three = torch.zeros(1, 3, 4, 5), torch.ones(3, 3, 4, 5)
    out = blend(None, image_a=one, image_b=three, factor=1.0)["image"]
    assert tuple(out.shape) == (3, 3, 4, 5) and float(out.min()) == 1.0
    with pytest.raises(nodegraph.NodeUserError, match="batch sizes"):
        blend(None, image_a=torch.zeros(2, 3, 4, 5), image_b=three, factor=0.5)
    composite = nodegraph.REGISTRY.get("image.composite").run
    mask = torch.zeros(1, 1, 4, 5)
    mask[..., :2, :] = 1
    out = composite(None, background=one, foreground=three, mask=mask)["image"]
    assert tuple(out.shape) == (3, 3, 4, 5)
    assert float(out[:, :, :2].min()) == 1.0 and float(out[:, :, 2:].max()) == 0.0
    with pytest.raises(nodegraph.NodeUserError, match="background is 5x4 but mask is 3x3"):
        composite(None, background=one, foreground=three, mask=torch.zeros(1, 1, 3, 3))


def test_mask_from_color_selects_the_red_square_exactly(pictures, tmp_path):
    mask = run(one_node(pictures, "mask.from_color", {"color": "#ff0000"}, output="mask"), "op", tmp_path, "mask")
    assert tuple(mask.shape) == (1, 1, H, W)
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert red_square_mask(mask) == ((SQ_X, SQ_Y, SQ_X + SQ, SQ_Y + SQ), SQ * SQ)
    near = {"color": "#fa0005", "tolerance": 5}
    mask = run(one_node(pictures, "mask.from_color", near), "op", tmp_path, "mask")
    assert red_square_mask(mask)[1] == SQ * SQ
    near["tolerance"] = 4
    mask = run(one_node(pictures, "mask.from_color", near), "op", tmp_path, "mask")
    assert float(mask.max()) == 0.0


def test_mask_from_color_refuses_a_bad_colour(pictures, tmp_path):
    with pytest.raises(nodegraph.NodeFailed) as info:
        run(one_node(pictures, "mask.from_color", {"color": "reddish"}), "op", tmp_path, "mask")
    assert "node 'op'" in str(info.value) and "'reddish' is not a colour" in str(info.value)


def test_mask_from_channel(pictures, tmp_path):
    mask = run(one_node(pictures, "mask.from_channel", {"channel": "red"}), "op", tmp_path, "mask")
    assert red_square_mask(mask) == ((SQ_X, SQ_Y, SQ_X + SQ, SQ_Y + SQ), SQ * SQ)
    mask = run(one_node(pictures, "mask.from_channel", {"channel": "blue"}), "op", tmp_path, "mask")
    assert int(mask.sum()) == W * H - SQ * SQ
    wf = one_node(pictures, "mask.from_channel", {"channel": "luminance"}, picture="white")
    mask = run(wf, "op", tmp_path, "mask")
    assert float(mask.min()) == 1.0


def mask_chain(pictures, type_id, params=None):
    """load -> mask.from_color (the red square) -> type_id ('op')."""
    wf = one_node(pictures, "mask.from_color", {"color": "#ff0000"})
    wf.add_node(type_id, "m", params=params or {})
    wf.connect("op", "mask", "m", "mask")
    return wf


def test_mask_grow_and_shrink_by_the_right_amount(pictures, tmp_path):
    mask = run(mask_chain(pictures, "mask.grow", {"pixels": 3}), "m", tmp_path, "mask")
    assert red_square_mask(mask) == ((SQ_X - 3, SQ_Y - 3, SQ_X + SQ + 3, SQ_Y + SQ + 3), (SQ + 6) ** 2)
    mask = run(mask_chain(pictures, "mask.grow", {"pixels": -2}), "m", tmp_path, "mask")
    assert red_square_mask(mask) == ((SQ_X + 2, SQ_Y + 2, SQ_X + SQ - 2, SQ_Y + SQ - 2), (SQ - 4) ** 2)


def test_mask_invert_feather_and_to_image(pictures, tmp_path):
    mask = run(mask_chain(pictures, "mask.invert"), "m", tmp_path, "mask")
    assert int(mask.sum()) == W * H - SQ * SQ and float(mask[0, 0, SQ_Y, SQ_X]) == 0.0
    mask = run(mask_chain(pictures, "mask.feather", {"radius": 2.0}), "m", tmp_path, "mask")
    edge = float(mask[0, 0, SQ_Y + SQ // 2, SQ_X])
    assert 0.2 < edge < 0.8 and float(mask[0, 0, SQ_Y + 5, SQ_X + 5]) > 0.95 and float(mask[0, 0, 0, 0]) == 0.0
    image = run(mask_chain(pictures, "mask.to_image"), "m", tmp_path)
    assert tuple(image.shape) == (1, 3, H, W)
    assert pixel(image, SQ_X, SQ_Y) == (1.0, 1.0, 1.0) and pixel(image, 0, 0) == (0.0, 0.0, 0.0)


def test_canny_finds_the_square_boundary_only(pictures, tmp_path):
    wf = one_node(pictures, "image.canny", {"low_threshold": 50, "high_threshold": 100})
    out = run(wf, "op", tmp_path)
    assert tuple(out.shape) == (1, 3, H, W)
    assert set(out.unique().tolist()) == {0.0, 1.0}
    assert bool((out[:, 0] == out[:, 1]).all() and (out[:, 1] == out[:, 2]).all())
    edges = out[0, 0] > 0.5
    ys, xs = edges.nonzero(as_tuple=True)
    assert len(xs) > 4 * (SQ - 2)  # the whole outline
    # every edge pixel lies within a pixel of the square's boundary
    near_x = (xs >= SQ_X - 1) & (xs <= SQ_X + SQ) & (ys >= SQ_Y - 1) & (ys <= SQ_Y + SQ)
    inside = (xs >= SQ_X + 2) & (xs <= SQ_X + SQ - 3) & (ys >= SQ_Y + 2) & (ys <= SQ_Y + SQ - 3)
    assert bool(near_x.all()) and not bool(inside.any())
    assert not bool(edges[:, : SQ_X - 2].any()) and not bool(edges[:, SQ_X + SQ + 2 :].any())
