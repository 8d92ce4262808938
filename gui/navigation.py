"""Where the canvas is: the workflow itself, or inside a subgraph instance, and the breadcrumb bar.

Entering an instance shows its definition's body on the canvas, with two interface nodes: Inputs on the
left (a socket per input of the subgraph) and Outputs on the right. Edits there change the definition,
so every instance of it follows, as in Blender's node groups. The path is a list of instance ids, one
per level; run events name inner nodes by the same path (``hires/sampler``), so each level shows the
states of its own nodes, and an instance shows the state of what runs inside it.
"""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from nodegraph.subgraph import subgraph_id


def resolve(root, path: list[str]):
    """(graph, definition, the valid part of ``path``): the body the path leads to, or the root."""
    graph, sub, walked = root, None, []
    for instance_id in path:
        node = graph.nodes.get(instance_id)
        found = root.subgraphs.get(subgraph_id(node.type) or "") if node is not None else None
        if found is None:
            break
        graph, sub = found.body, found
        walked.append(instance_id)
    return graph, sub, walked


class Breadcrumb(QWidget):
    """``Workflow › Hires fix (hires) › …``: each part a button that goes back to that level."""

    def __init__(self, navigator: "Navigator"):
        super().__init__()
        self.navigator = navigator
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(6, 2, 6, 2)
        self.buttons: list[QPushButton] = []

    def refresh(self) -> None:
        while self.row.count():
            item = self.row.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        self.buttons = []
        nav = self.navigator
        if not nav.path:
            self.hide()
            return
        labels = ["Workflow"] + nav.titles()
        for depth, label in enumerate(labels):
            if depth:
                self.row.addWidget(QLabel("›"))
            button = QPushButton(label)
            button.setFlat(True)
            button.setEnabled(depth < len(labels) - 1)
            button.clicked.connect(lambda _=False, d=depth: nav.go_to(d))
            self.row.addWidget(button)
            self.buttons.append(button)
        users = nav.users()
        uses = "1 instance uses it" if users == 1 else f"{users} instances use it"
        self.row.addWidget(QLabel(f"<small>editing the definition: {uses} · Esc goes back out</small>"))
        self.row.addStretch(1)
        self.show()


class Navigator:
    """The level the canvas shows. ``window`` is the MainWindow (its scene and view show the level)."""

    def __init__(self, window):
        self.window = window
        self.path: list[str] = []
        self.bar = Breadcrumb(self)
        self.bar.hide()

    @property
    def root(self):
        return self.window.scene.workflow.root()

    def titles(self) -> list[str]:
        graph, labels = self.root, []
        for instance_id in self.path:
            node = graph.nodes[instance_id]
            sub = self.root.subgraphs[subgraph_id(node.type)]
            labels.append(f"{node.title or sub.title} ({instance_id})")
            graph = sub.body
        return labels

    def users(self) -> int:
        sub = self.window.scene.subgraph
        return sum(1 for n in self.root.all_instances() if sub is not None and subgraph_id(n.type) == sub.id)

    def prefix(self) -> str:
        return "".join(f"{p}/" for p in self.path)

    def visible(self, flat_id: str) -> str | None:
        """The node on the canvas that stands for ``flat_id``: itself, the instance it runs inside, or None
        when it lies outside the level shown."""
        prefix = self.prefix()
        if not flat_id.startswith(prefix):
            return None
        return flat_id[len(prefix):].split("/", 1)[0]

    def instance_values(self, node_id: str) -> dict:
        """Inner parameters of ``node_id`` (at the level shown) that the instances entered through set for
        themselves: parameter -> (value, the graph holding that instance, ``instance/inner path``). The outermost
        one wins, as
        in a run."""
        found: dict = {}
        graph = self.root
        chain = []
        for instance_id in self.path:
            node = graph.nodes[instance_id]
            chain.append((graph, node))
            graph = self.root.subgraphs[subgraph_id(node.type)].body
        for depth in reversed(range(len(chain))):  # innermost first; outer ones overwrite
            holder, instance = chain[depth]
            path = "/".join([*self.path[depth + 1:], node_id])
            for name, value in instance.overrides.get(path, {}).items():
                found[name] = (value, holder, f"{instance.id}/{path}")
        return found

    def flat_output(self, node_id: str) -> str:
        """The flat id whose outputs a node shows: the node's own, or for an instance the inner node behind
        its first output (followed down through nested instances)."""
        graph, flat = self.window.scene.workflow, self.prefix() + node_id
        node = graph.nodes.get(node_id)
        while node is not None and node.mode == "active":
            sub = self.root.subgraphs.get(subgraph_id(node.type) or "")
            if sub is None or not sub.outputs or sub.outputs[0].source is None:
                break
            inner = sub.outputs[0].source[0]
            graph, flat, node = sub.body, f"{flat}/{inner}", sub.body.nodes.get(inner)
        return flat

    # ----- moving ------------------------------------------------------------------------------------
    def can_enter(self, node_id: str) -> bool:
        node = self.window.scene.workflow.nodes.get(node_id)
        return node is not None and subgraph_id(node.type) in self.root.subgraphs

    def enter(self, node_id: str) -> bool:
        if not self.can_enter(node_id):
            return False
        self.path.append(node_id)
        self.show(self.root)
        return True

    def leave(self) -> bool:
        if not self.path:
            return False
        came_from = self.path.pop()
        self.show(self.root)
        if came_from in self.window.scene.nodes:
            self.window.scene.nodes[came_from].setSelected(True)
        return True

    def go_to(self, depth: int) -> None:
        if depth < len(self.path):
            came_from = self.path[depth]
            del self.path[depth:]
            self.show(self.root)
            if came_from in self.window.scene.nodes:
                self.window.scene.nodes[came_from].setSelected(True)

    def reset(self, root) -> None:
        """A new workflow: show it from the top."""
        self.path = []
        self.show(root)

    def show(self, root, fit: bool = True) -> None:
        """Show the level ``path`` leads to in ``root`` (as far as it still leads: an undo may have removed it)."""
        graph, sub, self.path = resolve(root, self.path)
        scene = self.window.scene
        scene.workflow, scene.subgraph = graph, sub
        scene.thumbnails = {}
        scene.rebuild()
        self.window.run_control.restore_states()
        self.bar.refresh()
        if fit:
            self.window.view.fit_all()
        self.window.run_control.mark_dirty()
