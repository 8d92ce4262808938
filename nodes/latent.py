"""Between pixels and latents: Empty Latent, VAE Encode, VAE Decode (tiled for large pictures), Inpaint Encode."""

from __future__ import annotations

from contextlib import contextmanager

from nodegraph import Input, NodeUserError, Output, Param, PortType as T, node

from ._diffusion_types import Latent

MAX_SIDE = 16384


@node(
    "latent.empty",
    title="Empty Latent",
    category="generate/latent",
    inputs=[Input("vae", T.VAE, description="decides the latent size and channels")],
    params=[
        Param("width", T.INT, 512, min=8, max=MAX_SIDE, step=8),
        Param("height", T.INT, 512, min=8, max=MAX_SIDE, step=8),
        Param("batch_size", T.INT, 1, min=1, max=64),
    ],
    outputs=[Output("latent", T.LATENT)],
)
def empty_latent(ctx, vae, width, height, batch_size):
    """The starting point of text-to-image: a blank latent the Sampler fills with noise."""
    import torch

    f = vae.downscale
    if width % f or height % f:
        raise NodeUserError(f"width and height must be multiples of {f} for this VAE, got {width}x{height}")
    samples = torch.zeros(batch_size, vae.latent_channels, height // f, width // f, device=ctx.device)
    return {"latent": Latent(samples, vae.latent_channels, meta={"empty": True, "pixel_size": (height, width)})}


@contextmanager
def _tiling(vae, tiled: bool, tile_size: int):
    """Turn diffusers' tiled encode/decode on for one call; the module is shared through the cache, so its
    own tiling settings are put back afterwards. Tiles overlap by a quarter, as AutoencoderKL's do."""
    module = vae.module
    if not tiled:
        yield
        return
    if vae.kind == "qwen":
        raise NodeUserError("tiled encoding and decoding is not available for Qwen-Image's VAE yet; switch tiled off")
    if vae.kind == "tiny":
        raise NodeUserError("a tiny VAE (AutoencoderTiny) needs little memory and decodes whole pictures; switch "
                            "tiled off")
    if vae.kind == "dc":
        names = ("tile_sample_min_height", "tile_sample_min_width", "tile_sample_stride_height",
                 "tile_sample_stride_width", "tile_latent_min_height", "tile_latent_min_width")
        f = module.spatial_compression_ratio
        stride = max(f, (tile_size * 3 // 4) // f * f)
        saved = {n: getattr(module, n) for n in names}
        module.enable_tiling(tile_sample_min_height=tile_size, tile_sample_min_width=tile_size,
                             tile_sample_stride_height=stride, tile_sample_stride_width=stride)
    else:
        names = ("tile_sample_min_size", "tile_latent_min_size")
        saved = {n: getattr(module, n) for n in names}
        module.tile_sample_min_size, module.tile_latent_min_size = tile_size, tile_size // vae.downscale
        module.enable_tiling()
    try:
        yield
    finally:
        module.disable_tiling()
        for name, value in saved.items():
            setattr(module, name, value)


def encode(vae, image, tiled=False, tile_size=512):
    """IMAGE in [0, 1] -> scaled latents (the distribution's mean, so the same picture gives the same latent)."""
    import torch

    f = vae.downscale
    if image.shape[-1] % f or image.shape[-2] % f:
        raise NodeUserError(f"the picture is {image.shape[-1]}x{image.shape[-2]}; this VAE needs sides that are "
                            f"multiples of {f} (resize or crop it first)")
    x = (image.to(device=vae.module.device, dtype=vae.module.dtype) * 2 - 1)
    with torch.inference_mode(), _tiling(vae, tiled, tile_size):
        out = vae.module.encode(x.unsqueeze(2) if vae.kind == "qwen" else x)  # Qwen's: a one-frame clip
    if hasattr(out, "latent_dist"):  # AutoencoderKL
        raw = out.latent_dist.mode()
    else:  # AutoencoderDC's latent; AutoencoderTiny's latents
        raw = out.latents if hasattr(out, "latents") else out.latent
    return vae.scaled(raw[:, :, 0] if vae.kind == "qwen" else raw)


@node(
    "vae.encode",
    title="VAE Encode",
    category="generate/latent",
    inputs=[Input("vae", T.VAE), Input("image", T.IMAGE)],
    params=[Param("tiled", T.BOOL, False), Param("tile_size", T.INT, 512, min=64, max=4096, step=64)],
    outputs=[Output("latent", T.LATENT)],
)
def vae_encode(ctx, vae, image, tiled, tile_size):
    """Turn a picture into a latent, for img2img."""
    samples = encode(vae, image, tiled, tile_size)
    return {"latent": Latent(samples, vae.latent_channels, meta={"pixel_size": tuple(image.shape[-2:])})}


@node(
    "vae.decode",
    title="VAE Decode",
    category="generate/latent",
    inputs=[Input("vae", T.VAE), Input("latent", T.LATENT)],
    params=[
        Param("tiled", T.BOOL, False, description="decode in overlapping tiles so large pictures fit in memory"),
        Param("tile_size", T.INT, 512, min=64, max=4096, step=64),
    ],
    outputs=[Output("image", T.IMAGE)],
)
def vae_decode(ctx, vae, latent, tiled, tile_size):
    """Turn a latent into a picture; after inpainting, the unmasked pixels are the input's, exactly."""
    import torch

    if latent.channels != vae.latent_channels:
        raise NodeUserError(f"the latent has {latent.channels} channels but this VAE decodes "
                            f"{vae.latent_channels}: use the VAE that made it")
    z = vae.unscaled(latent.samples.to(device=vae.module.device, dtype=vae.module.dtype))
    with torch.inference_mode(), _tiling(vae, tiled, tile_size):
        if vae.kind == "qwen":
            decoded = vae.module.decode(z.unsqueeze(2)).sample[:, :, 0]
        else:
            decoded = vae.module.decode(z).sample
    image = (decoded.float() / 2 + 0.5).clamp(0, 1).to(ctx.device)
    if latent.source_image is not None:
        source = latent.source_image.to(image.device)
        mask = latent.source_mask.to(image.device)
        if source.shape[-2:] == image.shape[-2:]:
            blended = source * (1 - mask) + image * mask
            image = torch.where(mask > 0, blended, source.expand_as(image))
    return {"image": image}


@node(
    "latent.inpaint_encode",
    title="Inpaint Encode",
    category="generate/latent",
    inputs=[Input("vae", T.VAE), Input("image", T.IMAGE), Input("mask", T.MASK, description="1 where to repaint")],
    params=[Param("tiled", T.BOOL, False), Param("tile_size", T.INT, 512, min=64, max=4096, step=64)],
    outputs=[Output("latent", T.LATENT)],
)
def inpaint_encode(ctx, vae, image, mask, tiled, tile_size):
    """Prepare a picture and a mask for inpainting or outpainting with any model."""
    import torch.nn.functional as F

    if mask.shape[-2:] != image.shape[-2:]:
        raise NodeUserError(f"the mask is {mask.shape[-1]}x{mask.shape[-2]} but the picture is "
                            f"{image.shape[-1]}x{image.shape[-2]}")
    mask = mask.to(image.device)
    samples = encode(vae, image, tiled, tile_size)
    blanked = image * (mask < 0.5) + 0.5 * (mask >= 0.5)  # grey where the model must paint, as diffusers does
    masked = encode(vae, blanked, tiled, tile_size)
    small = F.interpolate(mask.float(), size=samples.shape[-2:]).to(samples.dtype)
    meta = {"pixel_size": tuple(image.shape[-2:])}
    return {"latent": Latent(samples, vae.latent_channels, small, masked, image, mask, meta)}


@node(
    "latent.set_mask",
    title="Set Latent Mask",
    category="generate/latent",
    inputs=[Input("latent", T.LATENT), Input("mask", T.MASK, description="1 where the Sampler may change the picture")],
    outputs=[Output("latent", T.LATENT)],
)
def set_mask(ctx, latent, mask):
    """Limit sampling to the masked area: outside it the Sampler keeps the input latent (ComfyUI's noise mask)."""
    import dataclasses

    import torch.nn.functional as F

    small = F.interpolate(mask.float().to(latent.samples.device), size=latent.samples.shape[-2:], mode="bilinear")
    return {"latent": dataclasses.replace(latent, mask=small.to(latent.samples.dtype), masked=None,
                                          source_image=None, source_mask=None, meta=dict(latent.meta))}


def _pixels_per_latent(latent) -> int:
    """Picture pixels per latent pixel along a side, from the size the latent stands for (8 when unknown)."""
    return latent.meta.get("pixel_size", (0,))[0] // latent.samples.shape[-2] or 8


LATENT_METHODS = {"nearest": "nearest-exact", "bilinear": "bilinear", "bicubic": "bicubic", "area": "area"}


def _resized(latent, height: int, width: int, method: str):
    """The latent interpolated to (height, width) latent pixels; a mask goes along, inpainting pixels do not."""
    import dataclasses

    import torch.nn.functional as F

    mode = LATENT_METHODS[method]
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    samples = F.interpolate(latent.samples.float(), size=(height, width), mode=mode, **kwargs)
    mask = None
    if latent.mask is not None:
        mask = F.interpolate(latent.mask.float(), size=(height, width), mode="bilinear").to(latent.samples.dtype)
    f = _pixels_per_latent(latent)
    meta = {k: v for k, v in latent.meta.items() if k != "empty"}
    meta["pixel_size"] = (height * f, width * f)
    return dataclasses.replace(latent, samples=samples.to(latent.samples.dtype), mask=mask, masked=None,
                               source_image=None, source_mask=None, meta=meta)


@node(
    "latent.resize",
    title="Resize Latent",
    category="generate/latent",
    inputs=[Input("latent", T.LATENT)],
    params=[
        Param("width", T.INT, 1024, min=8, max=MAX_SIDE, step=8, description="in pixels of the decoded picture"),
        Param("height", T.INT, 1024, min=8, max=MAX_SIDE, step=8),
        Param("method", T.ENUM, "nearest", choices=tuple(LATENT_METHODS)),
    ],
    outputs=[Output("latent", T.LATENT)],
)
def resize_latent(ctx, latent, width, height, method):
    """Resize a latent for a second, higher-resolution pass (hires fix) without decoding it."""
    f = _pixels_per_latent(latent)
    if width % f or height % f:
        raise NodeUserError(f"width and height must be multiples of {f} for this latent, got {width}x{height}")
    return {"latent": _resized(latent, height // f, width // f, method)}


@node(
    "latent.scale",
    title="Scale Latent",
    category="generate/latent",
    inputs=[Input("latent", T.LATENT)],
    params=[
        Param("factor", T.FLOAT, 1.5, min=0.05, max=8.0, step=0.05),
        Param("method", T.ENUM, "nearest", choices=tuple(LATENT_METHODS)),
    ],
    outputs=[Output("latent", T.LATENT)],
)
def scale_latent(ctx, latent, factor, method):
    """Scale a latent by a factor (sides rounded to whole latent pixels), for a hires pass."""
    h, w = latent.samples.shape[-2:]
    return {"latent": _resized(latent, max(1, round(h * factor)), max(1, round(w * factor)), method)}
