"""Where node types are registered and found.

Node families live in packages named by the ``nodegraph.nodes`` entry point
group (the built-in ``nodes`` package is one); the first lookup imports them
all, so the engine, the CLI and the editor see the same set and never import
node modules one by one.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import threading
from importlib.metadata import entry_points
from typing import Any, Callable, Iterable

from .node import Input, NodeType, Output, Param


class Registry:
    def __init__(self, discover: bool = True):
        self._types: dict[str, NodeType] = {}
        self._discover = discover
        self._discovered = False
        self._lock = threading.RLock()

    def add(self, node_type: NodeType, replace: bool = False) -> NodeType:
        with self._lock:
            if node_type.id in self._types and not replace:
                raise ValueError(f"node type {node_type.id!r} is registered twice")
            self._types[node_type.id] = node_type
        return node_type

    def get(self, type_id: str) -> NodeType | None:
        self._ensure_discovered()
        return self._types.get(type_id)

    def __contains__(self, type_id: str) -> bool:
        return self.get(type_id) is not None

    def all(self) -> list[NodeType]:
        self._ensure_discovered()
        return sorted(self._types.values(), key=lambda t: (t.category, t.id))

    def _ensure_discovered(self) -> None:
        if self._discovered or not self._discover:
            return
        with self._lock:
            if self._discovered:
                return
            self._discovered = True
            names = {ep.value for ep in entry_points(group="nodegraph.nodes")}
            names.add("nodes")  # the built-in family, also when running from a source tree
            for name in sorted(names):
                _import_package(name)


def _import_package(name: str) -> None:
    """Import a node package and every module in it (each registers its nodes on import)."""
    package = importlib.import_module(name)
    for info in pkgutil.iter_modules(getattr(package, "__path__", []), prefix=f"{name}."):
        if not info.name.rsplit(".", 1)[-1].startswith("_"):
            importlib.import_module(info.name)


#: The registry every front door uses.
REGISTRY = Registry()


def node(
    id: str,
    *,
    title: str,
    category: str,
    version: int = 1,
    inputs: Iterable[Input] = (),
    outputs: Iterable[Output] = (),
    params: Iterable[Param] = (),
    description: str = "",
    output: bool = False,
    always_run: bool = False,
    identity: Callable[..., Any] | None = None,
    upgrades: dict[int, Callable[[dict], dict]] | None = None,
    registry: Registry | None = None,
):
    """Decorator declaring and registering a node type whose ``run`` is the function."""

    def wrap(fn):
        node_type = NodeType(
            id=id,
            version=version,
            title=title,
            category=category,
            run=fn,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            params=tuple(params),
            description=description or " ".join(inspect.cleandoc(fn.__doc__ or "").split("\n\n")[0].split()),
            output=output,
            always_run=always_run,
            identity=identity,
            upgrades=dict(upgrades or {}),
        )
        (registry or REGISTRY).add(node_type)
        fn.node_type = node_type
        return fn

    return wrap
