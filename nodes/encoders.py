"""Image encoders: embeddings, zero-shot labels and similarity, with CLIP, SigLIP or DINOv2 from transformers.

Load Image Encoder reads a folder holding a transformers model, its ``preprocessor_config.json`` and,
for zero-shot, its tokenizer; its IMAGE_ENCODER output lives in the engine's cache under its byte budget
like every other model, so several nodes share one load, and replacing the files on disk loads it again.
Loading is offline (``local_files_only=True``); transformers is imported only when a node runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from nodegraph import NodeUserError, Output, Param, PortType as T, node
from nodegraph.imaging import to_pil
from nodegraph.models import MODEL_HINT
from nodegraph.node import Input

from . import _model_files as files

DTYPES = ("auto", "float32", "float16", "bfloat16")
#: config.json model_type -> what the folder holds
KINDS = {"clip": "clip", "clip_vision_model": "clip", "siglip": "siglip", "dinov2": "dinov2"}

MODEL_DESCRIPTION = ("a transformers CLIP, SigLIP or DINOv2 folder with its image processor: "
                     "a path, a name in the model folders, or hf:org/name")


@dataclass(eq=False)
class Encoder:
    """A loaded image encoder: the model, its image processor and, with a text tower, its tokenizer."""

    kind: str  # "clip", "siglip" or "dinov2"
    model: Any
    processor: Any
    tokenizer: Any  # None without a text tower (or when none could be loaded: see tokenizer_error)
    path: str
    dtype: Any
    tokenizer_error: str = ""

    @property
    def has_text(self) -> bool:
        return hasattr(self.model, "get_text_features")


def _identity(params, ctx):
    return files.identity(params["model"], ctx, "clip_vision")


def _load(path, torch_dtype, device) -> Encoder:
    import transformers

    if not path.is_dir():
        raise NodeUserError(f"{path} is not a model folder (an image encoder is a folder with config.json)")
    try:
        config = json.loads((path / "config.json").read_text())
        model_type = config["model_type"]
    except (OSError, ValueError, KeyError):
        raise NodeUserError(f"{path} is not a transformers model folder (no config.json naming its model_type)") from None
    kind = KINDS.get(model_type)
    if kind is None:
        raise NodeUserError(f"{path} holds a {model_type!r} model; image encoders are CLIP, SigLIP or DINOv2")
    architectures = config.get("architectures") or []
    if model_type == "clip_vision_model":
        cls = (transformers.CLIPVisionModelWithProjection if "CLIPVisionModelWithProjection" in architectures
               else transformers.CLIPVisionModel)
    else:
        cls = {"clip": transformers.CLIPModel, "siglip": transformers.SiglipModel,
               "dinov2": transformers.Dinov2Model}[model_type]
    try:
        model = cls.from_pretrained(path, dtype=torch_dtype, local_files_only=True)
    except (OSError, ValueError) as e:
        raise NodeUserError(f"cannot load {path}: {_one_line(e)}") from None
    try:
        processor = transformers.AutoImageProcessor.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise NodeUserError(f"{path} has no usable image processor (preprocessor_config.json): {_one_line(e)}") from None
    tokenizer, tokenizer_error = None, ""
    if hasattr(model, "get_text_features"):  # loaded now, refused only when zero-shot needs it
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        except Exception as e:  # noqa: BLE001 (a missing backend such as sentencepiece raises ImportError)
            tokenizer_error = _one_line(e)
            if kind == "siglip" and "sentencepiece" not in tokenizer_error:
                tokenizer_error += " (SigLIP's spiece.model tokenizer needs the sentencepiece package)"
    model = model.to(device).eval()
    return Encoder(kind, model, processor, tokenizer, str(path), model.dtype, tokenizer_error)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _pixels(encoder: Encoder, image):
    """IMAGE -> the model's pixel_values, through its own image processor."""
    pictures = to_pil(image)
    batch = encoder.processor(images=pictures, return_tensors="pt")
    return batch["pixel_values"].to(device=encoder.model.device, dtype=encoder.dtype)


def _pooled(output):
    """transformers 5 returns a model output whose pooler_output holds the features; older ones a tensor."""
    return output if not hasattr(output, "pooler_output") else output.pooler_output


def _image_features(encoder: Encoder, image):
    import torch

    pixels = _pixels(encoder, image)
    model = encoder.model
    with torch.inference_mode():
        if encoder.kind == "dinov2":
            features = model(pixel_values=pixels).last_hidden_state[:, 0]  # the CLS token
        elif hasattr(model, "get_image_features"):  # CLIPModel, SiglipModel
            features = _pooled(model.get_image_features(pixel_values=pixels))
        else:
            out = model(pixel_values=pixels)
            # CLIPVisionModelWithProjection: projected image_embeds; CLIPVisionModel: pooled output
            features = out.image_embeds if getattr(out, "image_embeds", None) is not None else out.pooler_output
    return features.float()


@node(
    "encode.load",
    title="Load Image Encoder",
    category="analyze/encoders",
    params=[
        Param("model", T.STRING, "", hint=MODEL_HINT, kind="clip_vision", description=MODEL_DESCRIPTION),
        Param("dtype", T.ENUM, "auto", choices=DTYPES, description="auto: float16 on a GPU, float32 on the CPU"),
    ],
    outputs=[Output("encoder", T.IMAGE_ENCODER)],
    identity=_identity,
)
def load_image_encoder(ctx, model, dtype):
    """Load a CLIP, SigLIP or DINOv2 image encoder (with its image processor and, if any, its tokenizer)."""
    path = files.resolve(model, ctx, "clip_vision")
    return {"encoder": _load(path, files.torch_dtype(dtype, ctx.device), ctx.device)}


@node(
    "encode.image",
    title="Image Embedding",
    category="analyze/encoders",
    inputs=[Input("encoder", T.IMAGE_ENCODER), Input("image", T.IMAGE)],
    params=[Param("normalize", T.BOOL, True, description="scale each embedding to unit length")],
    outputs=[Output("embedding", T.EMBEDDING, "float tensor (batch, width), one row per picture")],
)
def image_embedding(ctx, encoder, image, normalize):
    """Embed each picture with a CLIP, SigLIP or DINOv2 image encoder.

    CLIP and SigLIP give their image features (the projected embedding that is compared with text:
    ``get_image_features``, or ``image_embeds`` of a CLIPVisionModelWithProjection). DINOv2 has no
    projection: its embedding is the CLS token of ``last_hidden_state`` (after the final layer norm),
    which is what DINOv2 uses as the global image descriptor. The result is float32 on the engine's device.
    """
    features = _image_features(encoder, image)
    if normalize:
        import torch

        features = torch.nn.functional.normalize(features, dim=-1)
    return {"embedding": features.to(ctx.device)}


def parse_labels(text: str) -> list[str]:
    """One label per line, or, on a single line, labels separated by commas; blanks and repeats dropped."""
    parts = text.splitlines() if "\n" in text.strip() else text.split(",")
    return list(dict.fromkeys(p.strip() for p in parts if p.strip()))


@node(
    "encode.zero_shot",
    title="Zero-shot Labels",
    category="analyze/encoders",
    inputs=[Input("encoder", T.IMAGE_ENCODER, description="CLIP or SigLIP, with its text model"), Input("image", T.IMAGE)],
    params=[
        Param("labels", T.STRING, "", hint="multiline", description="one label per line, or comma-separated"),
        Param("template", T.STRING, "a photo of {}", description="the text each label is put into, at {}"),
    ],
    outputs=[Output("scores", T.STRING, "'label: 0.87' lines for the first picture, best first"),
             Output("best", T.STRING, "the best label for the first picture")],
)
def zero_shot(ctx, encoder, image, labels, template):
    """Score text labels against the picture with CLIP or SigLIP.

    CLIP's scores are a softmax over ``logits_per_image`` (they sum to 1 over the labels); SigLIP is
    trained with a sigmoid loss, so each label is scored on its own with a sigmoid of its logit (the
    scores do not sum to 1). SigLIP's text is padded to the tokenizer's maximum length, as it was trained.
    """
    import torch

    names = parse_labels(labels)
    if not names:
        raise NodeUserError("no labels: write one label per line, or separate them with commas")
    template = template or "{}"
    if "{}" not in template:
        raise NodeUserError(f"template {template!r} has no {{}} where the label goes")
    if not encoder.has_text:
        raise NodeUserError(f"{encoder.path} is a {_kind_name(encoder)} image encoder with no text tower, "
                            "so it cannot score labels: use a CLIP or SigLIP model with its text model")
    if encoder.tokenizer is None:
        raise NodeUserError(f"cannot load the tokenizer of {encoder.path}: {encoder.tokenizer_error or 'none found'}")
    texts = [template.replace("{}", name) for name in names]
    text_config = encoder.model.config.text_config
    max_length = min(int(encoder.tokenizer.model_max_length), int(text_config.max_position_embeddings))
    padding = "max_length" if encoder.kind == "siglip" else True
    tokens = encoder.tokenizer(texts, padding=padding, truncation=True, max_length=max_length, return_tensors="pt")
    device = encoder.model.device
    inputs = {k: tokens[k].to(device) for k in ("input_ids", "attention_mask") if k in tokens}
    pixels = _pixels(encoder, image)
    with torch.inference_mode():
        logits = encoder.model(pixel_values=pixels, **inputs).logits_per_image.float()
    probs = torch.sigmoid(logits) if encoder.kind == "siglip" else logits.softmax(dim=-1)
    first = probs[0].cpu().tolist()
    ranked = sorted(zip(names, first), key=lambda pair: -pair[1])
    return {"scores": "\n".join(f"{name}: {score:.2f}" for name, score in ranked), "best": ranked[0][0]}


def _kind_name(encoder: Encoder) -> str:
    return {"clip": "CLIP vision", "siglip": "SigLIP vision", "dinov2": "DINOv2"}[encoder.kind]


@node(
    "encode.similarity",
    title="Image Similarity",
    category="analyze/encoders",
    inputs=[Input("a", T.EMBEDDING), Input("b", T.EMBEDDING)],
    outputs=[Output("similarity", T.FLOAT, "cosine similarity of the first rows, -1..1"),
             Output("text", T.STRING, "the similarity written with three decimals")],
)
def similarity(ctx, a, b):
    """Cosine similarity of two embeddings (the first picture of each), from the same model."""
    import torch

    rows = []
    for name, value in (("a", a), ("b", b)):
        if not isinstance(value, torch.Tensor) or value.ndim not in (1, 2) or value.numel() == 0:
            raise NodeUserError(f"input '{name}' is not an embedding (a tensor of shape (batch, width))")
        rows.append(value.reshape(-1, value.shape[-1])[0].float())
    if rows[0].shape[0] != rows[1].shape[0]:
        raise NodeUserError(f"embeddings of different widths cannot be compared: a has {rows[0].shape[0]}, "
                            f"b has {rows[1].shape[0]} (use the same model for both)")
    value = float(torch.nn.functional.cosine_similarity(rows[0], rows[1].to(rows[0].device), dim=0))
    return {"similarity": value, "text": f"{value:.3f}"}
