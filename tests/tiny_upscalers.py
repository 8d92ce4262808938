"""Tiny random-weight upscale models of real architectures, in the layouts their released files use.

- Real-ESRGAN's RRDBNet (the xinntao/basicsr layout of ``RealESRGAN_x4plus.pth`` and ``RealESRGAN_x2plus.pth``:
  ``conv_first``, ``body.N.rdbM.convK``, ``conv_body``, ``conv_up1/2``, ``conv_hr``, ``conv_last``; the x2 model
  pixel-unshuffles its input, so its first convolution takes 12 channels), written tensor by tensor from the
  shapes basicsr gives them.
- Real-ESRGAN's SRVGGNetCompact (``realesr-general-x4v3.pth``: ``body.N`` convolutions and PReLUs, the last
  convolution feeding a pixel shuffle), also written from its shapes.
- SwinIR (classical SR with a pixel-shuffle upsampler), from the module spandrel ports from the official code,
  whose state-dict keys (buffers such as ``attn_mask`` and ``relative_position_index`` included) are those of
  the released checkpoints.

Released ``.pth`` files wrap the state dict in ``{"params_ema": ...}`` (Real-ESRGAN) or ``{"params": ...}``
(SwinIR, Compact); :func:`write_pth` does the same with ``torch.save`` of plain tensors.
"""

from __future__ import annotations

from pathlib import Path

import torch

GROW = 32  # RRDBNet's growth channels: basicsr's default, and the one spandrel's port assumes


def _conv(sd: dict, name: str, out_ch: int, in_ch: int, gen: torch.Generator, gain: float = 1.0) -> None:
    fan_in = in_ch * 9
    sd[f"{name}.weight"] = torch.randn(out_ch, in_ch, 3, 3, generator=gen) * (gain * (2.0 / fan_in) ** 0.5)
    sd[f"{name}.bias"] = torch.randn(out_ch, generator=gen) * 0.01


def realesrgan_state_dict(scale: int = 2, features: int = 8, blocks: int = 1, seed: int = 0,
                          channels: int = 3) -> dict:
    """RRDBNet in basicsr's layout: ``scale`` 4 takes the picture as it is, 2 and 1 pixel-unshuffle it first
    (4 or 16 times the channels); the network itself always upsamples 4x."""
    unshuffle = {4: 1, 2: 2, 1: 4}[scale]
    gen = torch.Generator().manual_seed(seed)
    sd: dict = {}
    _conv(sd, "conv_first", features, channels * unshuffle**2, gen)
    for b in range(blocks):
        for r in (1, 2, 3):
            for k in range(1, 6):
                out_ch = GROW if k < 5 else features
                _conv(sd, f"body.{b}.rdb{r}.conv{k}", out_ch, features + (k - 1) * GROW, gen, gain=0.1)
    _conv(sd, "conv_body", features, features, gen)
    _conv(sd, "conv_up1", features, features, gen)
    _conv(sd, "conv_up2", features, features, gen)
    _conv(sd, "conv_hr", features, features, gen)
    _conv(sd, "conv_last", channels, features, gen, gain=0.05)
    sd["conv_last.bias"] += 0.5  # outputs around mid-grey, so few pixels are clamped to 0 or 1
    return sd


def compact_state_dict(scale: int = 4, features: int = 8, convs: int = 2, seed: int = 0) -> dict:
    """SRVGGNetCompact: a convolution and a PReLU, ``convs`` more of each, then a convolution to
    3 * scale**2 channels for the pixel shuffle."""
    gen = torch.Generator().manual_seed(seed)
    sd: dict = {}
    _conv(sd, "body.0", features, 3, gen)
    sd["body.1.weight"] = torch.full((features,), 0.25)
    for i in range(convs):
        _conv(sd, f"body.{2 + 2 * i}", features, features, gen)
        sd[f"body.{3 + 2 * i}.weight"] = torch.rand(features, generator=gen) * 0.5
    _conv(sd, f"body.{2 + 2 * convs}", 3 * scale**2, features, gen, gain=0.2)
    return sd


def swinir_state_dict(scale: int = 2, seed: int = 0) -> dict:
    """A one-layer SwinIR (12 channels, 2 heads, 4-pixel windows) with a pixel-shuffle upsampler."""
    from spandrel.architectures.SwinIR import SwinIR

    torch.manual_seed(seed)
    model = SwinIR(img_size=16, in_chans=3, embed_dim=12, depths=[2], num_heads=[2], window_size=4, mlp_ratio=2.0,
                   upscale=scale, upsampler="pixelshuffle", resi_connection="1conv")
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def write_safetensors(state_dict: dict, path: Path) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))
    return path


def write_pth(state_dict: dict, path: Path, wrap: str | None = "params_ema") -> Path:
    """``torch.save`` of the plain state dict, wrapped under ``wrap`` as the released files are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({wrap: state_dict} if wrap else state_dict, str(path))
    return path


def demo_esrgan_x2(path: Path) -> Path:
    """The example workflow's ``demo-esrgan-x2.safetensors``: a tiny 2x Real-ESRGAN."""
    return write_safetensors(realesrgan_state_dict(scale=2), path)


def lama_state_dict() -> dict:
    """LaMa (big-LaMa's layout: an inpainting model, which spandrel loads as a MaskedImageModelDescriptor),
    all zeros: its size is fixed (51 M parameters), so it is shaped on the meta device and filled cheaply."""
    from spandrel.architectures.LaMa import LaMa

    with torch.device("meta"):
        model = LaMa(in_nc=4, out_nc=3)
    return {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in model.state_dict().items()}


def swin2sr(folder: Path, scale: int = 2, channels: int = 3, seed: int = 0) -> Path:
    """A tiny transformers Swin2SR folder (classical SR: one residual Swin group of 2 layers, 8 channels, 4x4
    windows, pixel-shuffle upsampler) with its Swin2SRImageProcessor, as save_pretrained writes the hub's
    caidas/swin2SR-* checkpoints."""
    from transformers import Swin2SRConfig, Swin2SRForImageSuperResolution, Swin2SRImageProcessor

    config = Swin2SRConfig(image_size=32, num_channels=channels, num_channels_out=channels, embed_dim=8, depths=[2],
                           num_heads=[2], window_size=4, mlp_ratio=2.0, upscale=scale, upsampler="pixelshuffle")
    torch.manual_seed(seed)
    Swin2SRForImageSuperResolution(config).eval().save_pretrained(folder)
    Swin2SRImageProcessor().save_pretrained(folder)
    return folder
