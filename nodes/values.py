"""Plain values (number, text, seed, switch) to drive several nodes' parameters from one place.

Link a value node's output onto a parameter and the parameter becomes a socket: one Seed can feed every
sampler, one Float every blur radius.
"""

from __future__ import annotations

from nodegraph import Output, Param, PortType as T, node
from nodegraph.node import SEED_MAX

BIG = 2**53  # the largest integer a JSON reader in any language keeps exactly
NUMBER = 1e12  # the Float node's range, shared by other nodes' free number parameters


def numbers(*names: str, description: str = "") -> list[Param]:
    """FLOAT parameters (default 0) with the Float node's range, such as the a, b, c of Math and Format Text."""
    return [Param(name, T.FLOAT, 0.0, min=-NUMBER, max=NUMBER, description=description) for name in names]


@node("value.int", title="Integer", category="values", params=[Param("value", T.INT, 0, min=-BIG, max=BIG)],
      outputs=[Output("value", T.INT)])
def integer(ctx, value):
    """A whole number to drive several nodes' INT parameters from one place (a size, a step count)."""
    return {"value": value}


@node("value.float", title="Float", category="values", params=[Param("value", T.FLOAT, 0.0, min=-NUMBER, max=NUMBER)],
      outputs=[Output("value", T.FLOAT)])
def floating(ctx, value):
    """A decimal number to drive several nodes' FLOAT parameters from one place (a strength, a scale)."""
    return {"value": value}


@node("value.string", title="Text", category="values", params=[Param("value", T.STRING, "", hint="multiline")],
      outputs=[Output("value", T.STRING)])
def text(ctx, value):
    """A piece of text, such as a prompt shared by several nodes."""
    return {"value": value}


@node("value.bool", title="Switch", category="values", params=[Param("value", T.BOOL, False)],
      outputs=[Output("value", T.BOOL)])
def switch(ctx, value):
    """True or false, to drive BOOL parameters or pick an input of a Switch node."""
    return {"value": value}


@node("value.seed", title="Seed", category="values", params=[Param("seed", T.SEED, 0, min=0, max=SEED_MAX)],
      outputs=[Output("seed", T.SEED)])
def seed(ctx, seed):
    """A random seed to share between nodes (same seed, same result)."""
    return {"seed": seed}
