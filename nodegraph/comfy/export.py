"""Our workflow -> ComfyUI's API format, so a workflow made here can be queued on a ComfyUI server.

The classes come from the import table read backwards (one ComfyUI class per node type, picked by the
node's values where the import maps several onto one), so import -> export -> import gives the same
workflow. Our Text Condition holds a positive and a negative prompt; ComfyUI encodes each prompt on its
own, so a negative prompt becomes a second CLIP Text Encode named ``<id>-negative``. The API format has
no subgraphs: a workflow with instances goes out flattened, as the engine runs it, each inner node under
its path with ComfyUI's separator (``30:1``, as the frontend writes a subgraph's inner nodes).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import NodegraphError
from ..expand import flatten, has_instances
from ..subgraph import PREFIX
from ..workflow import Link, Workflow
from .convert import PLACEHOLDER
from .table import KARRAS, SAMPLERS, TABLE, Spec

CONDITIONING_CHAIN = {"control.apply": "conditioning", "cond.guidance": "conditioning",
                      "control.ip_adapter": "conditioning", "cond.combine": "a", "cond.zero_out": "conditioning",
                      "cond.combine_list": "a", "cond.set_area": "conditioning", "cond.set_mask": "conditioning",
                      "cond.timestep_range": "conditioning", "cond.reference_latent": "conditioning"}
SKIPPED = {"doc.note"}  # frontend-only in ComfyUI: its server has no such node

INVERSE = {  # our parameter value -> ComfyUI's, for the table's value conversions
    "dtype": lambda v: "default",
    "skip": lambda v: -int(v) - 1,
    "resample": lambda v: {"nearest": "nearest-exact"}.get(v, v),
    "method": lambda v: {"nearest": "nearest-exact"}.get(v, v),
    "mode": lambda v: "center" if v == "fill" else "disabled",
    "family": lambda v: {"sd": "stable_diffusion", "auto": "stable_diffusion"}.get(v, v),
    "weight": lambda v: round(1.0 - v, 6),
    "ratio": lambda v: round(1.0 - v, 6),
    "color": lambda v: int(v.lstrip("#"), 16),
    "low_threshold": lambda v: round(v / 255, 4),
    "high_threshold": lambda v: round(v / 255, 4),
}


class ExportError(NodegraphError):
    """The workflow holds nodes ComfyUI has no class for; the message lists them."""


def _pick(node, linked: set[str]) -> str | None:
    """The ComfyUI class for one of our nodes (several classes import onto some of our types)."""
    p = node.params
    choices = {
        "model.text_encoder": "TripleCLIPLoader" if p.get("model_3") else
                              "DualCLIPLoader" if p.get("model_2") else "CLIPLoader",
        "model.lora": "LoraLoader" if "text_encoder" in linked else "LoraLoaderModelOnly",
        "sampling.sampler": "KSamplerAdvanced" if (p.get("start_step"), p.get("end_step")) != (0, -1) else "KSampler",
        "vae.decode": "VAEDecodeTiled" if p.get("tiled") else "VAEDecode",
        "control.apply": "ControlNetApplyAdvanced" if (p.get("start"), p.get("end")) != (0.0, 1.0) or "vae" in linked
                         else "ControlNetApply",
        "latent.empty": "EmptyLatentImage", "latent.inpaint_encode": "VAEEncodeForInpaint",
        "value.string": "PrimitiveString", "value.seed": "PrimitiveInt", "value.int": "PrimitiveInt",
        "image.load": "LoadImage",
        "image.blend": "ImageBlend", "mask.from_channel": "ImageToMask", "cond.combine": "ConditioningAverage",
        "model.checkpoint": "CheckpointLoaderSimple", "vae.encode": "VAEEncodeTiled" if p.get("tiled") else "VAEEncode",
    }
    if node.type in choices:
        return choices[node.type]
    return next((cls for cls, spec in TABLE.items() if spec.type == node.type), None)


def _sampler_names(scheduler: str) -> tuple[str, str]:
    karras = {v: k for k, v in KARRAS.items()}
    if scheduler in karras:
        return karras[scheduler], "karras"
    exact = {ours: name for name, (ours, is_exact) in SAMPLERS.items() if is_exact}
    return exact.get({"flow_euler": "euler", "default": "euler"}.get(scheduler, scheduler), "euler"), "normal"


def export_api(workflow, notes: list | None = None) -> dict[str, dict]:
    """The workflow in ComfyUI's API format (node id -> class_type, inputs, _meta). Where ComfyUI's
    class does a little less than ours (a coloured padding, the model's own scheduler), a line is
    added to ``notes``."""
    exporter = _Exporter(_flat(workflow))
    prompt = exporter.run()
    if notes is not None:
        notes += exporter.notes
    return prompt


def _flat(workflow):
    """The workflow with its subgraph instances expanded, path ids written ``30:1``; muted and bypassed
    instances stay one node (skipped, or passed through)."""
    if not has_instances(workflow):
        return workflow
    flat = flatten(workflow)
    out = Workflow(workflow.registry)
    out.subgraphs.update(workflow.subgraphs)  # the instances left whole keep their types
    api = lambda node_id: node_id.replace("/", ":")  # noqa: E731
    out.nodes = {api(k): dataclasses.replace(n, id=api(k), _digest=None) for k, n in flat.nodes.items()}
    out.links = [Link(api(l.source), l.output, api(l.target), l.input, l.via) for l in flat.links]
    return out


class _Exporter:
    def __init__(self, workflow):
        self.wf = workflow
        self.prompt: dict[str, dict] = {}
        self.into: dict[str, dict] = {node_id: {} for node_id in workflow.nodes}  # node -> input -> link
        self.out: dict[str, list] = {node_id: [] for node_id in workflow.nodes}  # node -> links from it
        for link in workflow.links:
            self.into.setdefault(link.target, {})[link.input] = link
            self.out.setdefault(link.source, []).append(link)
        self.aliases: dict[tuple[str, str], list] = {}  # (our node, output) -> [comfy id, slot]
        self.notes: list[str] = []

    def run(self) -> dict[str, dict]:
        whole = lambda n: n.type.startswith(PREFIX) and n.mode != "active"  # noqa: E731  (skipped or passed)
        missing = sorted({f"{n.id} ({n.type})" for n in self.wf.nodes.values()
                          if n.type not in SKIPPED and not n.type.startswith(PLACEHOLDER) and not whole(n)
                          and _pick(n, set()) is None})
        if missing:
            raise ExportError("no ComfyUI class for: " + ", ".join(missing))
        for node in self.wf.nodes.values():
            if node.mode == "muted" or node.type in SKIPPED:
                continue
            if node.mode == "bypassed":
                self.bypass(node)
                continue
            self.export_node(node)
        for entry in self.prompt.values():  # links were written as our (node, output); now as ComfyUI's
            for name, value in list(entry["inputs"].items()):
                if isinstance(value, tuple):
                    entry["inputs"][name] = self.source(*value)
        return self.prompt

    def source(self, node_id: str, output: str, depth: int = 0) -> list:
        if (node_id, output) in self.aliases:
            alias = self.aliases[(node_id, output)]
            return self.source(*alias, depth + 1) if isinstance(alias, tuple) and depth < 64 else alias
        node = self.wf.nodes[node_id]
        if node.type.startswith(PLACEHOLDER):
            return [node_id, int(output.rsplit("_", 1)[-1])]
        spec = TABLE[_pick(node, set(self.into[node_id]))]
        return [node_id, spec.outputs.index(output)]

    def out_of(self, node_id: str) -> list:
        return self.out.get(node_id, [])

    def bypass(self, node) -> None:
        """ComfyUI's API format has no bypass: each output is wired to the first linked input of its type,
        as our engine and ComfyUI's frontend both do."""
        node_type = self.wf.registry.get(node.type)
        links = self.into[node.id]
        for out in node_type.outputs if node_type else ():
            port = next((i.name for i in node_type.inputs if i.type == out.type and i.name in links), None)
            if port is not None:
                self.aliases[(node.id, out.name)] = (links[port].source, links[port].output)

    def add(self, comfy_id: str, class_type: str, inputs: dict, title: str | None) -> None:
        self.prompt[comfy_id] = {"class_type": class_type, "inputs": inputs, "_meta": {"title": title or class_type}}

    def export_node(self, node) -> None:
        links = self.into[node.id]
        if node.type.startswith(PLACEHOLDER):
            kept = node.params.get("inputs") or {}
            inputs = {k: v for k, v in kept.items() if k != "widgets_values"}
            if kept.get("widgets_values"):
                self.notes.append(f"{node.id} ({node.type[len(PLACEHOLDER):]}): its widget values came by position "
                                  f"from an editor file and cannot be named for the API format; set them in ComfyUI")
            inputs.update({name: (l.source, l.output) for name, l in links.items()})
            self.add(node.id, node.type[len(PLACEHOLDER):], inputs, node.title)
            return
        if node.type == "mask.invert" and "mask" in links and self.wf.nodes[links["mask"].source].type == "image.load":
            self.aliases[(node.id, "mask")] = [links["mask"].source, 1]  # ComfyUI's Load Image mask is inverted
            return
        if node.type == "mask.invert":
            self.add(node.id, "InvertMask", {"mask": (links["mask"].source, links["mask"].output)}, node.title)
            return
        cls = _pick(node, set(links))
        special = getattr(self, "export_" + cls, None)
        if special:
            special(node, links)
            return
        spec: Spec = TABLE[cls]
        inputs: dict[str, Any] = {}
        for comfy_name, target in spec.params.items():
            name = target[0] if isinstance(target, tuple) else target
            if name in node.params:
                value = node.params[name]
                inputs[comfy_name] = INVERSE[name](value) if isinstance(target, tuple) else value
        for comfy_name, port in spec.inputs.items():
            if port in links:
                inputs[comfy_name] = (links[port].source, links[port].output)
        for comfy_name, target in spec.params.items():
            name = target[0] if isinstance(target, tuple) else target
            if name in links:
                inputs[comfy_name] = (links[name].source, links[name].output)
        self.extra_inputs(node, cls, inputs)
        self.add(node.id, cls, inputs, node.title)

    def extra_inputs(self, node, cls: str, inputs: dict) -> None:
        """Values the table derives from several widgets, written back as ComfyUI's widgets."""
        p = node.params
        if node.type == "sampling.sampler":
            inputs["sampler_name"], inputs["scheduler"] = _sampler_names(p["scheduler"])
            if p["scheduler"] == "default":
                self.notes.append(f"{node.id}: scheduler 'default' (the model's own) is written as euler/normal")
            if "negative" not in inputs:
                inputs["negative"] = (self.negative_of(node), "conditioning")
            if cls == "KSamplerAdvanced":
                inputs.update(noise_seed=inputs.get("noise_seed", p["seed"]), add_noise="enable" if p["start_step"] == 0
                              else "disable", start_at_step=p["start_step"],
                              end_at_step=10000 if p["end_step"] == -1 else p["end_step"],
                              return_with_leftover_noise="disable" if p["end_step"] == -1 else "enable")
        elif node.type == "control.apply" and cls == "ControlNetApplyAdvanced":
            inputs["negative"] = self.sampler_negative(node)
        elif cls == "ImageBlur":
            inputs.update(blur_radius=max(1, min(31, round(p["radius"] * 2))), sigma=p["radius"])
        elif cls == "ImageSharpen":
            inputs.update(sharpen_radius=1, sigma=1.0, alpha=p["factor"] - 1.0)
        elif cls == "FeatherMask":
            inputs.update({side: round(p["radius"]) for side in ("left", "top", "right", "bottom")})
        elif cls == "ImagePadForOutpaint" and p["color"].lower() != "#000000":
            self.notes.append(f"{node.id}: ComfyUI pads with black, not {p['color']}")
        elif cls == "GrowMask":
            inputs["tapered_corners"] = True
        elif cls == "ImageScale":
            inputs["crop"] = INVERSE["mode"](p["mode"])
            if p["mode"] == "fit":  # ComfyUI keeps the aspect when a side is 0
                side = "width" if p["width"] >= p["height"] else "height"
                inputs[side] = 0
                if max(p["width"], p["height"]) < 16384:
                    self.notes.append(f"{node.id}: 'fit' inside {p['width']}x{p['height']} is written as ComfyUI's "
                                      f"{side} 0 (the picture's aspect, the other side as given)")
        elif cls in ("LatentUpscale",):
            inputs["crop"] = "disabled"
        elif cls == "ImageBatch" and p["resize"] != "fill":
            self.notes.append(f"{node.id}: ComfyUI's Image Batch fits a second picture of another size by a centre "
                              f"crop, not {p['resize']!r}")
        elif cls == "StringReplace" and p["regex"]:
            raise ExportError(f"{node.id}: ComfyUI's StringReplace replaces plain text, not a regular expression")
        elif cls == "ImageUpscaleWithModel" and (p["tile"], p["overlap"]) != (512, 32):
            self.notes.append(f"{node.id}: ComfyUI tiles by 512 pixels overlapping by 32, not by {p['tile']} and "
                              f"{p['overlap']}")
        elif cls == "UpscaleModelLoader" and p["dtype"] != "auto":
            self.notes.append(f"{node.id}: ComfyUI picks the upscale model's dtype itself, not {p['dtype']}")

    # ----- the classes that are more than a table row ------------------------------------------------------
    def export_CLIPTextEncode(self, node, links) -> None:
        inputs = {"text": node.params["prompt"]}
        for ours, theirs in (("text_encoder", "clip"), ("prompt", "text")):
            if ours in links:
                inputs[theirs] = (links[ours].source, links[ours].output)
        self.add(node.id, "CLIPTextEncode", inputs, node.title)
        if node.params["negative"]:
            self.negative_node(node)

    def negative_node(self, node) -> str:
        negative_id = f"{node.id}-negative"
        if negative_id not in self.prompt:
            links = self.into[node.id]
            clip = (links["text_encoder"].source, links["text_encoder"].output) if "text_encoder" in links else None
            inputs = {"text": node.params["negative"], **({"clip": clip} if clip else {})}
            self.add(negative_id, "CLIPTextEncode", inputs, "Negative prompt")
            self.aliases[(negative_id, "conditioning")] = [negative_id, 0]
        return negative_id

    def negative_of(self, sampler) -> str:
        """The negative prompt a Sampler without a 'negative' link uses: its conditioning's Text Condition's."""
        here = self.into[sampler.id].get("conditioning")
        seen = set()
        while here is not None and here.source not in seen:
            seen.add(here.source)
            node = self.wf.nodes[here.source]
            if node.type == "cond.text":
                return self.negative_node(node)
            here = self.into[node.id].get(CONDITIONING_CHAIN.get(node.type, ""))
        raise ExportError(f"{sampler.id}: its negative prompt cannot be traced to a Text Condition; link 'negative'")

    def sampler_negative(self, control) -> list | tuple:
        """What the Sampler downstream of an Apply ControlNet uses as its negative prompt."""
        frontier, seen = [control.id], set()
        while frontier:
            here = frontier.pop()
            for link in self.out_of(here):
                node = self.wf.nodes[link.target]
                if node.type == "sampling.sampler" and link.input == "conditioning":
                    neg = self.into[node.id].get("negative")
                    return (neg.source, neg.output) if neg else (self.negative_of(node), "conditioning")
                if node.id not in seen:
                    seen.add(node.id)
                    frontier.append(node.id)
        link = self.into[control.id]["conditioning"]
        return (link.source, link.output)

    def export_EmptyLatentImage(self, node, links) -> None:
        p = node.params
        self.add(node.id, "EmptyLatentImage", {"width": p["width"], "height": p["height"],
                                               "batch_size": p["batch_size"]}, node.title)
        self.aliases[(node.id, "latent")] = [node.id, 0]

    def export_LoadImage(self, node, links) -> None:
        self.add(node.id, "LoadImage", {"image": node.params["path"]}, node.title)
        self.aliases[(node.id, "image")] = [node.id, 0]
        if any(l.output == "mask" and self.wf.nodes[l.target].type != "mask.invert" for l in self.out_of(node.id)):
            alpha = f"{node.id}-alpha"  # our mask is the alpha channel: ComfyUI's inverted back
            self.add(alpha, "InvertMask", {"mask": [node.id, 1]}, "Alpha")
            self.aliases[(node.id, "mask")] = [alpha, 0]

    def export_VAEEncodeForInpaint(self, node, links) -> None:
        inputs = {"grow_mask_by": 0}
        for ours, theirs in (("vae", "vae"), ("image", "pixels"), ("mask", "mask")):
            if ours in links:
                inputs[theirs] = (links[ours].source, links[ours].output)
        self.add(node.id, "VAEEncodeForInpaint", inputs, node.title)
        self.aliases[(node.id, "latent")] = [node.id, 0]

    def export_ImageBlend(self, node, links) -> None:
        inputs = {"blend_factor": node.params["factor"], "blend_mode": "normal"}
        for ours, theirs in (("image_a", "image1"), ("image_b", "image2")):
            if ours in links:
                inputs[theirs] = (links[ours].source, links[ours].output)
        self.add(node.id, "ImageBlend", inputs, node.title)
        self.aliases[(node.id, "image")] = [node.id, 0]

    def export_ImageToMask(self, node, links) -> None:
        channel = node.params["channel"]
        if channel == "luminance":
            raise ExportError(f"{node.id}: ComfyUI's Image To Mask has no 'luminance' channel")
        inputs = {"channel": channel}
        if "image" in links:
            inputs["image"] = (links["image"].source, links["image"].output)
        self.add(node.id, "ImageToMask", inputs, node.title)
        self.aliases[(node.id, "mask")] = [node.id, 0]

    def export_PrimitiveInt(self, node, links) -> None:
        value = node.params.get("seed", node.params.get("value", 0))
        self.add(node.id, "PrimitiveInt", {"value": value}, node.title)
        self.aliases[(node.id, "seed" if node.type == "value.seed" else "value")] = [node.id, 0]
