"""Where and when a prompt acts: Set Conditioning Area, Set Conditioning Mask, Conditioning Timestep Range,
and Combine Conditioning, which keeps several prompts for the Sampler to blend (ComfyUI's area composition).

These nodes only mark the conditioning; the Sampler does the work (nodes/_region_sampling.py): every step
each prompt predicts on its own region and the predictions are blended by weight.
"""

from __future__ import annotations

from nodegraph import Input, NodeUserError, Output, Param, PortType as T, node

from ._diffusion_types import combined, each_entry
from ._families import FAMILIES


@node(
    "cond.timestep_range",
    title="Conditioning Timestep Range",
    category="generate/conditioning",
    inputs=[Input("conditioning", T.CONDITIONING)],
    params=[
        Param("start", T.FLOAT, 0.0, min=0.0, max=1.0, step=0.001,
              description="fraction of the sampling schedule where the prompt begins acting (0: the first step)"),
        Param("end", T.FLOAT, 1.0, min=0.0, max=1.0, step=0.001,
              description="fraction where it stops (1: through the last step); a step acts when its place in the "
                          "whole schedule is in start..end, so a Sampler continuing at start_step sees the same split"),
    ],
    outputs=[Output("conditioning", T.CONDITIONING)],
)
def timestep_range(ctx, conditioning, start, end):
    """Let a prompt act only for part of the sampling (ComfyUI's ConditioningSetTimestepRange): composition
    from one prompt, details from another, joined with Combine Conditioning."""
    import dataclasses

    if start >= end:
        raise NodeUserError(f"Conditioning Timestep Range: start ({start}) must be before end ({end})")
    return {"conditioning": each_entry(conditioning, lambda e: dataclasses.replace(e, start=start, end=end))}


@node(
    "cond.set_area",
    title="Set Conditioning Area",
    category="generate/conditioning",
    inputs=[Input("conditioning", T.CONDITIONING)],
    params=[
        Param("width", T.INT, 64, min=1, max=16384, step=8, description="the area's width in pixels"),
        Param("height", T.INT, 64, min=1, max=16384, step=8, description="the area's height in pixels"),
        Param("x", T.INT, 0, min=0, max=16384, step=8, description="the area's left edge in pixels"),
        Param("y", T.INT, 0, min=0, max=16384, step=8, description="the area's top edge in pixels"),
        Param("strength", T.FLOAT, 1.0, min=0.0, max=10.0, step=0.01,
              description="the prompt's weight against the others where their regions overlap"),
    ],
    outputs=[Output("conditioning", T.CONDITIONING)],
)
def set_area(ctx, conditioning, width, height, x, y, strength):
    """Draw a prompt in one rectangle of the picture (ComfyUI's ConditioningSetArea): the Sampler runs the
    model on that rectangle with this prompt; join prompts with Combine Conditioning."""
    import dataclasses

    return {"conditioning": each_entry(conditioning, lambda e: dataclasses.replace(
        e, area=(x, y, width, height), strength=strength))}


@node(
    "cond.set_mask",
    title="Set Conditioning Mask",
    category="generate/conditioning",
    inputs=[Input("conditioning", T.CONDITIONING),
            Input("mask", T.MASK, description="where the prompt acts (1) and where not (0), the picture's shape")],
    params=[
        Param("strength", T.FLOAT, 1.0, min=0.0, max=10.0, step=0.01,
              description="the prompt's weight against the others where their masks overlap"),
        Param("set_cond_area", T.ENUM, "default", choices=("default", "mask bounds"),
              description="default: the model sees the whole picture with this prompt, weighted by the mask; "
                          "mask bounds: it sees only the mask's bounding box"),
    ],
    outputs=[Output("conditioning", T.CONDITIONING)],
)
def set_mask(ctx, conditioning, mask, strength, set_cond_area):
    """Let a prompt act where a mask is set (ComfyUI's ConditioningSetMask): a painted or segmented region
    gets its own prompt; join prompts with Combine Conditioning."""
    import dataclasses

    bounds = set_cond_area == "mask bounds"
    return {"conditioning": each_entry(conditioning, lambda e: dataclasses.replace(
        e, mask=mask, mask_strength=strength, mask_bounds=bounds))}


@node(
    "cond.combine_list",
    title="Combine Conditioning",
    category="generate/conditioning",
    inputs=[Input("a", T.CONDITIONING), Input("b", T.CONDITIONING)],
    outputs=[Output("conditioning", T.CONDITIONING)],
)
def combine_list(ctx, a, b):
    """Keep two prompts (or more, chained) side by side (ComfyUI's ConditioningCombine): the Sampler predicts
    with each on its own area, mask and timestep range and blends the predictions. Average Conditioning mixes
    the embeddings into one prompt instead."""
    if a.family != b.family:
        raise NodeUserError(f"Combine Conditioning: cannot combine {FAMILIES[a.family].title} conditioning with "
                            f"{FAMILIES[b.family].title} conditioning (prompts from two different text encoders)")
    return {"conditioning": combined((a, b))}
