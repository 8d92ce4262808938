"""Image encoder nodes (nodes/encoders.py) with tiny random CLIP, SigLIP and DINOv2 models, run through the engine.

The models are built from configs and saved with ``save_pretrained`` (safetensors) next to their image
processors, in the layout of a Hugging Face model folder; nothing is downloaded. CLIP gets the byte-level BPE
tokenizer of tests/tiny_models.py. SigLIP's real tokenizer is a sentencepiece model (spiece.model), which needs
the sentencepiece package to build or load, and that package is not installed here; so the SigLIP folder holds a
``tokenizers`` WordLevel tokenizer (lower-cased, split on whitespace, ``</s>`` appended as SigLIP does) wrapped in
PreTrainedTokenizerFast and saved as tokenizer.json, which AutoTokenizer loads from the folder.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import shutil  # noqa: E402

import pytest  # noqa: E402
from PIL import Image  # noqa: E402

import nodegraph  # noqa: E402
from nodes import encoders  # noqa: E402
import tiny_models  # noqa: E402
from tiny_models import CLIP_WORDS  # noqa: E402

torch = pytest.importorskip("torch")

HIDDEN, PROJECTION = 32, 16
TOWER = dict(hidden_size=HIDDEN, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)
VISION = dict(image_size=32, patch_size=8, **TOWER)
LABELS = ["red circle", "blue square", "green cat"]


def _clip(folder):
    return tiny_models.clip_image_encoder(folder)


def _clip_vision(folder):
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(3)
    CLIPVisionModelWithProjection(CLIPVisionConfig(projection_dim=PROJECTION, **VISION)).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def _siglip_tokenizer(folder, max_length: int):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in CLIP_WORDS:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="</s>",
                            model_max_length=max_length, model_input_names=["input_ids"]).save_pretrained(folder)


def _siglip(folder):
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    config = SiglipConfig(text_config=dict(vocab_size=64, max_position_embeddings=16, pad_token_id=0, bos_token_id=1,
                                           eos_token_id=1, **TOWER),
                          vision_config=VISION)
    torch.manual_seed(1)
    SiglipModel(config).save_pretrained(folder, safe_serialization=True)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    _siglip_tokenizer(folder, max_length=16)
    return folder


def _dinov2(folder):
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(2)
    Dinov2Model(Dinov2Config(**VISION)).save_pretrained(folder, safe_serialization=True)
    BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, do_convert_rgb=True,
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoders")
    return {
        "clip": str(_clip(root / "clip")),
        "clip_vision": str(_clip_vision(root / "clip_vision")),
        "siglip": str(_siglip(root / "siglip")),
        "dinov2": str(_dinov2(root / "dinov2")),
    }


WIDTHS = {"clip": PROJECTION, "clip_vision": PROJECTION, "siglip": HIDDEN, "dinov2": HIDDEN}


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    root = tmp_path_factory.mktemp("pictures")
    square = Image.new("RGB", (48, 40), (0, 0, 255))
    square.paste((255, 0, 0), (10, 8, 30, 28))
    stripes = Image.new("RGB", (48, 40), (240, 240, 40))
    for x in range(0, 48, 6):
        stripes.paste((20, 140, 20), (x, 0, x + 3, 40))
    paths = {}
    for name, im in {"square": square, "stripes": stripes}.items():
        paths[name] = str(root / f"{name}.png")
        im.save(paths[name])
    return paths


def run(wf, targets, tmp_path, engine=None):
    engine = engine or nodegraph.Engine(device="cpu")
    return engine.run(wf, targets=targets, output_dir=tmp_path / "out")


def encoder(wf, node_id, model):
    """A Load Image Encoder node for ``model`` (reused if the workflow has one of that id)."""
    if node_id not in wf.nodes:
        wf.add_node("encode.load", node_id, params={"model": model})
    return node_id


def embed(wf, node_id, picture, model, **params):
    wf.add_node("image.load", f"{node_id}_load", params={"path": picture})
    wf.add_node("encode.image", node_id, params=params)
    wf.connect(f"{node_id}_load", "image", node_id, "image")
    wf.connect(encoder(wf, f"{node_id}_enc", model), "encoder", node_id, "encoder")


def compare(pictures, model_a, model_b, picture_a="square", picture_b="square"):
    wf = nodegraph.Workflow()
    embed(wf, "ea", pictures[picture_a], model_a)
    embed(wf, "eb", pictures[picture_b], model_b)
    wf.add_node("encode.similarity", "sim")
    wf.connect("ea", "embedding", "sim", "a")
    wf.connect("eb", "embedding", "sim", "b")
    return wf


def zero_shot(pictures, model, labels, template="a photo of {}"):
    wf = nodegraph.Workflow()
    wf.add_node("image.load", "load", params={"path": pictures["square"]})
    wf.add_node("encode.zero_shot", "zs", params={"labels": labels, "template": template})
    wf.connect("load", "image", "zs", "image")
    wf.connect(encoder(wf, "enc", model), "encoder", "zs", "encoder")
    return wf


def failure(wf, target, tmp_path) -> str:
    with pytest.raises(nodegraph.NodeFailed) as info:
        run(wf, [target], tmp_path)
    assert info.value.node == target
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# ----- Image Embedding ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["clip", "clip_vision", "siglip", "dinov2"])
def test_embedding_has_the_model_width_and_unit_norm(models, pictures, tmp_path, kind):
    wf = nodegraph.Workflow()
    embed(wf, "emb", pictures["square"], models[kind])
    embedding = run(wf, ["emb"], tmp_path).outputs["emb"]["embedding"]
    assert embedding.dtype == torch.float32 and embedding.device.type == "cpu"
    assert tuple(embedding.shape) == (1, WIDTHS[kind])
    assert float(embedding.norm(dim=-1)[0]) == pytest.approx(1.0, abs=1e-5)


def test_embedding_without_normalize_is_the_raw_features(models, pictures, tmp_path):
    wf = nodegraph.Workflow()
    embed(wf, "raw", pictures["square"], models["dinov2"], normalize=False)
    embed(wf, "unit", pictures["square"], models["dinov2"], normalize=True)
    out = run(wf, ["raw", "unit"], tmp_path).outputs
    raw, unit = out["raw"]["embedding"], out["unit"]["embedding"]
    assert float(raw.norm()) != pytest.approx(1.0, abs=1e-3)
    assert torch.allclose(raw / raw.norm(dim=-1, keepdim=True), unit, atol=1e-5)


# ----- Image Similarity --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["clip", "siglip", "dinov2"])
def test_same_picture_is_similarity_one_and_different_pictures_less(models, pictures, tmp_path, kind):
    same = run(compare(pictures, models[kind], models[kind]), ["sim"], tmp_path).outputs["sim"]
    assert same["similarity"] == pytest.approx(1.0, abs=1e-5)
    assert same["text"] == "1.000"
    other = run(compare(pictures, models[kind], models[kind], picture_b="stripes"), ["sim"], tmp_path).outputs["sim"]
    assert other["similarity"] < 1.0 - 1e-4
    assert other["text"] == f"{other['similarity']:.3f}"


def test_embeddings_of_different_widths_are_refused_in_words(models, pictures, tmp_path):
    message = failure(compare(pictures, models["clip"], models["dinov2"]), "sim", tmp_path)
    assert "different widths" in message and f"a has {PROJECTION}" in message and f"b has {HIDDEN}" in message


# ----- Zero-shot Labels --------------------------------------------------------------------------


def _scores(text):
    pairs = [line.rsplit(": ", 1) for line in text.splitlines()]
    return [(label, float(score)) for label, score in pairs]


def test_clip_zero_shot_scores_every_label_summing_to_one(models, pictures, tmp_path):
    out = run(zero_shot(pictures, models["clip"], "\n".join(LABELS) + "\n"), ["zs"], tmp_path).outputs["zs"]
    scores = _scores(out["scores"])
    assert sorted(label for label, _ in scores) == sorted(LABELS)
    assert sum(score for _, score in scores) == pytest.approx(1.0, abs=0.005 * len(LABELS))
    assert [s for _, s in scores] == sorted((s for _, s in scores), reverse=True)  # best first
    assert out["best"] in LABELS and out["best"] == scores[0][0]


def test_siglip_zero_shot_scores_each_label_with_a_sigmoid(models, pictures, tmp_path):
    out = run(zero_shot(pictures, models["siglip"], ", ".join(LABELS)), ["zs"], tmp_path).outputs["zs"]
    scores = _scores(out["scores"])
    assert sorted(label for label, _ in scores) == sorted(LABELS)
    assert all(0.0 <= score <= 1.0 for _, score in scores)
    assert out["best"] in LABELS and out["best"] == scores[0][0]


def test_zero_shot_labels_parse_lines_or_commas():
    assert encoders.parse_labels("cat\n dog \n\ncat\n") == ["cat", "dog"]
    assert encoders.parse_labels(" cat, dog ,,bird") == ["cat", "dog", "bird"]
    assert encoders.parse_labels("a cat, sleeping\na dog") == ["a cat, sleeping", "a dog"]
    assert encoders.parse_labels(" \n , ") == []


def test_dinov2_zero_shot_is_refused_in_words(models, pictures, tmp_path):
    message = failure(zero_shot(pictures, models["dinov2"], "cat, dog"), "zs", tmp_path)
    assert "DINOv2" in message and "no text tower" in message


def test_empty_labels_are_refused_in_words(models, pictures, tmp_path):
    message = failure(zero_shot(pictures, models["clip"], " \n , "), "zs", tmp_path)
    assert "no labels" in message


def test_a_folder_that_is_not_an_image_encoder_is_refused_in_words(pictures, tmp_path):
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')
    wf = nodegraph.Workflow()
    embed(wf, "emb", pictures["square"], str(folder))
    message = failure(wf, "emb_enc", tmp_path)
    assert "'bert'" in message and "CLIP, SigLIP or DINOv2" in message
    wf.set_param("emb_enc", "model", str(tmp_path / "nowhere"))
    assert "not found" in failure(wf, "emb_enc", tmp_path)


# ----- loading once, reloading when the files change ---------------------------------------------


def test_nodes_sharing_a_model_load_it_once(models, pictures, tmp_path):
    wf = nodegraph.Workflow()
    encoder(wf, "enc", models["clip"])
    for node_id, picture in (("e1", "square"), ("e2", "stripes")):
        wf.add_node("image.load", f"{node_id}_load", params={"path": pictures[picture]})
        wf.add_node("encode.image", node_id)
        wf.connect(f"{node_id}_load", "image", node_id, "image")
        wf.connect("enc", "encoder", node_id, "encoder")
    wf.add_node("encode.zero_shot", "zs", params={"labels": "cat, dog"})
    wf.connect("e1_load", "image", "zs", "image")
    wf.connect("enc", "encoder", "zs", "encoder")
    engine = nodegraph.Engine(device="cpu")
    result = run(wf, ["e1", "e2", "zs"], tmp_path, engine)
    assert {"e1", "e2", "zs"} <= set(result.executed) and result.executed.count("enc") == 1
    assert engine.cache.resident_bytes >= sum(  # the loaded model counts against the engine's budget
        p.numel() * p.element_size() for p in result.outputs["enc"]["encoder"].model.parameters())


def test_touching_the_weights_reruns_the_loader_and_says_why(models, pictures, tmp_path):
    folder = tmp_path / "dino_copy"
    shutil.copytree(models["dinov2"], folder)
    wf = nodegraph.Workflow()
    embed(wf, "emb", pictures["square"], str(folder))
    engine = nodegraph.Engine(device="cpu")
    first = run(wf, ["emb"], tmp_path, engine)
    assert "emb" in first.executed
    assert "emb" in run(wf, ["emb"], tmp_path, engine).cached

    weights = folder / "model.safetensors"
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    again = run(wf, ["emb"], tmp_path, engine)
    assert again.executed[0] == "emb_enc" and again.reasons["emb_enc"] == "its input file changed"
    assert torch.allclose(again.outputs["emb"]["embedding"], first.outputs["emb"]["embedding"])
