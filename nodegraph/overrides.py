"""Parameter overrides named ``NODE.PARAM``: ``nodegraph run --set`` and the columns of batch job files.

Inside a subgraph instance the path goes on with dots: ``hires.sampler.seed`` is parameter ``seed`` of
inner node ``sampler`` in instance ``hires`` (for that instance only), ``hires.strength`` a parameter the
subgraph promotes. Node ids never hold a dot, so the last dot always starts the parameter.

Both read a value written as text the same way: as JSON when it parses (``4``, ``true``, ``[1, 2]``),
else as the text itself; a STRING parameter always keeps the text as written (so a prompt ``1984`` stays
text). The value is then checked against the node's declaration exactly as ``Workflow.set_param`` does.
"""

from __future__ import annotations

import json
from typing import Any

from .types import PortType


def split_key(key: str) -> tuple[str, str]:
    """``"NODE.PARAM"`` -> ``("NODE", "PARAM")`` and ``"hires.sampler.seed"`` -> ``("hires/sampler", "seed")``,
    or ``ValueError`` when it is not of that form."""
    path, dot, param = key.rpartition(".")
    if not dot or not param or not all(path.split(".")):
        raise ValueError(f"{key!r} is not NODE.PARAM")
    return path.replace(".", "/"), param


def parse_assignment(text: str) -> tuple[str, str, str]:
    """``"NODE.PARAM=VALUE"`` -> ``(node, param, raw value text)``."""
    target, eq, raw = text.partition("=")
    try:
        if not eq:
            raise ValueError
        node_id, param = split_key(target)
    except ValueError:
        raise ValueError(f"--set {text!r}: write NODE.PARAM=VALUE") from None
    return node_id, param, raw


def check(workflow, node_id: str, param: str, value: Any) -> Any:
    """``value`` in canonical form for ``node_id.param``; raises :class:`NodegraphError` saying why not."""
    workflow.inner_node(node_id)
    return workflow.check_param(node_id, param, value)


def check_text(workflow, node_id: str, param: str, raw: str) -> Any:
    """A value written as text (a ``--set`` value, a CSV cell), read and checked."""
    decl = workflow.param_decl(node_id, param)
    if decl.type is PortType.STRING:
        value: Any = raw
    else:
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
    return workflow.check_param(node_id, param, value)
