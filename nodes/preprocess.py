"""ControlNet Preprocessor: turn a picture into a control picture (edges, lines, depth, pose, ...) with controlnet-aux.

Detectors that need weights load them only from a local folder (``weights``), never from the hub; a
loaded detector is kept in a small module-level cache keyed by detector, folder and the weight files'
modification times, so re-running the node does not reload it.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from nodegraph import cache
from nodegraph import NodeUserError, Output, Param, PortType as T, node
from nodegraph.imaging import from_pil, to_pil
from nodegraph.node import Input

_THRESHOLDS = frozenset({"low_threshold", "high_threshold"})
_RESOLUTIONS = frozenset({"detect_resolution", "image_resolution"})
_DETECT = frozenset({"detect_resolution"})


@dataclass(frozen=True)
class _Detector:
    """How to build and call one controlnet-aux detector."""

    cls: str  # "module:Class" inside controlnet_aux
    takes: frozenset = frozenset()  # which of the node's numeric params the detector's __call__ accepts
    files: tuple[str, ...] = ()  # weight files the folder must hold (empty: no weights needed)
    load: dict = field(default_factory=dict)  # extra from_pretrained arguments
    call: dict = field(default_factory=dict)  # extra __call__ arguments
    array: bool = False  # takes and returns a numpy array instead of a PIL image
    seeded: bool = False  # draws from numpy's global random generator
    thin_lines: bool = False  # one-pixel lines: widen them before shrinking so they stay white


_OPENPOSE_FILES = ("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth")
_LINEART_FILES = ("sk_model.pth", "sk_model2.pth")

DETECTORS: dict[str, _Detector] = {
    # no weights
    "canny": _Detector("canny:CannyDetector", _THRESHOLDS | _RESOLUTIONS, thin_lines=True),
    "content_shuffle": _Detector("shuffle:ContentShuffleDetector", _RESOLUTIONS, seeded=True),
    "color_shuffle": _Detector("shuffle:ColorShuffleDetector", array=True, seeded=True),
    "downsample": _Detector("shuffle:DownSampleDetector", array=True, seeded=True),
    "lineart_standard": _Detector("lineart_standard:LineartStandardDetector", _DETECT),
    # weights from a local folder (the file names are those of lllyasviel/Annotators unless noted)
    "hed": _Detector("hed:HEDdetector", _RESOLUTIONS, ("ControlNetHED.pth",)),
    "pidinet": _Detector("pidi:PidiNetDetector", _RESOLUTIONS, ("table5_pidinet.pth",)),
    "lineart": _Detector("lineart:LineartDetector", _RESOLUTIONS, _LINEART_FILES),
    "lineart_coarse": _Detector("lineart:LineartDetector", _RESOLUTIONS, _LINEART_FILES, call={"coarse": True}),
    "lineart_anime": _Detector("lineart_anime:LineartAnimeDetector", _RESOLUTIONS, ("netG.pth",)),
    "mlsd": _Detector("mlsd:MLSDdetector", _RESOLUTIONS, ("mlsd_large_512_fp32.pth",), thin_lines=True),
    "teed": _Detector("teed:TEEDdetector", _DETECT, ("5_model.pth",), load={"filename": "5_model.pth"}),  # fal-ai/teed
    "anyline": _Detector("anyline:AnylineDetector", _DETECT, ("MTEED.pth",), load={"filename": "MTEED.pth"}),  # MistoLine
    "depth_midas": _Detector("midas:MidasDetector", _RESOLUTIONS, ("dpt_hybrid-midas-501f0c75.pt",)),
    "depth_zoe": _Detector("zoe:ZoeDetector", _RESOLUTIONS, ("ZoeD_M12_N.pt",)),
    "normal_bae": _Detector("normalbae:NormalBaeDetector", _RESOLUTIONS, ("scannet.pt",)),
    "openpose": _Detector("open_pose:OpenposeDetector", _RESOLUTIONS, _OPENPOSE_FILES,
                          call={"include_body": True, "include_hand": False, "include_face": False}),
    "openpose_full": _Detector("open_pose:OpenposeDetector", _RESOLUTIONS, _OPENPOSE_FILES,
                               call={"include_body": True, "include_hand": True, "include_face": True}),
}

# Loaded detectors: (class, load arguments, resolved folder, weight files' mtimes) -> detector object.
# Detectors sharing weights (lineart / lineart_coarse, openpose / openpose_full) share one entry.
_LOADED: dict[tuple, Any] = {}
_MAX_LOADED = 4
_LOCK = threading.RLock()  # guards _LOADED, numpy's global random state and moving a shared detector between devices


def _forget_detectors() -> None:
    with _LOCK:
        _LOADED.clear()


cache.on_release(_forget_detectors)  # the device ran out of memory: let the loaded detectors go too


def _controlnet_aux():
    """Import controlnet_aux (slow, and noisy with warnings) on first use."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import controlnet_aux

    return controlnet_aux


def _detector_class(spec: _Detector):
    import importlib

    _controlnet_aux()
    module, name = spec.cls.split(":")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(importlib.import_module(f"controlnet_aux.{module}"), name)


def _weight_files(detector: str, spec: _Detector, weights: str, ctx) -> tuple[Path, list[Path]]:
    """The weights folder and the detector's files in it; NodeUserError naming what is missing."""
    needs = ", ".join(spec.files)
    if not weights.strip():
        raise NodeUserError(f"detector '{detector}' needs weights: set 'weights' to a folder holding {needs}")
    folder = ctx.input_path(weights.strip())
    if not folder.is_dir():
        raise NodeUserError(f"detector '{detector}': weights folder {folder} does not exist (it must hold {needs})")
    paths = [folder / name for name in spec.files]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise NodeUserError(f"detector '{detector}': {folder} lacks {', '.join(missing)} (it must hold {needs})")
    return folder.resolve(), paths


def _identity(params, ctx):
    """Weight files' size and mtime: replacing the weights re-runs the node."""
    spec = DETECTORS.get(params["detector"])
    if spec is None or not spec.files or not params["weights"].strip():
        return None
    folder = ctx.input_path(params["weights"].strip())
    out = {}
    for name in spec.files:
        try:
            st = (folder / name).stat()
            out[name] = [st.st_size, st.st_mtime_ns]
        except OSError:
            out[name] = None
    return {"folder": str(folder), "files": out}


def _load(detector: str, spec: _Detector, weights: str, ctx):
    folder, paths = _weight_files(detector, spec, weights, ctx)
    mtimes = tuple(p.stat().st_mtime_ns for p in paths)
    stem = (spec.cls, tuple(sorted(spec.load.items())), str(folder))
    key = stem + (mtimes,)
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        cls = _detector_class(spec)
        try:
            # Some detectors print progress while building their networks: keep stdout clean for the CLI.
            with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
                warnings.simplefilter("ignore")
                loaded = cls.from_pretrained(str(folder), **spec.load)  # a local folder only: never the hub
        except MemoryError:
            raise
        except Exception as e:  # a damaged or mismatched checkpoint
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise NodeUserError(f"detector '{detector}': cannot load the weights in {folder}: {first[:300]}") from None
        for old in [k for k in _LOADED if k[:3] == stem]:  # the same folder's older weights
            del _LOADED[old]
        while len(_LOADED) >= _MAX_LOADED:
            del _LOADED[next(iter(_LOADED))]
        _LOADED[key] = loaded
        return loaded


def _to_rgb(result) -> Image.Image:
    """A detector's result (PIL image or HxW / HxWxC array) -> RGB PIL image."""
    if isinstance(result, Image.Image):
        return result.convert("RGB")
    array = np.asarray(result)
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(np.ascontiguousarray(array)).convert("RGB")


def _fit(out: Image.Image, size: tuple[int, int], thin_lines: bool) -> Image.Image:
    """Resize a detector's result to the picture's size, so the control picture lines up with it."""
    if out.size == size:
        return out
    shrink = max(out.width / size[0], out.height / size[1])
    if thin_lines and shrink > 1:
        # A one-pixel line shrunk n times would come out 1/n as bright (or vanish): widen it to about n pixels first.
        out = out.filter(ImageFilter.MaxFilter(2 * math.ceil((shrink - 1) / 2) + 1))
    return out.resize(size, Image.Resampling.BILINEAR)


@contextlib.contextmanager
def _seeded(seed: int):
    """Seed numpy's global random generator (which the shuffle detectors draw from), then put it back."""
    with _LOCK:
        saved = np.random.get_state()
        np.random.seed([seed & 0xFFFFFFFF, seed >> 32])  # the whole 64-bit seed
        try:
            yield
        finally:
            np.random.set_state(saved)


@node(
    "control.preprocess",
    title="ControlNet Preprocessor",
    category="analyze/control",
    inputs=[Input("image", T.IMAGE)],
    outputs=[Output("image", T.IMAGE, "the control picture, the input's size")],
    params=[
        Param("detector", T.ENUM, "canny", choices=tuple(DETECTORS),
              description="canny, content_shuffle, color_shuffle, downsample and lineart_standard need no weights"),
        Param("weights", T.STRING, "", hint="folder",
              description="local folder holding the detector's weights; required only for weight-needing detectors; "
                          "relative to the workflow"),
        Param("low_threshold", T.INT, 100, min=0, max=255, description="canny: weaker edges kept only beside strong ones"),
        Param("high_threshold", T.INT, 200, min=0, max=255, description="canny: edges this strong are always kept"),
        Param("detect_resolution", T.INT, 512, min=64, max=4096, step=64,
              description="short side the detector works at"),
        Param("image_resolution", T.INT, 512, min=64, max=4096, step=64,
              description="short side the detector renders at; the result is then resized to the input's size"),
        Param("seed", T.SEED, 0, description="shuffle and downsample: the same seed gives the same picture"),
    ],
    identity=_identity,
)
def preprocess(ctx, image, detector, weights, low_threshold, high_threshold, detect_resolution, image_resolution, seed):
    """Make a control picture for a ControlNet: edges, lines, shuffles, depth or pose, at the input's size."""
    spec = DETECTORS[detector]
    if spec.files:
        instance = _load(detector, spec, weights, ctx)
    else:
        instance = _detector_class(spec)()

    values = {
        "low_threshold": low_threshold,
        "high_threshold": high_threshold,
        "detect_resolution": detect_resolution,
        "image_resolution": image_resolution,
    }
    kwargs = {name: values[name] for name in spec.takes}
    kwargs.update(spec.call)

    def run_one(picture: Image.Image) -> Image.Image:
        ctx.check_cancelled()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = instance(np.asarray(picture) if spec.array else picture, **kwargs)
        return _fit(_to_rgb(result), picture.size, spec.thin_lines)

    pictures = to_pil(image)
    if spec.seeded:
        with _seeded(seed):
            outs = [run_one(p) for p in pictures]
    elif spec.files:
        with _LOCK:  # one detector object may be shared by runs on different devices
            if hasattr(instance, "to"):
                instance.to(ctx.device)
            outs = [run_one(p) for p in pictures]
    else:
        outs = [run_one(p) for p in pictures]
    return {"image": from_pil(outs, image.device)}
