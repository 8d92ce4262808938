"""The clipboard: the selected nodes, and the links between them, as a workflow document; pasting one adds
its nodes again with fresh ids.

It lives apart from the main window because copy, cut, paste and duplicate are one idea (a part of a
workflow carried as text) that needs only the canvas; the window records the paste as one edit.
"""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication

import nodegraph
from nodegraph.subgraph import subgraph_id
from nodegraph.subgraph_edit import carry_definitions


def selection_text(scene) -> str:
    """The selected nodes and the links between them, as a workflow document."""
    workflow = scene.workflow
    ids = set(scene.selected_node_ids())
    part = nodegraph.Workflow(workflow.registry)
    for node_id in ids:
        part.nodes[node_id] = workflow.nodes[node_id]
    part.links = [l for l in workflow.links if l.source in ids and l.target in ids]
    used = [subgraph_id(workflow.nodes[n].type) for n in ids if subgraph_id(workflow.nodes[n].type)]
    carry_definitions(workflow, part, used)  # so an instance pastes into another workflow too
    return part.dumps()


def copy_selection(scene) -> None:
    if scene.selected_node_ids():
        QGuiApplication.clipboard().setText(selection_text(scene))


def cut_selection(scene) -> None:
    """Copy the selected nodes, then delete them: one undo step brings them back."""
    if scene.selected_node_ids():
        copy_selection(scene)
        scene.delete_selected()


def paste(scene, text: str | None, warn) -> bool:
    """Add the nodes of a workflow document (the clipboard's) with fresh ids, offset, and select them.
    False, said through ``warn``, when the text is no workflow."""
    text = QGuiApplication.clipboard().text() if text is None else text
    try:
        part = nodegraph.loads(text, strict=False)
    except nodegraph.NodegraphError as e:
        warn(f"nothing to paste: {e}")
        return False
    workflow = scene.workflow
    carry_definitions(part, workflow, list(part.subgraphs))
    renamed = {}
    for node in part.nodes.values():
        if workflow.registry.get(node.type) is None:
            continue
        x, y = node.position
        new = workflow.add_node(node.type, params=dict(node.params), position=(x + 40, y + 40),
                                mode=node.mode, title=node.title)
        new.overrides = {path: dict(values) for path, values in node.overrides.items()}
        renamed[node.id] = new.id
    for link in part.links:
        if link.source in renamed and link.target in renamed:
            workflow.connect(renamed[link.source], link.output, renamed[link.target], link.input)
    scene.rebuild()
    for node_id in renamed.values():
        scene.nodes[node_id].setSelected(True)
    return True
