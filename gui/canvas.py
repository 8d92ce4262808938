"""The node canvas, drawn directly on QGraphicsScene / QGraphicsView over the engine's Workflow.

Every edit goes through the Workflow's own methods (``connect``, ``set_position``, ``remove_node``), so the
rules (one link per input, compatible types, no cycles) live in one place: the engine. A refused link
says why in the status bar. The scene mirrors the workflow; ``rebuild`` redraws it from the model.
"""

from __future__ import annotations

from types import SimpleNamespace

from PySide6.QtCore import QEvent, QLineF, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPainterPath, QPainterPathStroker, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QGraphicsScene, QGraphicsView

from nodegraph import Input, LinkError, NodegraphError, NodeType, Output, PortType, compatible
from nodegraph.comfy import PLACEHOLDER
from nodegraph.node import NAME_RE

from . import theme
from .layout_items import GroupItem, RerouteItem

NODE_WIDTH, TITLE_HEIGHT, ROW_HEIGHT, SOCKET_RADIUS = 210.0, 24.0, 20.0, 5.5
THUMB_HEIGHT = 120.0  # the picture an output node (or a running sampler) shows under its rows
LOD_TEXT = 0.3  # below this zoom, nodes are drawn without text (it would be under 4 px high)


class SocketItem(QGraphicsItem):
    """A typed input, output or parameter socket on a node."""

    def __init__(self, node: "NodeItem", name: str, type_name: str, output: bool, y: float, param: bool = False):
        super().__init__(node)
        self.node, self.name, self.type_name, self.output, self.param = node, name, type_name, output, param
        self.dimmed = False
        self.setPos(NODE_WIDTH if output else 0.0, y)
        self.setAcceptHoverEvents(True)
        self.setToolTip(f"{name}: {type_name}")

    def boundingRect(self) -> QRectF:
        r = SOCKET_RADIUS + 2
        return QRectF(-r, -r, 2 * r, 2 * r)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        color = theme.port_color(self.type_name)
        if self.dimmed:
            color.setAlpha(50)
        painter.setBrush(color)
        painter.setPen(QPen(QColor("#111111"), 1))
        r = SOCKET_RADIUS * (0.75 if self.param else 1.0)
        painter.drawEllipse(QPointF(0, 0), r, r)

    def anchor(self) -> QPointF:
        return self.scenePos()


STAND_IN = "missing.node"


def stand_in_type(workflow, node) -> NodeType:
    """A node whose type this install lacks (a ComfyUI placeholder, a plug-in not installed) is still drawn,
    with the sockets its links use, so the graph reads as it was and the links stay in place."""
    registry = workflow.registry

    def port_type(node_id: str, name: str, output: bool) -> PortType:
        other = registry.get(workflow.nodes[node_id].type) if node_id in workflow.nodes else None
        port = (other.output_port(name) if output else other.target_type(name)) if other else None
        found = port.type if isinstance(port, Output) else port
        return found if isinstance(found, PortType) else PortType.STRING

    inputs = {l.input: port_type(l.source, l.output, True) for l in workflow.links if l.target == node.id}
    outputs = {l.output: port_type(l.target, l.input, False) for l in workflow.links if l.source == node.id}
    title = f"ComfyUI: {node.type[len(PLACEHOLDER):]}" if node.type.startswith(PLACEHOLDER) else node.type
    return NodeType(STAND_IN, 1, title, "missing", lambda ctx, **kw: {},
                    inputs=tuple(Input(n, t) for n, t in inputs.items() if NAME_RE.match(n)),
                    outputs=tuple(Output(n, t) for n, t in outputs.items() if NAME_RE.match(n)))


def stand_in_message(node) -> str:
    if node.type.startswith(PLACEHOLDER):
        return f"not converted from ComfyUI: {node.params.get('why', 'no counterpart here')}"
    return f"unknown node type {node.type!r}: is the plug-in that provides it installed?"


class NodeItem(QGraphicsItem):
    """A node: title bar coloured by category, inputs on the left, outputs on the right, parameters as
    rows (each with a small socket, so a link can drive it), and its run state."""

    def __init__(self, scene: "GraphScene", node, node_type):
        super().__init__()
        self.graph, self.node_id, self.node_type = scene, node.id, node_type
        self.state, self.message, self.progress = "clean", "", None
        self.setFlags(QGraphicsItem.ItemIsMovable | QGraphicsItem.ItemIsSelectable
                      | QGraphicsItem.ItemSendsGeometryChanges)
        self.inputs: dict[str, SocketItem] = {}
        self.outputs: dict[str, SocketItem] = {}
        y = TITLE_HEIGHT + ROW_HEIGHT / 2
        for i, out in enumerate(node_type.outputs):
            self.outputs[out.name] = SocketItem(self, out.name, str(out.type), True, y + i * ROW_HEIGHT)
        for i, port in enumerate(node_type.inputs):
            self.inputs[port.name] = SocketItem(self, port.name, str(port.type), False, y + i * ROW_HEIGHT)
        first_param = y + max(len(node_type.inputs), len(node_type.outputs)) * ROW_HEIGHT
        for i, param in enumerate(node_type.params):
            self.inputs[param.name] = SocketItem(self, param.name, str(param.type), False,
                                                 first_param + i * ROW_HEIGHT, param=True)
        self.base_height = self.height = first_param + len(node_type.params) * ROW_HEIGHT - ROW_HEIGHT / 2 + 8
        self.thumbnail: QPixmap | None = None
        self.setPos(*node.position)
        self.setZValue(1)

    @property
    def node(self):
        return self.graph.workflow.nodes[self.node_id]

    def boundingRect(self) -> QRectF:
        return QRectF(-2, -2, NODE_WIDTH + 4, self.height + 4)

    def set_thumbnail(self, pixmap: QPixmap | None) -> None:
        self.prepareGeometryChange()
        self.thumbnail = None if pixmap is None else pixmap.scaled(
            int(NODE_WIDTH - 16), int(THUMB_HEIGHT), Qt.KeepAspectRatio, Qt.SmoothTransformation)
        self.height = self.base_height + (THUMB_HEIGHT + 8 if pixmap is not None else 0)
        self.update()

    def paint(self, painter: QPainter, option, widget=None) -> None:
        node, selected = self.node, self.isSelected()
        body = QRectF(0, 0, NODE_WIDTH, self.height)
        painter.setPen(QPen(QColor("#f0c040") if selected else QColor(theme.STATE_COLORS[self.state]),
                            2.5 if selected or self.state != "clean" else 1))
        painter.setBrush(QColor(theme.NODE_BODY))
        color = theme.category_color(self.node_type.category)
        if node.mode != "active":
            color = QColor("#555555") if node.mode == "muted" else QColor("#6e4a7a")
        if option.levelOfDetailFromTransform(painter.worldTransform()) < LOD_TEXT:
            painter.drawRect(body)  # zoomed far out: text would be unreadable, so only shapes and pictures
            painter.fillRect(QRectF(0, 0, NODE_WIDTH, TITLE_HEIGHT), color)
            self._paint_thumbnail(painter)
            return
        painter.drawRoundedRect(body, 6, 6)
        title = QPainterPath()
        title.addRoundedRect(QRectF(0, 0, NODE_WIDTH, TITLE_HEIGHT), 6, 6)
        painter.fillPath(title, color)
        painter.setPen(QColor(theme.TEXT))
        bold = QFont()
        bold.setBold(True)
        painter.setFont(bold)
        label = node.title or self.node_type.title
        mode = {"muted": "  (muted)", "bypassed": "  (bypassed)"}.get(node.mode, "")
        painter.drawText(QRectF(8, 0, NODE_WIDTH - 16, TITLE_HEIGHT), Qt.AlignVCenter, f"{label}{mode}")
        if self.node_type.id.startswith("subgraph:"):  # a subgraph instance: two stacked frames, as its badge
            painter.setPen(QPen(QColor(theme.TEXT), 1.2))
            painter.setBrush(Qt.NoBrush)
            painter.drawRect(QRectF(NODE_WIDTH - 22, 6, 11, 9))
            painter.drawRect(QRectF(NODE_WIDTH - 18, 9, 11, 9))
        painter.setFont(QFont())
        if self.progress is not None and self.state == "running":
            painter.fillRect(QRectF(0, TITLE_HEIGHT - 3, NODE_WIDTH * self.progress, 3), QColor("#4fc3f7"))
        for sock in self.outputs.values():
            painter.drawText(QRectF(8, sock.y() - ROW_HEIGHT / 2, NODE_WIDTH - 18, ROW_HEIGHT),
                             Qt.AlignVCenter | Qt.AlignRight, sock.name)
        linked = self.graph.linked_inputs(self.node_id)
        for name, sock in self.inputs.items():
            text = name
            if sock.param and name not in linked:
                text = f"{name}: {_short(node.params.get(name))}"
            painter.setPen(QColor(theme.TEXT) if not sock.param else QColor("#b8b8b8"))
            painter.drawText(QRectF(12, sock.y() - ROW_HEIGHT / 2, NODE_WIDTH - 24, ROW_HEIGHT),
                             Qt.AlignVCenter | Qt.AlignLeft, text)
        self._paint_thumbnail(painter)

    def _paint_thumbnail(self, painter: QPainter) -> None:
        if self.thumbnail is not None:
            x = (NODE_WIDTH - self.thumbnail.width()) / 2
            painter.drawPixmap(QPointF(x, self.base_height + (THUMB_HEIGHT - self.thumbnail.height()) / 2),
                               self.thumbnail)

    def set_state(self, state: str, message: str = "", progress: float | None = None) -> None:
        self.state, self.message, self.progress = state, message, progress
        tip = {"failed": f"failed: {message}", "running": "running", "cached": "served from the cache",
               "dirty": "will run", "skipped": f"did not run: {message}"}.get(state, "")
        if message and state in ("clean", "cached"):
            tip = f"last ran because: {message}"
        self.setToolTip(f"{self.node_id} ({self.node_type.id})" + (f"\n{tip}" if tip else ""))
        self.update()

    def itemChange(self, change, value):
        if change == QGraphicsItem.ItemPositionHasChanged:
            self.graph.node_moved(self)
        return super().itemChange(change, value)


INPUTS, OUTPUTS = "@inputs", "@outputs"  # the interface nodes inside a subgraph (never a node id: '@' is not allowed)
NEW_SLOT, ANY = "+", "ANY"  # the empty socket a link is dragged to for a new interface slot, which takes any type


class InterfaceItem(NodeItem):
    """Inside a subgraph: Inputs (a socket per input of the subgraph, on the right edge, feeding inner
    ports) or Outputs (a socket per output, on the left edge); the last, empty socket makes a new one."""

    def __init__(self, scene: "GraphScene", sub, side: str, position: tuple[float, float]):
        slots = sub.inputs if side == INPUTS else sub.outputs
        ports = tuple(Output(s.name, s.type) for s in slots) + (Output(NEW_SLOT, ANY),)
        declared = SimpleNamespace(id="subgraph.interface", title="Inputs" if side == INPUTS else "Outputs",
                                   category="subgraph", params=(),
                                   outputs=ports if side == INPUTS else (), inputs=() if side == INPUTS else ports)
        self._node = SimpleNamespace(id=side, title=None, mode="active", params={}, position=position)
        super().__init__(scene, self._node, declared)
        self.setFlag(QGraphicsItem.ItemIsMovable, False)

    @property
    def node(self):
        return self._node


def _short(value) -> str:
    text = str(value).replace("\n", " ")
    return text if len(text) <= 22 else text[:21] + "…"


class LinkItem(QGraphicsPathItem):
    """A curved link coloured by the type it carries, drawn through its reroute points (if any); a
    double-click on it adds a reroute point there."""

    def __init__(self, source: SocketItem, target: SocketItem | None = None, via=()):
        super().__init__()
        self.source, self.target = source, target
        self.via = [QPointF(x, y) for x, y in via]
        self.setPen(QPen(theme.port_color(source.type_name), 2.2))
        self.setZValue(0)
        if target is not None:  # a link being dragged is drawn to the cursor by update_path(end)
            self.update_path()

    def graph(self) -> "GraphScene":
        return self.scene()

    def points(self, end: QPointF | None = None) -> list[QPointF]:
        return [self.source.anchor(), *self.via, end if end is not None else self.target.anchor()]

    def update_path(self, end: QPointF | None = None) -> None:
        points = self.points(end)
        path = QPainterPath(points[0])
        for a, b in zip(points, points[1:]):
            _curve_to(path, a, b)
        self.setPath(path)

    def shape(self) -> QPainterPath:
        """The stroke itself (not the area a curve encloses), so clicks beside a link reach the canvas."""
        stroker = QPainterPathStroker()
        stroker.setWidth(10)
        return stroker.createStroke(self.path())

    def samples(self, per_segment: int = 24) -> list[QPointF]:
        """Points along the drawn curve (for hit tests against a cut line or a click)."""
        path = self.path()
        n = max(1, path.elementCount() // 3) * per_segment
        return [path.pointAtPercent(i / n) for i in range(n + 1)]

    def segment_at(self, pos: QPointF) -> int:
        """Which stretch between consecutive points (0 = from the output) passes closest to ``pos``."""
        points = self.points()
        best, best_d = 0, float("inf")
        for i, (a, b) in enumerate(zip(points, points[1:])):
            piece = QPainterPath(a)
            _curve_to(piece, a, b)
            for k in range(25):
                p = piece.pointAtPercent(k / 24)
                d = (p.x() - pos.x()) ** 2 + (p.y() - pos.y()) ** 2
                if d < best_d:
                    best, best_d = i, d
        return best

    def move_point(self, index: int, pos: QPointF) -> None:
        self.via[index] = QPointF(pos)
        self.update_path()
        self.graph().workflow.set_route(self.target.node.node_id, self.target.name,
                                        [(p.x(), p.y()) for p in self.via])

    def mouseDoubleClickEvent(self, event) -> None:
        self.graph().add_reroute(self, event.scenePos())
        event.accept()


def _curve_to(path: QPainterPath, a: QPointF, b: QPointF) -> None:
    """One stretch of a link: leaves ``a`` and reaches ``b`` horizontally, as sockets face left and right."""
    dx = max(abs(b.x() - a.x()) * 0.5, 40)
    path.cubicTo(a + QPointF(dx, 0), b - QPointF(dx, 0), b)


class GraphScene(QGraphicsScene):
    """The workflow drawn as items; edits made here go to the workflow, which stays the one truth."""

    edited = Signal()  # the workflow changed (structure, parameters or layout)
    message = Signal(str)  # a sentence for the status bar (a refused link, ...)
    rename_group = Signal(str)  # a group's title was double-clicked: the window asks for the new title

    def __init__(self, workflow, parent=None):
        super().__init__(parent)
        self.setBackgroundBrush(QBrush(QColor(theme.BACKGROUND)))
        self.workflow = workflow
        self.subgraph = None  # the definition whose body ``workflow`` is, when the canvas shows one
        self.nodes: dict[str, NodeItem] = {}
        self.links: list[LinkItem] = []
        self.groups: dict[str, GroupItem] = {}
        self.thumbnails: dict[str, QPixmap] = {}  # node id -> its last picture (kept across rebuilds)
        self._linked: dict[str, set[str]] = {}  # node id -> inputs fed by a link (links change only via rebuild)
        self._drag: LinkItem | None = None
        self.rebuild()

    # ----- mirror the model ----------------------------------------------------------------------
    def rebuild(self) -> None:
        states = {k: (v.state, v.message) for k, v in self.nodes.items()}
        self.clearSelection()  # before the items go: listeners must not see items of a replaced workflow
        self.clear()
        self.nodes, self.links, self.groups = {}, [], {}
        self._linked = {}
        for link in self.workflow.links:
            self._linked.setdefault(link.target, set()).add(link.input)
        for node in self.workflow.nodes.values():
            node_type = self.workflow.registry.get(node.type) or stand_in_type(self.workflow, node)
            item = NodeItem(self, node, node_type)
            self.addItem(item)
            self.nodes[node.id] = item
            if node.id in states:
                item.set_state(*states[node.id])
            elif node_type.id == STAND_IN:
                item.set_state("failed", stand_in_message(node))
            if node.id in self.thumbnails:
                item.set_thumbnail(self.thumbnails[node.id])
        for link in self.workflow.links:
            src, dst = self.nodes.get(link.source), self.nodes.get(link.target)
            if src and dst and link.output in src.outputs and link.input in dst.inputs:
                item = LinkItem(src.outputs[link.output], dst.inputs[link.input], link.via)
                self.addItem(item)
                self.links.append(item)
                for i, point in enumerate(item.via):
                    self.addItem(RerouteItem(item, i, point))
        for group_id in self.workflow.groups:
            self.groups[group_id] = GroupItem(self, group_id)
            self.addItem(self.groups[group_id])
        if self.subgraph is not None:
            self._add_interface(self.subgraph)

    def _add_interface(self, sub) -> None:
        """The Inputs and Outputs nodes beside the body, and the links between them and the inner ports."""
        xs = [n.position[0] for n in self.workflow.nodes.values()] or [0.0]
        ys = [n.position[1] for n in self.workflow.nodes.values()] or [0.0]
        inputs = InterfaceItem(self, sub, INPUTS, (min(xs) - NODE_WIDTH - 120, min(ys)))
        outputs = InterfaceItem(self, sub, OUTPUTS, (max(xs) + NODE_WIDTH + 120, min(ys)))
        for item in (inputs, outputs):
            self.addItem(item)
            self.nodes[item.node_id] = item
        for slot in sub.inputs:
            for node_id, port in slot.to:
                if node_id in self.nodes and port in self.nodes[node_id].inputs:
                    self._interface_link(inputs.outputs[slot.name], self.nodes[node_id].inputs[port])
                    self._linked.setdefault(node_id, set()).add(port)
        for slot in sub.outputs:
            node_id, port = slot.source or ("", "")
            if node_id in self.nodes and port in self.nodes[node_id].outputs:
                self._interface_link(self.nodes[node_id].outputs[port], outputs.inputs[slot.name])

    def _interface_link(self, source: "SocketItem", target: "SocketItem") -> None:
        item = LinkItem(source, target)
        self.addItem(item)
        self.links.append(item)

    def set_thumbnail(self, node_id: str, pixmap: QPixmap | None) -> None:
        """Show a picture on the node (an output's last image, a sampler's preview)."""
        if pixmap is None:
            self.thumbnails.pop(node_id, None)
        else:
            self.thumbnails[node_id] = pixmap
        if node_id in self.nodes:
            self.nodes[node_id].set_thumbnail(pixmap)
            self.node_moved(self.nodes[node_id])  # its height changed: frames and links follow

    def linked_inputs(self, node_id: str) -> set[str]:
        return self._linked.get(node_id, set())

    def node_moved(self, item: NodeItem) -> None:
        if item.node_id in self.workflow.nodes and not isinstance(item, InterfaceItem):
            self.workflow.set_position(item.node_id, (item.x(), item.y()))  # layout only: nothing re-runs
        for link in self.links:
            if item in (link.source.node, link.target.node):
                link.update_path()
        for group in self.groups.values():
            if item.node_id in group.group.nodes:
                group.refresh()

    def set_state(self, node_id: str, state: str, message: str = "", progress: float | None = None) -> None:
        if node_id in self.nodes:
            self.nodes[node_id].set_state(state, message, progress)

    def selected_node_ids(self) -> list[str]:
        return [i.node_id for i in self.selectedItems() if isinstance(i, NodeItem) and not isinstance(i, InterfaceItem)]

    def selected_group_ids(self) -> list[str]:
        return [i.group_id for i in self.selectedItems() if isinstance(i, GroupItem)]

    # ----- edits ---------------------------------------------------------------------------------
    def add_node(self, type_id: str, position: QPointF) -> str:
        node = self.workflow.add_node(type_id, position=(position.x(), position.y()))
        self.rebuild()
        self.nodes[node.id].setSelected(True)
        self.edited.emit()
        return node.id

    def delete_selected(self) -> None:
        """Delete the selected nodes, and the selected frames and reroute points (never what a frame holds)."""
        ids, groups = self.selected_node_ids(), self.selected_group_ids()
        reroutes = [i for i in self.selectedItems() if isinstance(i, RerouteItem)]
        for node_id in ids:
            self.workflow.remove_node(node_id)
        for group_id in groups + [g.id for g in self.workflow.groups.values() if not g.nodes]:
            self.workflow.remove_group(group_id)  # chosen, or emptied by the nodes' deletion
        for link in {r.link for r in reroutes if not {r.link.source.node.node_id, r.link.target.node.node_id} & set(ids)}:
            keep = [p for i, p in enumerate(link.via) if not any(r.link is link and r.index == i for r in reroutes)]
            self.workflow.set_route(link.target.node.node_id, link.target.name, [(p.x(), p.y()) for p in keep])
        if ids or groups or reroutes:
            self.rebuild()
            self.edited.emit()

    def group_selected(self, title: str = "Group") -> str | None:
        """Put a frame around the selected nodes (taking them out of any frame they were in)."""
        ids = self.selected_node_ids()
        if not ids:
            return None
        for group in list(self.workflow.groups.values()):
            group.nodes = [n for n in group.nodes if n not in ids]
        group = self.workflow.add_group(title, ids)
        self.rebuild()
        self.groups[group.id].setSelected(True)
        self.edited.emit()
        return group.id

    def ungroup_selected(self) -> None:
        """Remove the selected frames, and the frames of the selected nodes; the nodes stay."""
        ids = set(self.selected_node_ids())
        doomed = set(self.selected_group_ids()) | {g.id for g in self.workflow.groups.values() if ids & set(g.nodes)}
        for group_id in doomed:
            self.workflow.remove_group(group_id)
        if doomed:
            self.rebuild()
            self.edited.emit()

    def set_group_title(self, group_id: str, title: str) -> None:
        self.workflow.groups[group_id].title = title
        self.groups[group_id].update()
        self.edited.emit()

    def add_reroute(self, link: LinkItem, pos: QPointF) -> None:
        index = link.segment_at(pos)
        via = [(p.x(), p.y()) for p in link.via]
        via.insert(index, (pos.x(), pos.y()))
        self.workflow.set_route(link.target.node.node_id, link.target.name, via)
        self.rebuild()
        self.edited.emit()

    def remove_reroute(self, reroute: RerouteItem) -> None:
        link = reroute.link
        via = [(p.x(), p.y()) for i, p in enumerate(link.via) if i != reroute.index]
        self.workflow.set_route(link.target.node.node_id, link.target.name, via)
        self.rebuild()
        self.edited.emit()

    def cut_links(self, stroke: list[QPointF]) -> int:
        """Disconnect every link the stroke (a polyline in scene coordinates) crosses; how many were cut."""
        lines = [QLineF(a, b) for a, b in zip(stroke, stroke[1:])]
        reach = QRectF()
        for point in stroke:
            reach = reach.united(QRectF(point, point).adjusted(-1, -1, 1, 1))
        cut = []
        for link in self.links:
            if not link.path().boundingRect().adjusted(-1, -1, 1, 1).intersects(reach):
                continue  # far from the stroke: skip the curve sampling
            points = link.samples()
            pieces = [QLineF(a, b) for a, b in zip(points, points[1:])]
            if any(line.intersects(piece)[0] == QLineF.BoundedIntersection for line in lines for piece in pieces):
                cut.append(link)
        for link in cut:
            self._disconnect(link)
        if cut:
            self.rebuild()
            self.edited.emit()
        return len(cut)

    def _disconnect(self, link: LinkItem) -> None:
        from nodegraph import subgraph_edit

        source, target = link.source.node.node_id, link.target.node.node_id
        if source == INPUTS:
            subgraph_edit.unwire(self.subgraph, target, link.target.name)
        elif target == OUTPUTS:
            slot = next(s for s in self.subgraph.outputs if s.name == link.target.name)
            slot.source = None
            self.subgraph.touch()
        else:
            self.workflow.disconnect(target, link.target.name)

    def connect_sockets(self, a: SocketItem, b: SocketItem) -> bool:
        """Link two sockets (in either drag direction) through the workflow, or say why not. Inside a
        subgraph, a link to the Inputs or Outputs node wires the interface (the empty socket adds a slot)."""
        out, inp = (a, b) if a.output else (b, a)
        if out.output == inp.output:
            self.message.emit("connect an output to an input")
            return False
        try:
            if out.node.node_id == INPUTS or inp.node.node_id == OUTPUTS:
                self._wire_interface(out, inp)
            else:
                if self.subgraph is not None:  # a link replaces what fed the port, the interface included
                    from nodegraph import subgraph_edit

                    subgraph_edit.unwire(self.subgraph, inp.node.node_id, inp.name)
                self.workflow.connect(out.node.node_id, out.name, inp.node.node_id, inp.name)
        except (LinkError, NodegraphError) as e:
            self.message.emit(str(e))
            return False
        self.rebuild()
        self.edited.emit()
        return True

    def _wire_interface(self, out: SocketItem, inp: SocketItem) -> None:
        from nodegraph import subgraph_edit

        sub = self.subgraph
        if out.node.node_id == INPUTS and inp.node.node_id == OUTPUTS:
            raise NodegraphError("an input of the subgraph cannot be its output: put a node between them")
        if out.node.node_id == INPUTS:
            if out.name == NEW_SLOT:
                subgraph_edit.add_input(sub, inp.node.node_id, inp.name)
            else:
                subgraph_edit.wire_input(sub, out.name, inp.node.node_id, inp.name)
        elif inp.name == NEW_SLOT:
            subgraph_edit.add_output(sub, out.node.node_id, out.name)
        else:
            subgraph_edit.set_output(sub, inp.name, out.node.node_id, out.name)

    # ----- dragging a new link -------------------------------------------------------------------
    def _socket_at(self, pos: QPointF) -> SocketItem | None:
        for item in self.items(pos):
            if isinstance(item, SocketItem):
                return item
        return None

    def mousePressEvent(self, event) -> None:
        sock = self._socket_at(event.scenePos()) if event.button() == Qt.LeftButton else None
        if sock is None:
            return super().mousePressEvent(event)
        if (not sock.output and sock.name in self.linked_inputs(sock.node.node_id)
                and any(l.target == sock.node.node_id and l.input == sock.name for l in self.workflow.links)):
            # grabbing a linked input detaches its link and re-routes it from the same output
            link = next(l for l in self.workflow.links if l.target == sock.node.node_id and l.input == sock.name)
            self.workflow.disconnect(link.target, link.input)
            self.rebuild()
            self.edited.emit()
            sock = self.nodes[link.source].outputs[link.output]
        self._drag = LinkItem(sock)
        self._drag.update_path(event.scenePos())
        self.addItem(self._drag)
        for node in self.nodes.values():  # dim what cannot take this link
            for other in [*node.inputs.values(), *node.outputs.values()]:
                ok = other.output != sock.output and (
                    ANY in (sock.type_name, other.type_name)
                    or (compatible(_t(sock.type_name), _t(other.type_name)) if sock.output
                        else compatible(_t(other.type_name), _t(sock.type_name))))
                other.dimmed = not ok
                other.update()
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        if self._drag is not None:
            self._drag.update_path(event.scenePos())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        if self._drag is None:
            super().mouseReleaseEvent(event)
            self.edited.emit()  # nodes may have been dragged: the window records it if anything changed
            return
        start, self._drag = self._drag.source, None
        for node in self.nodes.values():
            for other in [*node.inputs.values(), *node.outputs.values()]:
                other.dimmed = False
        target = self._socket_at(event.scenePos())
        if target is not None and target is not start:
            self.connect_sockets(start, target)
        self.rebuild()
        event.accept()


def _t(name: str):
    from nodegraph import PortType

    return PortType(name)


NODE_MIME = "application/x-nodegraph-node-type"  # what the palette drags: a node type id


class GraphView(QGraphicsView):
    """Zoom with the wheel, pan with the middle button, F or Home fits everything in view; Tab, Shift+A or a
    double-click on empty canvas asks for a quick-add search at the cursor; Ctrl + right-drag cuts the
    links it crosses (as in Blender); a node type dragged from the palette is added where it is dropped."""

    quick_add = Signal(QPointF)  # scene position where a new node should go
    tab = Signal(QPointF)  # Tab at this scene position: enter the selected subgraph, else quick-add
    open_node = Signal(str)  # a node was double-clicked
    drop_node = Signal(str, QPointF)  # node type id, scene position

    def __init__(self, scene: GraphScene, parent=None):
        super().__init__(scene, parent)
        self.setRenderHints(QPainter.Antialiasing | QPainter.TextAntialiasing)
        self.setDragMode(QGraphicsView.RubberBandDrag)
        self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        self.setViewportUpdateMode(QGraphicsView.SmartViewportUpdate)
        self.setAcceptDrops(True)
        self._pan = None
        self._cut: list[QPointF] | None = None
        self._cut_item: QGraphicsPathItem | None = None

    def wheelEvent(self, event) -> None:
        factor = 1.15 if event.angleDelta().y() > 0 else 1 / 1.15
        self.scale(factor, factor)

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MiddleButton:
            self._pan = event.position()
            self.setCursor(Qt.ClosedHandCursor)
            return
        if event.button() == Qt.RightButton and event.modifiers() & Qt.ControlModifier:
            self._cut = [self.mapToScene(event.position().toPoint())]
            self._cut_item = QGraphicsPathItem()
            self._cut_item.setPen(QPen(QColor("#ff5252"), 1.5, Qt.DashLine))
            self._cut_item.setZValue(10)
            self.scene().addItem(self._cut_item)
            self.setCursor(Qt.CrossCursor)
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self._pan is not None:
            delta = event.position() - self._pan
            self._pan = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(delta.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(delta.y()))
            return
        if self._cut is not None:
            self._cut.append(self.mapToScene(event.position().toPoint()))
            path = QPainterPath(self._cut[0])
            for point in self._cut[1:]:
                path.lineTo(point)
            self._cut_item.setPath(path)
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        if event.button() == Qt.MiddleButton:
            self._pan = None
            self.setCursor(Qt.ArrowCursor)
            return
        if event.button() == Qt.RightButton and self._cut is not None:
            stroke, self._cut = self._cut + [self.mapToScene(event.position().toPoint())], None
            self.scene().removeItem(self._cut_item)
            self._cut_item = None
            self.setCursor(Qt.ArrowCursor)
            self.scene().cut_links(stroke)
            return
        super().mouseReleaseEvent(event)

    # ----- a node type dragged from the palette ---------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasFormat(NODE_MIME):
            event.acceptProposedAction()
        else:
            event.ignore()  # files dropped on the canvas go to the window, which opens them

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasFormat(NODE_MIME):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:
        if not event.mimeData().hasFormat(NODE_MIME):
            event.ignore()
            return
        type_id = bytes(event.mimeData().data(NODE_MIME)).decode()
        self.drop_node.emit(type_id, self.mapToScene(event.position().toPoint()))
        event.acceptProposedAction()

    def _cursor_scene_pos(self) -> QPointF:
        from PySide6.QtGui import QCursor

        local = self.viewport().mapFromGlobal(QCursor.pos())
        if not self.viewport().rect().contains(local):
            local = self.viewport().rect().center()
        return self.mapToScene(local)

    def event(self, event) -> bool:
        if event.type() == QEvent.KeyPress and event.key() == Qt.Key_Tab:  # before Qt's focus navigation
            self.tab.emit(self._cursor_scene_pos())
            return True
        return super().event(event)

    def mouseDoubleClickEvent(self, event) -> None:
        item = self.itemAt(event.position().toPoint())
        if item is None:
            self.quick_add.emit(self.mapToScene(event.position().toPoint()))
            return
        while item is not None and not isinstance(item, NodeItem):
            item = item.parentItem()
        if isinstance(item, NodeItem) and not isinstance(item, InterfaceItem):
            self.open_node.emit(item.node_id)  # the window enters it when it is a subgraph instance
            return
        super().mouseDoubleClickEvent(event)

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key_A and event.modifiers() & Qt.ShiftModifier:
            self.quick_add.emit(self._cursor_scene_pos())
        elif event.key() in (Qt.Key_F, Qt.Key_Home):
            self.fit_all()
        elif event.key() in (Qt.Key_Delete, Qt.Key_Backspace):
            self.scene().delete_selected()
        else:
            super().keyPressEvent(event)

    def fit_all(self) -> None:
        rect = self.scene().itemsBoundingRect().adjusted(-40, -40, 40, 40)
        if not rect.isEmpty():
            self.fitInView(rect, Qt.KeepAspectRatio)
