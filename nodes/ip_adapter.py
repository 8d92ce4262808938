"""IP-Adapter: condition SD and SDXL sampling on a reference picture, through a CLIP image encoder.

The adapter's weights and the picture's embedding ride on the CONDITIONING; the Sampler installs the
adapter's attention processors into the UNet for its own run only (diffusers' ``_load_ip_adapter_weights``)
and puts the UNet's own back afterwards, so the shared, cached UNet is unchanged for every other node.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager

from nodegraph import Input, NodeUserError, Output, Param, PortType as T, node
from nodegraph.imaging import to_pil
from nodegraph.models import MODEL_HINT

from . import _model_files as files
from ._diffusion_types import IpAdapter, each_entry


def _read(path):
    """The file's tensors split the way diffusers' load_ip_adapter splits them."""
    from safetensors import safe_open

    if path.suffix != ".safetensors":
        raise NodeUserError(f"{path.name}: IP-Adapter weights are read only as .safetensors")
    state = {"image_proj": {}, "ip_adapter": {}}
    with safe_open(str(path), framework="pt", device="cpu") as f:
        for key in f.keys():
            part, _, rest = key.partition(".")
            if part in state:
                state[part][rest] = f.get_tensor(key)
    if not state["image_proj"] or not state["ip_adapter"]:
        raise NodeUserError(f"{path.name} is not an IP-Adapter (no image_proj.* and ip_adapter.* weights)")
    return state


@node(
    "control.ip_adapter",
    title="Apply IP-Adapter",
    category="generate/conditioning",
    inputs=[
        Input("conditioning", T.CONDITIONING),
        Input("encoder", T.IMAGE_ENCODER, description="the CLIP vision encoder the adapter was trained with"),
        Input("image", T.IMAGE, description="the reference picture"),
    ],
    params=[
        Param("ip_adapter", T.STRING, "", hint=MODEL_HINT, kind="ipadapter",
              description="an IP-Adapter .safetensors file"),
        Param("scale", T.FLOAT, 0.6, min=0.0, max=2.0, step=0.05),
    ],
    outputs=[Output("conditioning", T.CONDITIONING)],
    identity=lambda params, ctx: files.identity(params["ip_adapter"], ctx, "ipadapter"),
)
def apply_ip_adapter(ctx, conditioning, encoder, image, ip_adapter, scale):
    """Make the picture look like a reference picture (style, subject), with an SD or SDXL model."""
    import torch

    if conditioning.family not in ("sd", "sdxl"):
        raise NodeUserError("IP-Adapter works with SD 1.x/2.x and SDXL models here")
    path = files.resolve(ip_adapter, ctx, "ipadapter")
    state = _read(path)
    model = encoder.model
    pixels = encoder.processor(images=to_pil(image)[:1], return_tensors="pt").pixel_values
    pixels = pixels.to(device=model.device, dtype=next(model.parameters()).dtype)
    with torch.inference_mode():
        if "proj.weight" in state["image_proj"]:  # the basic adapter: the projected image embedding
            embeds = model(pixels).image_embeds
            negative = torch.zeros_like(embeds)
        else:  # "plus" adapters read the penultimate hidden states, of the picture and of a black one
            embeds = model(pixels, output_hidden_states=True).hidden_states[-2]
            negative = model(torch.zeros_like(pixels), output_hidden_states=True).hidden_states[-2]
    adapter = IpAdapter(state, embeds[None], negative[None], scale, str(path))
    return {"conditioning": each_entry(conditioning,
                                       lambda e: dataclasses.replace(e, ip_adapters=e.ip_adapters + (adapter,)))}


@contextmanager
def installed(unet, adapters, batch: int, guided: bool, device, dtype):
    """The UNet with the adapters' attention processors for one sampling run; yields the image embeds
    to pass in ``added_cond_kwargs``. The UNet's own processors and projection are restored after."""
    if not adapters:
        yield None
        return
    import torch
    from diffusers.models.attention_processor import IPAdapterAttnProcessor, IPAdapterAttnProcessor2_0

    saved = (dict(unet.attn_processors), unet.encoder_hid_proj, unet.config.encoder_hid_dim_type)
    try:
        unet._load_ip_adapter_weights([a.state_dict for a in adapters], low_cpu_mem_usage=False)
        for processor in unet.attn_processors.values():
            if isinstance(processor, (IPAdapterAttnProcessor, IPAdapterAttnProcessor2_0)):
                processor.scale = [a.scale for a in adapters]
        embeds = []
        for a in adapters:  # as diffusers' prepare_ip_adapter_image_embeds lays them out
            positive = torch.cat([a.embeds] * batch, dim=0)
            both = torch.cat([torch.cat([a.negative] * batch, dim=0), positive]) if guided else positive
            embeds.append(both.to(device=device, dtype=dtype))
        yield embeds
    finally:
        unet.set_attn_processor(saved[0])
        unet.encoder_hid_proj = saved[1]
        unet.config.encoder_hid_dim_type = saved[2]
