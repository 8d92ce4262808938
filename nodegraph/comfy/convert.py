"""A ComfyUI graph -> our workflow document, with a report of what did not map.

Each ComfyUI node becomes one of our nodes (or two, for the few classes in ``table.BUILT``) under its
own id, so a reader can find node 7 of the original as node 7 here. What cannot be converted stays in
the document as a placeholder of type ``comfyui:<class>`` that keeps the original values and fails
validation by name: nothing is silently dropped. Subgraph instances arrive flattened (inner node 1 of
instance 30 as ``30-1``) and are grouped back into our subgraphs at the end (``subgraphs.regroup``),
with the maps kept here of which of our ports and parameters each ComfyUI input and widget became.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import NodegraphError
from ..migrations import FORMAT, VERSION
from .graph import CNode, ComfyGraph
from .subgraphs import regroup
from .table import (BUILT, BUILT_WIDGETS, DISPLAY, PRIMITIVES, SAMPLER_PARTS, SEED_WIDGETS, TABLE, WIDGETS, Spec,
                    name_widgets, scheduler_for)

PLACEHOLDER = "comfyui:"  # placeholder node types are "comfyui:<ComfyUI class>"
VAE_SOURCES = {"CheckpointLoaderSimple": 2, "VAELoader": 0}  # where a VAE comes from, by output slot
SUFFIX_STEP = 140  # a second node made from one ComfyUI node sits this far below it


@dataclass
class Report:
    """What an import did: ``nodes`` ComfyUI nodes read, ``mapped`` of them converted; each unmapped one
    with its id, class and why; ``notes`` where the conversion is close but not exact; ``subgraphs``
    the subgraph definitions kept as ours."""

    format: str
    nodes: int = 0
    mapped: int = 0
    unmapped: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    subgraphs: int = 0  # definitions kept as our subgraphs

    def to_json(self, output: str | None = None) -> dict:
        return {"format": self.format, "nodes": self.nodes, "mapped": self.mapped, "unmapped": self.unmapped,
                "subgraphs": self.subgraphs, "notes": self.notes, "output": output}


def convert(graph: ComfyGraph, base_dir: Path | None = None, registry=None) -> tuple[dict, Report]:
    """Our workflow document (a dict ready for ``document.from_dict``) and the report. ``base_dir`` is the
    folder of the file converted: a picture a Load Image names is looked for there, then in the ComfyUI
    install's input folder."""
    return _Converter(graph, base_dir, registry).run()


ANNOTATED = re.compile(r"^(.*?)\s*\[(input|output|temp)\]$")  # ComfyUI's "name.png [output]"


def comfy_picture(name: str, base_dir: Path | None) -> str:
    """Where a ComfyUI Load Image's picture is: beside the workflow (kept relative), else in the ComfyUI
    install's input (or output, temp) folder (made absolute), else the name as written."""
    from ..settings import comfyui_folder

    match = ANNOTATED.match(name)
    bare, folder = (match[1], match[2]) if match else (name, "input")
    if base_dir is not None and (base_dir / bare).is_file():
        return bare
    try:
        install = comfyui_folder()
    except NodegraphError:
        install = None
    if install is not None and (install / folder / bare).is_file():
        return str((install / folder / bare).resolve())
    return bare


def our_id(comfy_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", comfy_id)[:56] or "node"


class _Converter:
    def __init__(self, graph: ComfyGraph, base_dir: Path | None, registry=None):
        from ..registry import REGISTRY

        self.graph, self.base_dir, self.registry = graph, base_dir, registry or REGISTRY
        self.report = Report(graph.format, notes=list(graph.notes))
        self.nodes: dict[str, dict] = {}  # our id -> node entry, in the order made
        self.outputs: dict[tuple[str, int], tuple] = {}  # (comfy id, slot) -> ("node", id, out) | ("pass", input)
        self.feeds: list[tuple[str, str, str, str]] = []  # (our node, our port, comfy node, comfy input)
        self.direct: list[tuple[str, str, str, int]] = []  # (our node, our port, comfy source, slot)
        self.links: list[dict] = []
        self.linked_params: set[tuple[str, str]] = set()  # (our node, param) fed by a link
        self.consumers: dict[tuple[str, int], list[tuple[str, str]]] = {}
        for node in graph.nodes.values():
            for name, (src, slot) in node.links.items():
                self.consumers.setdefault((src, slot), []).append((node.id, name))
        self.consumers_of: dict[str, list[list]] = {}  # node -> its outputs' consumer lists
        for (src, _slot), users in self.consumers.items():
            self.consumers_of.setdefault(src, []).append(users)
        # what each ComfyUI node became, for grouping subgraph instances back (subgraphs.regroup):
        self.made: dict[str, list[str]] = {}  # comfy id -> our node ids, the main one first
        self.ports: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (comfy id, input) -> our (node, port)s
        self.widget_params: dict[tuple[str, str], tuple[str, str]] = {}  # (comfy id, widget) -> our (node, param)

    # ----- the pieces a class's conversion emits --------------------------------------------------------
    def node(self, cnode: CNode, type_id: str, params: dict, suffix: str = "", row: int = 0) -> str:
        base = our_id(cnode.id) + (f"-{suffix}" if suffix else "")
        node_id, n = base, 2
        while node_id in self.nodes:
            node_id, n = f"{base}_{n}", n + 1
        declared = self.registry.get(type_id)
        x, y = cnode.position or (0, 0)
        entry = {"id": node_id, "type": type_id, "version": declared.version if declared else 1, "mode": cnode.mode,
                 "position": [x, y + row * SUFFIX_STEP], "params": params}
        if cnode.title and not suffix and cnode.title not in (cnode.class_type, DISPLAY.get(cnode.class_type)):
            entry["title"] = cnode.title
        self.nodes[node_id] = entry
        self.made.setdefault(cnode.id, []).append(node_id)
        return node_id

    def feed(self, cnode: CNode, comfy_input: str, node_id: str, port: str) -> None:
        self.ports.setdefault((cnode.id, comfy_input), []).append((node_id, port))
        if comfy_input in cnode.links:
            self.feeds.append((node_id, port, cnode.id, comfy_input))

    def widget(self, cnode: CNode, widget: str, node_id: str, param: str) -> None:
        """Note that ComfyUI widget ``widget`` of ``cnode`` became our ``node_id.param``."""
        self.widget_params[(cnode.id, widget)] = (node_id, param)

    def link(self, src: str, out: str, dst: str, port: str) -> None:
        self.links.append({"from": f"{src}.{out}", "to": f"{dst}.{port}"})

    def output(self, cnode: CNode, slot: int, node_id: str, out: str) -> None:
        self.outputs[(cnode.id, slot)] = ("node", node_id, out)

    def used(self, cnode: CNode, slot: int) -> bool:
        return bool(self.consumers.get((cnode.id, slot)))

    # ----- the whole graph -------------------------------------------------------------------------------
    def run(self) -> tuple[dict, Report]:
        for cnode in self.graph.nodes.values():
            self.report.nodes += 1
            notes: list[str] = []
            try:
                why = self.convert_one(cnode, notes)
            except (TypeError, ValueError, KeyError) as e:  # a value of the wrong kind in the file
                why = f"its values could not be read ({e})"
            if why:
                self.placeholder(cnode, why)
            else:
                self.report.mapped += 1
            self.report.notes += [f"node {cnode.id} ({cnode.class_type}): {n}" for n in notes]
        self.resolve_links()
        doc = {"format": FORMAT, "version": VERSION,
               "metadata": {"imported_from": f"ComfyUI ({self.graph.format} format)"},
               "nodes": list(self.nodes.values()), "links": self.links, "groups": self.groups()}
        return regroup(doc, self), self.report

    def values(self, cnode: CNode, order: tuple[str, ...]) -> dict:
        named = name_widgets(order, cnode.widgets) if cnode.widgets is not None else {}
        return {**named, **cnode.values}

    def convert_one(self, cnode: CNode, notes: list) -> str | None:
        """Emit our node(s) for one ComfyUI node; return why it cannot be converted, or None."""
        if cnode.class_type in BUILT:
            build = getattr(self, "build_" + cnode.class_type)
            why = build(cnode, self.values(cnode, WIDGETS.get(cnode.class_type, ())), notes)
            for widget, param in BUILT_WIDGETS.get(cnode.class_type, {}).items() if not why else ():
                self.widget(cnode, widget, self.made[cnode.id][0], param)
            return why
        spec = TABLE.get(cnode.class_type)
        if spec is None:
            return "no counterpart here yet"
        values = self.values(cnode, spec.widgets)
        self.build_spec(cnode, spec, values, notes)
        return None

    def build_spec(self, cnode: CNode, spec: Spec, values: dict, notes: list) -> str:
        params = dict(spec.fixed)
        for name, target in spec.params.items():
            if name not in values:
                continue
            if isinstance(target, tuple):
                params[target[0]] = target[1](values[name], notes)
            else:
                params[target] = values[name]
        if spec.derive:
            params.update(spec.derive(values, notes))
        node_id = self.node(cnode, spec.type, params)
        for name, target in spec.params.items():
            self.widget(cnode, name, node_id, target[0] if isinstance(target, tuple) else target)
        known = set(spec.inputs) | {out[1:] for out in spec.outputs if out and out.startswith("=")}
        for comfy_input, port in spec.inputs.items():
            self.feed(cnode, comfy_input, node_id, port)
        for name, target in spec.params.items():
            if name in cnode.links:
                known.add(name)
                if isinstance(target, tuple):
                    notes.append(f"the linked widget {name!r} reaches {target[0]!r} unconverted")
                param = target[0] if isinstance(target, tuple) else target
                self.feed(cnode, name, node_id, param)
                self.linked_params.add((node_id, param))  # it holds the value a primitive sends (an API file has none)
        for name in sorted(set(cnode.links) - known):
            notes.append(f"its linked input {name!r} has no counterpart here and was left unlinked")
        for slot, out in enumerate(spec.outputs):
            if out and out.startswith("="):
                self.outputs[(cnode.id, slot)] = ("pass", out[1:])
            elif out:
                self.output(cnode, slot, node_id, out)
        return node_id

    def placeholder(self, cnode: CNode, why: str) -> None:
        inputs = dict(cnode.values)
        if cnode.widgets is not None:
            inputs["widgets_values"] = cnode.widgets
        node_id = self.node(cnode, PLACEHOLDER + cnode.class_type, {"inputs": inputs, "why": why})
        for name in cnode.links:
            self.feed(cnode, name, node_id, name)
        for (src, slot) in self.consumers:  # (a placeholder is rare: a scan of every link is fine)
            if src == cnode.id:
                self.output(cnode, slot, node_id, f"output_{slot}")
        self.report.unmapped.append({"id": cnode.id, "class_type": cnode.class_type, "why": why})

    # ----- classes that take a line of code ----------------------------------------------------------------
    def build_EmptyLatentImage(self, cnode, values, notes):
        params = {k: values[k] for k in ("width", "height", "batch_size") if k in values}
        node_id = self.node(cnode, "latent.empty", params)
        vae = self.find_vae(cnode.id)
        if vae is None:
            notes.append("no VAE found downstream to size the latent: link one to its 'vae' input")
        else:
            self.direct.append((node_id, "vae", *vae))
        self.output(cnode, 0, node_id, "latent")

    build_EmptySD3LatentImage = build_EmptyLatentImage

    def build_LoadImage(self, cnode, values, notes):
        node_id = self.node(cnode, "image.load", {"path": comfy_picture(str(values.get("image", "")), self.base_dir)})
        self.output(cnode, 0, node_id, "image")
        if self.used(cnode, 1):  # ComfyUI's mask is 1 where the picture is transparent; ours is its alpha
            inverted = self.node(cnode, "mask.invert", {}, suffix="mask", row=1)
            self.link(node_id, "mask", inverted, "mask")
            self.output(cnode, 1, inverted, "mask")

    def build_LoadImageMask(self, cnode, values, notes):
        node_id = self.node(cnode, "image.load", {"path": comfy_picture(str(values.get("image", "")), self.base_dir)})
        channel = values.get("channel", "alpha")
        if channel == "alpha":
            mask = self.node(cnode, "mask.invert", {}, suffix="mask", row=1)
            self.link(node_id, "mask", mask, "mask")
        else:
            mask = self.node(cnode, "mask.from_channel", {"channel": channel}, suffix="mask", row=1)
            self.link(node_id, "image", mask, "image")
        self.output(cnode, 0, mask, "mask")

    def build_VAEEncodeForInpaint(self, cnode, values, notes):
        grow = int(values.get("grow_mask_by", 6))
        node_id = self.node(cnode, "latent.inpaint_encode", {})
        self.feed(cnode, "vae", node_id, "vae")
        self.feed(cnode, "pixels", node_id, "image")
        if grow > 0:
            grown = self.node(cnode, "mask.grow", {"pixels": grow}, suffix="grow", row=1)
            self.feed(cnode, "mask", grown, "mask")
            self.link(grown, "mask", node_id, "mask")
            notes.append("the grown mask also decides which pixels are blanked (ComfyUI blanks by the original mask)")
        else:
            self.feed(cnode, "mask", node_id, "mask")
        self.output(cnode, 0, node_id, "latent")

    def build_ImageBlend(self, cnode, values, notes):
        mode = values.get("blend_mode", "normal")
        if mode != "normal":
            return f"blend_mode {mode!r} has no counterpart here (only 'normal')"
        node_id = self.node(cnode, "image.blend", {"factor": values.get("blend_factor", 0.5)})
        self.feed(cnode, "image1", node_id, "image_a")
        self.feed(cnode, "image2", node_id, "image_b")
        self.output(cnode, 0, node_id, "image")

    def build_PrimitiveNode(self, cnode, values, notes):
        if not self.used(cnode, 0):  # ComfyUI itself ignores a primitive that feeds nothing
            notes.append("a primitive node that feeds nothing: left out")
            return None
        kind = cnode.outputs[0][1] if cnode.outputs else "*"
        value = cnode.widgets[0] if cnode.widgets else None
        return self.primitive(cnode, kind, value)

    def build_PrimitiveInt(self, cnode, values, notes):
        return self.primitive(cnode, "INT", values.get("value"))

    def primitive(self, cnode, kind: str, value):
        """A value node; an integer that feeds a seed becomes a Seed (whose range is a seed's)."""
        targets = self.consumers.get((cnode.id, 0), [])
        seeds = [t for t, name in targets if self.graph.nodes[t].class_type in TABLE and name in SEED_WIDGETS]
        if kind == "INT" and seeds:
            type_id, out, param = "value.seed", "seed", "seed"
        elif kind in PRIMITIVES:
            type_id, out, param = PRIMITIVES[kind], "value", "value"
        else:
            return f"a primitive of type {kind!r} has no counterpart here"
        node_id = self.node(cnode, type_id, {} if value is None else {param: value})
        self.widget(cnode, "value", node_id, param)
        self.output(cnode, 0, node_id, out)

    def build_SamplerCustomAdvanced(self, cnode, values, notes):
        """Noise, guider, sampler and sigmas nodes folded into one Sampler."""
        parts = {}
        for name, classes in SAMPLER_PARTS.items():
            src = cnode.links.get(name)
            part = self.graph.nodes.get(src[0]) if src else None
            if part is None or part.class_type not in classes:
                return f"its {name!r} must come from {' or '.join(classes)} to fold into one Sampler here"
            parts[name] = (part, self.values(part, WIDGETS.get(part.class_type, ())))
        (noise, nv), (guider, gv), (_, kv), (sigmas, sv) = (parts[k] for k in SAMPLER_PARTS)
        params = {"seed": nv.get("noise_seed", 0), "steps": sv.get("steps", 20), "denoise": sv.get("denoise", 1.0),
                  "cfg": gv.get("cfg", 1.0),
                  "scheduler": scheduler_for(str(kv.get("sampler_name", "euler")), str(sv.get("scheduler", "normal")),
                                             notes)}
        node_id = self.node(cnode, "sampling.sampler", params)
        self.feed(guider, "model", node_id, "model")
        self.feed(guider, "conditioning" if guider.class_type == "BasicGuider" else "positive", node_id, "conditioning")
        self.feed(guider, "negative", node_id, "negative")
        self.feed(cnode, "latent_image", node_id, "latent")
        for part, widget, param in ((noise, "noise_seed", "seed"), (sigmas, "steps", "steps"),
                                    (sigmas, "denoise", "denoise"), (guider, "cfg", "cfg")):
            self.widget(part, widget, node_id, param)
            if widget in part.links:
                self.feed(part, widget, node_id, param)
                self.linked_params.add((node_id, param))
        self.output(cnode, 0, node_id, "latent")
        if self.used(cnode, 1):
            notes.append("its denoised_output is the same latent as its output here")
        self.output(cnode, 1, node_id, "latent")

    def build_part(self, cnode, values, notes):
        """A noise, guider, sampler or sigmas node: read by the SamplerCustomAdvanced it feeds."""
        users = self.consumers.get((cnode.id, 0), [])
        kinds = {name for name, classes in SAMPLER_PARTS.items() if cnode.class_type in classes}
        if any(self.graph.nodes[u].class_type != "SamplerCustomAdvanced" or name not in kinds for u, name in users):
            return "it is converted only as part of the SamplerCustomAdvanced it feeds"
        return None

    build_RandomNoise = build_KSamplerSelect = build_BasicScheduler = build_part
    build_BasicGuider = build_CFGGuider = build_part

    def build_ModelSamplingFlux(self, cnode, values, notes):
        """Flux's resolution-dependent shift is what diffusers computes from the latent's size; a model
        passed through unchanged, with a note where ComfyUI's settings differ from that."""
        if (float(values.get("max_shift", 1.15)), float(values.get("base_shift", 0.5))) != (1.15, 0.5):
            notes.append(f"max_shift {values.get('max_shift')} / base_shift {values.get('base_shift')}: here the "
                         f"model's own (1.15 / 0.5) are used")
        notes.append("the shift follows the latent's size (ComfyUI's follows this node's width and height)")
        self.outputs[(cnode.id, 0)] = ("pass", "model")

    def build_Reroute(self, cnode, values, notes):  # only an unconnected Reroute is left to see here
        return "an unconnected reroute"

    def find_vae(self, start: str) -> tuple[str, int] | None:
        """The VAE that decodes what grows from ``start`` (an Empty Latent needs one to know its size):
        the first VAE Decode downstream, else the one VAE loaded in the graph."""
        seen, queue = {start}, deque([start])
        while queue:
            here = queue.popleft()
            for users in self.consumers_of.get(here, []):
                for user, _ in users:
                    node = self.graph.nodes[user]
                    if node.class_type in ("VAEDecode", "VAEDecodeTiled") and "vae" in node.links:
                        return node.links["vae"]
                    if user not in seen:
                        seen.add(user)
                        queue.append(user)
        loaders = [(n.id, VAE_SOURCES[n.class_type]) for n in self.graph.nodes.values() if n.class_type in VAE_SOURCES]
        vae_loaders = [l for l in loaders if self.graph.nodes[l[0]].class_type == "VAELoader"]
        return (vae_loaders or loaders or [None])[0]

    # ----- links and groups, once every node is there --------------------------------------------------------
    def source(self, src: str, slot: int, depth: int = 0) -> tuple[str, str] | None:
        found = self.outputs.get((src, slot))
        if found is None or depth > 64:
            return None
        if found[0] == "pass":
            feeder = self.graph.nodes[src].links.get(found[1])
            return None if feeder is None else self.source(*feeder, depth + 1)
        return found[1], found[2]

    def resolve_links(self) -> None:
        wanted = [(node, port, *self.graph.nodes[c].links[name], (c, name)) for node, port, c, name in self.feeds]
        wanted += [(node, port, src, slot, None) for node, port, src, slot in self.direct]
        for node_id, port, src, slot, via_key in wanted:
            found = self.source(src, slot)
            if found is None:
                cls = self.graph.nodes[src].class_type
                self.report.notes.append(f"node {node_id}: {port!r} was fed by output {slot} of node {src} ({cls}), "
                                         f"which did not convert; left unlinked")
                continue
            if (node_id, port) in self.linked_params:
                self.fill_from(found[0], node_id, port)
            entry = {"from": f"{found[0]}.{found[1]}", "to": f"{node_id}.{port}"}
            route = self.graph.via.get(via_key) if via_key else None
            if route:
                entry["via"] = [list(p) for p in route[:64]]
            self.links.append(entry)

    def fill_from(self, source: str, node_id: str, param: str) -> None:
        src = self.nodes[source]
        if src["type"].startswith("value.") and len(src["params"]) == 1:
            self.nodes[node_id]["params"][param] = next(iter(src["params"].values()))

    def groups(self) -> list[dict]:
        out = []
        for n, group in enumerate(self.graph.groups, 1):
            x, y, w, h = (float(v) for v in group["bounding"])
            members = [e["id"] for e in self.nodes.values()
                       if x <= e["position"][0] <= x + w and y <= e["position"][1] <= y + h]
            entry: dict[str, Any] = {"id": f"group{n}", "title": group["title"], "nodes": members}
            if group["color"]:
                entry["color"] = group["color"]
            out.append(entry)
        return out
