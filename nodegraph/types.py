"""Port types and the one rule that says which links are legal.

The GUI (dimming sockets while a link is dragged), the workflow validator and
the engine all call :func:`compatible`; nothing else decides link legality.
"""

from __future__ import annotations

import enum


class PortType(str, enum.Enum):
    IMAGE = "IMAGE"  # tensor (batch, 3, height, width), float in [0, 1]
    MASK = "MASK"  # tensor (batch, 1, height, width), float in [0, 1]
    LATENT = "LATENT"
    CONDITIONING = "CONDITIONING"
    MODEL = "MODEL"
    VAE = "VAE"
    TEXT_ENCODER = "TEXT_ENCODER"
    CONTROLNET = "CONTROLNET"
    EMBEDDING = "EMBEDDING"
    IMAGE_ENCODER = "IMAGE_ENCODER"  # a loaded CLIP / SigLIP / DINOv2 image encoder (analyze stage, IP-Adapter)
    DEPTH_MODEL = "DEPTH_MODEL"  # a loaded depth estimator (Depth Anything, DPT) and its image processor
    UPSCALE_MODEL = "UPSCALE_MODEL"  # a loaded super-resolution / restoration model (ESRGAN, SwinIR, ... via spandrel)
    SEGMENT_MODEL = "SEGMENT_MODEL"  # a loaded promptable segmenter (SAM, SAM 2) and its processor
    DETECT_MODEL = "DETECT_MODEL"  # a loaded text -> boxes detector (Grounding DINO, OWL-ViT) and its processor
    CLIPSEG_MODEL = "CLIPSEG_MODEL"  # a loaded CLIPSeg text -> mask model and its processor
    VLM = "VLM"  # a loaded vision-language model (Florence-2) and its processor
    BOXES = "BOXES"  # nodes.boxes.Boxes: pixel boxes (x0, y0, x1, y1) on one picture, with labels and scores
    INT = "INT"
    FLOAT = "FLOAT"
    STRING = "STRING"
    BOOL = "BOOL"
    ENUM = "ENUM"
    SEED = "SEED"

    def __str__(self) -> str:  # "IMAGE", not "PortType.IMAGE", in messages
        return self.value


#: Types a parameter (a widget in the editor) can have.
SCALAR_TYPES = frozenset(
    {PortType.INT, PortType.FLOAT, PortType.STRING, PortType.BOOL, PortType.ENUM, PortType.SEED}
)

# Widening conversions a link may make on its own; everything else must match exactly.
_IMPLICIT = {
    (PortType.INT, PortType.FLOAT),
    (PortType.INT, PortType.SEED),
    (PortType.SEED, PortType.INT),
    (PortType.STRING, PortType.ENUM),  # checked against the choices when the node runs
    (PortType.ENUM, PortType.STRING),
}


def compatible(source: PortType, target: PortType) -> bool:
    """True when an output of type ``source`` may feed an input of type ``target``."""
    return source == target or (source, target) in _IMPLICIT


def why_incompatible(source: PortType, target: PortType) -> str | None:
    """A sentence for the user when a link is refused, or None when it is legal."""
    if compatible(source, target):
        return None
    return f"an {source} output cannot feed an {target} input"
