"""Placing a node's points and boxes (a segmenter's prompts) by clicking on its picture in the viewer.

A node takes placements when it has a parameter with ``hint="points"`` or ``hint="boxes"`` and an IMAGE
input (boxes only while no BOXES input of the node is linked: drawn boxes stand in for those). Selecting it shows, in the viewer, the picture that fed that input in the last run, the node's own
mask tinted over it, and its points and boxes. A click adds a point (right-click or Alt+click: one to leave
out), a click on a point removes it, a drag draws a box. Each placement is an ordinary parameter edit
through the window, so it is one undo step and, in live mode, re-runs the node.
"""

from __future__ import annotations

from nodegraph.points import Point, format_boxes, format_points, parse_boxes, parse_points
from nodegraph.subgraph import subgraph_id


def placement_params(node_type) -> dict[str, str]:
    """{'points': name, 'boxes': name} for the node type's placement parameters (either may be missing)."""
    found = {}
    for param in node_type.params:
        if param.hint in ("points", "boxes") and param.hint not in found:
            found[param.hint] = param.name
    return found


def image_input(node_type) -> str | None:
    return next((i.name for i in node_type.inputs if str(i.type) == "IMAGE"), None)


class Placement:
    """The placements of the node shown in the viewer. ``window`` is the MainWindow: its graph holds the
    node, its ``set_param`` edits it, its viewer shows the picture and its navigator names flat ids."""

    def __init__(self, window):
        self.window = window
        self.node_id: str | None = None
        self.params: dict[str, str] = {}

    # ----- what the viewer shows -------------------------------------------------------------------
    def show(self, node_id: str | None, result) -> bool:
        """Show ``node_id``'s input picture with its placements, if it takes any; False otherwise (and
        the viewer goes back to plain viewing)."""
        viewer = self.window.viewer
        found = self._placeable(node_id)
        if found is None:
            if self.node_id is not None:
                viewer.show_marks(None)
            self.node_id, self.params = None, {}
            return False
        self.node_id, self.params = node_id, found
        picture = self._input_picture(node_id, result)
        if picture is None:
            viewer.show_marks(None)
            viewer.info.setText("run once: the picture feeding this node appears here to click points on")
            return True
        viewer.show_image(picture)
        mask = self._own_mask(node_id, result, picture)
        viewer.show_marks(self, self.points(), self.boxes(), mask)
        return True

    def hint(self) -> str:
        parts = ["click: add a point", "right-click: a point to leave out", "click a point: remove it"]
        if self.takes_boxes:
            parts.insert(2, "drag: box")
        return " · ".join(parts) if self.takes_points else "drag: box · click in a box: remove it"

    @property
    def takes_points(self) -> bool:
        return "points" in self.params

    @property
    def takes_boxes(self) -> bool:
        return "boxes" in self.params

    # ----- the node's values -------------------------------------------------------------------------
    def _value(self, kind: str) -> str:
        return str(self.window.graph.nodes[self.node_id].params.get(self.params.get(kind, ""), "") or "")

    def points(self) -> list[Point]:
        try:
            return parse_points(self._value("points")) if self.takes_points else []
        except ValueError:  # typed by hand and mistyped: the node says so when it runs
            return []

    def boxes(self) -> list[tuple[float, float, float, float]]:
        try:
            return parse_boxes(self._value("boxes")) if self.takes_boxes else []
        except ValueError:
            return []

    # ----- edits from the viewer ---------------------------------------------------------------------
    def click(self, x: float, y: float, keep: bool, radius: float = 8.0) -> None:
        """Add a point, or remove the one under the click (a box under it when the node takes no points)."""
        if not self.takes_points:
            boxes = self.boxes()
            inside = [b for b in boxes if b[0] <= x <= b[2] and b[1] <= y <= b[3]]
            if inside:
                boxes.remove(inside[-1])
                self._set("boxes", format_boxes(boxes))
            return
        points = self.points()
        near = [p for p in points if (p.x - x) ** 2 + (p.y - y) ** 2 <= radius ** 2]
        if near:
            points.remove(near[-1])
        else:
            points.append(Point(round(x), round(y), keep))
        self._set("points", format_points(points))

    def add_box(self, x0: float, y0: float, x1: float, y1: float) -> None:
        box = (round(min(x0, x1)), round(min(y0, y1)), round(max(x0, x1)), round(max(y0, y1)))
        if box[0] == box[2] or box[1] == box[3]:
            return
        self._set("boxes", format_boxes(self.boxes() + [box]))

    def clear(self) -> None:
        for kind in self.params:
            self._set(kind, "")

    def _set(self, kind: str, text: str) -> None:
        node_id = self.node_id
        if node_id is None or self._value(kind) == text:
            return
        self.window.set_param(node_id, self.params[kind], text)
        self.window.inspector.show_selection()  # the form shows the new text; the viewer redraws the marks

    # ----- where the pictures come from ------------------------------------------------------------------
    def _placeable(self, node_id: str | None) -> dict[str, str] | None:
        graph = self.window.graph
        node = graph.nodes.get(node_id) if node_id else None
        node_type = graph.registry.get(node.type) if node else None
        if node_type is None or image_input(node_type) is None:
            return None
        linked = self.window.scene.linked_inputs(node_id)
        found = {kind: name for kind, name in placement_params(node_type).items() if name not in linked}
        if any(str(i.type) == "BOXES" and i.name in linked for i in node_type.inputs):
            found.pop("boxes", None)  # drawn boxes stand in for linked ones: with boxes linked they are not used
        return found or None

    def _input_picture(self, node_id: str, result):
        """The picture that fed the node's IMAGE input in the last run, or None."""
        graph = self.window.graph
        link = graph.links_into(node_id).get(image_input(graph.registry.get(graph.nodes[node_id].type)))
        if link is None or result is None:
            return None
        flat, port = self._flat_source(link.source, link.output)
        value = result.outputs.get(flat, {}).get(port)
        return value[:1] if value is not None and getattr(value, "ndim", 0) == 4 else None

    def _flat_source(self, node_id: str, port: str) -> tuple[str, str]:
        """The flat id and port behind an output at this level, followed into subgraph instances."""
        navigator = self.window.navigator
        graph, flat = self.window.graph, navigator.prefix() + node_id
        node = graph.nodes.get(node_id)
        while node is not None:
            sub = navigator.root.subgraphs.get(subgraph_id(node.type) or "")
            slot = next((o for o in sub.outputs if o.name == port), None) if sub else None
            if slot is None or slot.source is None:
                break
            (inner, port), graph = slot.source, sub.body
            flat, node = f"{flat}/{inner}", graph.nodes.get(inner)
        return flat, port

    def _own_mask(self, node_id: str, result, picture):
        """The node's first MASK output from the last run, when it fits the picture."""
        values = result.outputs.get(self.window.navigator.prefix() + node_id, {}) if result else {}
        for value in (values or {}).values():
            if getattr(value, "ndim", 0) == 4 and value.shape[1] == 1 and value.shape[-2:] == picture.shape[-2:]:
                return value
        return None
