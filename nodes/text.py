"""Text results (zero-shot scores, similarities, prompts): show them, or save them next to the pictures."""

from __future__ import annotations

from nodegraph import Input, Output, Param, PortType as T, node


@node(
    "text.show",
    title="Show Text",
    category="analyze/text",
    inputs=[Input("text", T.STRING)],
    outputs=[Output("text", T.STRING)],
    output=True,
)
def show_text(ctx, text):
    """Show a piece of text in the editor (and in the run report) without writing a file."""
    return {"text": text}


@node(
    "text.save",
    title="Save Text",
    category="analyze/text",
    inputs=[Input("text", T.STRING)],
    params=[Param("filename_prefix", T.STRING, "report", description="may include sub-folders of the output folder")],
    outputs=[Output("text", T.STRING)],
    output=True,
)
def save_text(ctx, text, filename_prefix):
    """Write the text as <prefix>_00001.txt, _00002.txt, ... in the output folder, never overwriting."""
    data = (text if text.endswith("\n") else text + "\n").encode("utf-8")
    ctx.new_output_file(filename_prefix, ".txt", lambda tmp: tmp.write_bytes(data))
    return {"text": text}
