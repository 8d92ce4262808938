"""Notes on the canvas: text for the people who read a workflow; they never run."""

from __future__ import annotations

from nodegraph import Param, PortType as T, node


@node(
    "doc.note",
    title="Note",
    category="layout",
    params=[Param("text", T.STRING, "", hint="multiline")],
)
def note(ctx, text):
    """A note has no ports and is no output, so no run ever reaches it."""
    return {}
