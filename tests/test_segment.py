"""Segment: our masks equal transformers' own SAM, SAM-HQ, SAM 2 and SAM 3 tracker on the same points and boxes, at the
picture's size; boxes from a Boxes node are object prompts; a folder of another kind is refused in words."""

import functools
import os

import pytest
import torch
from PIL import Image

import nodegraph

import tiny_models
from conftest import REPO

SAMPLE = os.path.join(REPO, "workflows", "assets", "sample.png")  # 384 x 256
CLASSES = {"sam": ("SamModel", "SamProcessor"), "sam_hq": ("SamHQModel", "SamHQProcessor"),
           "sam2": ("Sam2Model", "Sam2Processor"),
           "sam3_tracker": ("Sam3TrackerModel", "Sam3TrackerProcessor")}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"sam": tiny_models.sam(root / "tiny-sam"), "sam_hq": tiny_models.sam_hq(root / "tiny-sam-hq"),
            "sam2": tiny_models.sam2(root / "tiny-sam2"),
            "sam3_tracker": tiny_models.sam3_tracker(root / "tiny-sam3-tracker")}


def segment_workflow(model, picture=SAMPLE, **params):
    wf = nodegraph.Workflow()
    wf.add_node("image.load", "load", params={"path": str(picture)})
    wf.add_node("model.segment", "model", params={"model": str(model)})
    wf.add_node("analyze.segment", "segment", params=params)
    wf.connect("model", "segment_model", "segment", "segment_model")
    wf.connect("load", "image", "segment", "image")
    return wf


def ours(wf):
    return nodegraph.Engine(device="cpu").run(wf, targets=["segment"]).outputs["segment"]


@functools.cache
def library(folder, kind):
    import transformers

    model_class, processor_class = (getattr(transformers, name) for name in CLASSES[kind])
    model = model_class.from_pretrained(folder, local_files_only=True).eval()
    return model, processor_class.from_pretrained(folder, local_files_only=True)


def theirs(folder, kind, multimask=True, threshold=0.0, **prompt):
    """transformers on its own: the processor, the model, the processor's post_process_masks; with multimask, the
    mask of the best iou score. Returns (objects, 1, H, W) booleans and the chosen masks' scores."""
    model, processor = library(folder, kind)
    batch = processor(images=[Image.open(SAMPLE).convert("RGB")], return_tensors="pt", **prompt)
    inputs = {k: v for k, v in batch.items() if k.startswith(("pixel", "input"))}
    with torch.no_grad():
        out = model(**inputs, multimask_output=multimask)
    sizes = {"reshaped_input_sizes": batch["reshaped_input_sizes"]} if kind in ("sam", "sam_hq") else {}
    masks = processor.post_process_masks(out.pred_masks, batch["original_sizes"], mask_threshold=threshold, **sizes)[0]
    best = out.iou_scores[0].argmax(dim=-1)  # (objects,)
    chosen = torch.stack([masks[i, best[i]] for i in range(len(best))])[:, None]
    return chosen, out.iou_scores[0, torch.arange(len(best)), best]


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_a_box_and_a_click_give_the_mask_transformers_gives(folders, kind):
    result = ours(segment_workflow(folders[kind], points="150,120", drawn_boxes="40,30,300,220"))
    mask = result["mask"]
    assert tuple(mask.shape) == (1, 1, 256, 384) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) <= {0.0, 1.0} and 0 < float(mask.mean()) < 1
    expected, scores = theirs(folders[kind], kind, input_points=[[[[150, 120]]]], input_labels=[[[1]]],
                              input_boxes=[[[40, 30, 300, 220]]])
    assert torch.equal(mask.bool(), expected)
    [box] = result["boxes"].xyxy.tolist()  # the mask's bounding box, scored by SAM
    ys, xs = torch.nonzero(expected[0, 0], as_tuple=True)
    assert box == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
    torch.testing.assert_close(result["boxes"].scores, scores)


@pytest.mark.parametrize("kind", ["sam2"])  # SAM: in the Boxes node's test below
def test_separate_boxes_give_one_mask_each(folders, kind):
    boxes = [[20, 20, 180, 200], [200, 40, 370, 240]]
    wf = segment_workflow(folders[kind], drawn_boxes="20,20,180,200 200,40,370,240", multimask="single",
                          combine="separate")
    mask = ours(wf)["mask"]
    expected, _ = theirs(folders[kind], kind, multimask=False, input_boxes=[boxes])
    assert tuple(mask.shape) == (2, 1, 256, 384) and torch.equal(mask.bool(), expected)
    wf.set_param("segment", "combine", "union")
    union = ours(wf)["mask"]
    assert tuple(union.shape) == (1, 1, 256, 384) and torch.equal(union.bool(), expected.any(dim=0, keepdim=True))


def test_boxes_from_a_boxes_node_are_object_prompts(folders):
    wf = segment_workflow(folders["sam"], combine="separate", drawn_boxes="1,1,2,2")  # ignored: boxes are linked
    wf.add_node("boxes.value", "boxes", params={"boxes": "30,40,200,230 220,10,380,120"})
    wf.connect("load", "image", "boxes", "image")
    wf.connect("boxes", "boxes", "segment", "boxes")
    mask = ours(wf)["mask"]
    expected, _ = theirs(folders["sam"], "sam", input_boxes=[[[30, 40, 200, 230], [220, 10, 380, 120]]])
    assert tuple(mask.shape) == (2, 1, 256, 384) and torch.equal(mask.bool(), expected)


def test_a_point_to_leave_out_is_a_background_label(folders):
    mask = ours(segment_workflow(folders["sam"], points="150,120 -300,60"))["mask"]
    points = [[[[150, 120], [300, 60]]]]
    expected, _ = theirs(folders["sam"], "sam", input_points=points, input_labels=[[[1, 0]]])
    assert torch.equal(mask.bool(), expected)
    both_kept, _ = theirs(folders["sam"], "sam", input_points=points, input_labels=[[[1, 1]]])
    assert not torch.equal(mask.bool(), both_kept)  # the label reached the model


def test_the_threshold_is_post_processings_mask_threshold(folders):
    mask = ours(segment_workflow(folders["sam2"], points="100,100", threshold=0.5))["mask"]
    expected, _ = theirs(folders["sam2"], "sam2", threshold=0.5, input_points=[[[[100, 100]]]], input_labels=[[[1]]])
    assert torch.equal(mask.bool(), expected)


def test_no_prompt_or_a_bad_one_is_refused_in_words(folders):
    with pytest.raises(nodegraph.NodeFailed, match="Segment has no prompt: click points on the picture"):
        ours(segment_workflow(folders["sam"]))
    with pytest.raises(nodegraph.NodeFailed, match="points: point '3' is not x,y"):
        ours(segment_workflow(folders["sam"], points="1,2 3"))
    with pytest.raises(nodegraph.NodeFailed, match="drawn_boxes: 10,10,500,90 lies outside the 384x256 picture"):
        ours(segment_workflow(folders["sam"], drawn_boxes="10,10,500,90"))


def test_linked_boxes_that_are_empty_or_lie_on_another_picture(folders, tmp_path):
    wf = segment_workflow(folders["sam"])
    wf.add_node("boxes.value", "boxes", params={"boxes": ""})  # e.g. a detector that found nothing
    wf.connect("load", "image", "boxes", "image")
    wf.connect("boxes", "boxes", "segment", "boxes")
    result = ours(wf)
    assert tuple(result["mask"].shape) == (1, 1, 256, 384) and not result["mask"].any() and not len(result["boxes"])
    wf.set_param("segment", "combine", "separate")
    with pytest.raises(nodegraph.NodeFailed, match="the linked boxes are empty, so there are no separate masks"):
        ours(wf)
    Image.new("RGB", (40, 30)).save(tmp_path / "small.png")
    wf.add_node("image.load", "small", params={"path": str(tmp_path / "small.png")})
    wf.connect("small", "image", "boxes", "image")
    wf.set_param("boxes", "boxes", "1,1,20,20")
    with pytest.raises(nodegraph.NodeFailed, match="the boxes lie on a 40x30 picture but the image is 384x256"):
        ours(wf)


def test_a_folder_that_is_not_a_segmenter_is_refused_in_words(tmp_path):
    folder = tiny_models.clip_image_encoder(tmp_path / "clip")
    with pytest.raises(nodegraph.NodeFailed,
                       match="node 'model' failed: .* holds a 'clip' model, not a promptable segmenter"):
        ours(segment_workflow(folder, points="10,10"))


def test_a_new_picture_or_click_reuses_the_loaded_model(folders, tmp_path):
    engine = nodegraph.Engine(device="cpu")
    wf = segment_workflow(folders["sam"], points="150,120")
    engine.run(wf, targets=["segment"])
    Image.open(SAMPLE).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "flipped.png")
    wf.set_param("load", "path", str(tmp_path / "flipped.png"))
    again = engine.run(wf, targets=["segment"])
    assert again.executed == ["load", "segment"] and "model" in again.cached
    wf.set_param("segment", "points", "150,120 -30,30")
    assert engine.run(wf, targets=["segment"]).executed == ["segment"]
