"""Text operations: Concatenate, Replace and Format, e.g. to build prompts or file names from other values.

Format's fields are numbers (FLOAT, which an INT link widens to), because ports are typed: that covers sizes,
indices, counts and Math results; join pieces of text with Concatenate.
"""

from __future__ import annotations

import re
import string

from nodegraph import NodeUserError, Output, Param, PortType as T, node

from .values import numbers

FIELDS = ("a", "b", "c")
MAX_SPEC_NUMBER = 1000  # the largest width or precision a format spec may ask for


@node(
    "string.concat",
    title="Concatenate Text",
    category="values/text",
    params=[
        Param("a", T.STRING, "", hint="multiline"),
        Param("b", T.STRING, "", hint="multiline"),
        Param("separator", T.STRING, "", description="put between a and b, e.g. ', ' to join two prompts"),
    ],
    outputs=[Output("text", T.STRING)],
)
def concat(ctx, a, b, separator):
    """Join two texts with a separator between them, e.g. a shared style onto each prompt."""
    return {"text": f"{a}{separator}{b}"}


@node(
    "string.replace",
    title="Replace Text",
    category="values/text",
    params=[
        Param("text", T.STRING, "", hint="multiline"),
        Param("find", T.STRING, "", description="what to replace, everywhere it occurs; empty: nothing"),
        Param("replace", T.STRING, "", description="what goes in its place; with regex, \\1 or \\g<name> "
                                                    "inserts a group"),
        Param("regex", T.BOOL, False, description="read find as a Python regular expression"),
    ],
    outputs=[Output("text", T.STRING)],
)
def replace(ctx, text, find, replace, regex):
    """Replace every occurrence of a piece of text (or of a regular expression) with another."""
    if not find:
        return {"text": text}
    if not regex:
        return {"text": text.replace(find, replace)}
    try:
        pattern = re.compile(find)
    except re.error as e:
        raise NodeUserError(f"find {find!r} is not a valid regular expression: {e}") from None
    try:
        return {"text": pattern.sub(replace, text)}
    except re.error as e:  # a bad group reference in replace
        raise NodeUserError(f"replace {replace!r} does not fit the expression {find!r}: {e}") from None


@node(
    "string.format",
    title="Format Text",
    category="values/text",
    params=[
        Param("template", T.STRING, "{a}x{b}", hint="multiline",
              description="text with fields {a}, {b} and {c}, each optionally with a format, e.g. {a:04} "
                          "or {b:.2f}; {{ and }} write braces"),
        *numbers(*FIELDS, description="a number the template writes where its name stands in braces"),
    ],
    outputs=[Output("text", T.STRING)],
)
def format_text(ctx, template, a, b, c):
    """Write numbers into a text, e.g. a file name prefix from an image's size ('shots/{a}x{b}').

    A whole number is written without a decimal point (512, not 512.0).
    """
    values = {name: _whole(value) for name, value in zip(FIELDS, (a, b, c))}
    try:
        return {"text": _Fields().vformat(template, (), values)}
    except ValueError as e:  # an unclosed brace, an unknown conversion
        raise NodeUserError(f"the template {template!r} cannot be read: {e}") from None


def _whole(value: float) -> int | float:
    return int(value) if value.is_integer() else value


class _Fields(string.Formatter):
    """Python's str.format with only the named fields a, b and c: no positional fields, no attribute or
    index access (``{a.__class__}``, ``{a[0]}``), which could reach into objects; widths and precisions are
    bounded, so a template cannot ask for a gigabyte of padding."""

    def get_field(self, field_name, args, kwargs):
        if field_name in FIELDS:
            return kwargs[field_name], field_name
        if field_name.isdigit():
            raise NodeUserError("fields must be named: write {a}, {b} or {c}, not {} or {0}")
        if "." in field_name or "[" in field_name:
            raise NodeUserError(f"{{{field_name}}}: attribute and index access are not allowed in a "
                                f"template; write {{a}}, {{b}} or {{c}}")
        raise NodeUserError(f"{{{field_name}}} is not a field; the fields are {{a}}, {{b}} and {{c}}")

    def format_field(self, value, format_spec):
        if any(int(n) > MAX_SPEC_NUMBER for n in re.findall(r"\d+", format_spec)):
            raise NodeUserError(f"format {format_spec!r}: widths and precisions above {MAX_SPEC_NUMBER} "
                                f"are not allowed")
        try:
            return super().format_field(value, format_spec)
        except ValueError as e:
            raise NodeUserError(f"format {format_spec!r} does not fit the number {value}: {e}") from None
