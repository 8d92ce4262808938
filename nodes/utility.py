"""Small helpers workflows need between the big nodes: Math on numbers, a Switch per type, Random Integer.

Ports are typed, so a switch for "any type" cannot be declared once: there is one per type worth switching
(image, latent, conditioning, text, float), all made by :func:`_switch` from the table ``SWITCHES``.
"""

from __future__ import annotations

import random

from nodegraph import Input, NodeUserError, Output, Param, PortType as T, node
from nodegraph.node import SEED_MAX

from ._expression import FUNCTIONS, evaluate
from .values import BIG, numbers


@node(
    "value.math",
    title="Math",
    category="values",
    params=[
        Param("expression", T.STRING, "a + b",
              description="arithmetic on a, b and c: + - * / // % **, comparisons (1 when true, 0 when false), "
                          f"pi, e and {' '.join(FUNCTIONS)}; e.g. 'round(a / 8) * 8'"),
        *numbers("a", "b", "c", description="a number the expression names; link one in or set it here"),
    ],
    outputs=[
        Output("float", T.FLOAT),
        Output("int", T.INT, "the result's whole part, as Python's int() gives it (2.7 -> 2, -2.7 -> -2)"),
    ],
)
def math_expression(ctx, expression, a, b, c):
    """Compute a number from up to three others, e.g. a size from an image's size or a strength from a seed.

    Link a, b and c from other nodes (Get Image Size, Float, ...) or set them here. The expression is read
    safely: only arithmetic runs, never Python code.
    """
    result = evaluate(expression, {"a": a, "b": b, "c": c})
    return {"float": float(result), "int": int(result)}


SWITCHES = (  # id suffix, title word, port type, output name
    ("image", "Image", T.IMAGE, "image"),
    ("latent", "Latent", T.LATENT, "latent"),
    ("conditioning", "Conditioning", T.CONDITIONING, "conditioning"),
    ("string", "Text", T.STRING, "text"),
    ("float", "Float", T.FLOAT, "value"),
)


def _switch(suffix: str, word: str, kind: T, output: str) -> None:
    """Declare the switch for one type: ``choose`` picks ``on_true`` or ``on_false``."""
    noun = word.lower()

    @node(
        f"switch.{suffix}",
        title=f"Switch {word}",
        category="values/switch",
        inputs=[
            Input("on_true", kind, optional=True, description="passed on when choose is on"),
            Input("on_false", kind, optional=True, description="passed on when choose is off"),
        ],
        params=[Param("choose", T.BOOL, True, description="on: pass on on_true; off: pass on on_false")],
        outputs=[Output(output, kind)],
        description=f"Pass on one of two {noun} inputs, picked by a switch (link a Switch value to flip several "
                    f"at once); both inputs are computed, only the chosen one goes on.",
    )
    def switch(ctx, on_true, on_false, choose):
        name, picked = ("on_true", on_true) if choose else ("on_false", on_false)
        if picked is None:
            raise NodeUserError(f"choose is {'on' if choose else 'off'}, so it passes on {name}, "
                                f"but nothing gives {name} a value: link it, or flip choose")
        return {output: picked}


for _row in SWITCHES:
    _switch(*_row)


@node(
    "value.random_int",
    title="Random Integer",
    category="values",
    params=[
        Param("seed", T.SEED, 0, min=0, max=SEED_MAX, description="same seed, same number, on any machine"),
        Param("min", T.INT, 0, min=-BIG, max=BIG, description="the smallest number it may give"),
        Param("max", T.INT, 100, min=-BIG, max=BIG, description="the largest number it may give"),
    ],
    outputs=[Output("value", T.INT)],
)
def random_integer(ctx, seed, min, max):  # noqa: A002 (the parameters' names, as the editor shows them)
    """A whole number from min to max (both included) picked by a seed, e.g. a random size or index.

    Python's ``random.Random(seed)`` is seeded from the integer itself, not from a per-process hash, so a
    seed gives the same number in every run, process and machine.
    """
    if min > max:
        raise NodeUserError(f"min {min} is above max {max}; set min at or below max")
    return {"value": random.Random(seed).randint(min, max)}
