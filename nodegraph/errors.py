"""Errors a user can cause, each carrying what it needs to be shown in one line.

Every error the CLI or the editor should show without a traceback derives from
:class:`NodegraphError`. Anything else escaping the engine is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass


class NodegraphError(Exception):
    """A problem caused by input (a file, a workflow, a parameter), not by a bug."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a workflow, located by node and port where it has one."""

    message: str
    node: str | None = None
    port: str | None = None

    def __str__(self) -> str:
        where = []
        if self.node is not None:
            where.append(f"node '{self.node}'")
        if self.port is not None:
            where.append(f"port '{self.port}'")
        return f"{' '.join(where)}: {self.message}" if where else self.message


class WorkflowFileError(NodegraphError):
    """The file could not be read as a workflow at all (missing, not JSON, too big, ...)."""


class WorkflowInvalid(NodegraphError):
    """The workflow was read but breaks rules; ``problems`` lists every one of them."""

    def __init__(self, problems: list[Problem], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        count = len(self.problems)
        first = str(self.problems[0]) if self.problems else "invalid"
        more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
        super().__init__(f"{head}{first}{more}")


class ParamError(NodegraphError):
    """A parameter value was refused; names the node and the parameter."""

    def __init__(self, node: str, param: str, message: str):
        self.node, self.param = node, param
        super().__init__(f"node '{node}' parameter '{param}': {message}")


class NodeFailed(NodegraphError):
    """A node raised while running. ``result`` holds what the run did before it."""

    def __init__(self, node: str, message: str, result=None):
        self.node = node
        self.result = result
        super().__init__(f"node '{node}' failed: {message}")


class RunCancelled(NodegraphError):
    """The run was cancelled; ``result`` holds what finished before the cancel."""

    def __init__(self, node: str | None = None, result=None):
        self.node = node
        self.result = result
        super().__init__(f"cancelled{f' while running node {node!r}' if node else ''}")


class NodeUserError(NodegraphError):
    """Raised by a node's ``run`` for bad input it can explain (a missing file, a bad size).

    The engine turns it into :class:`NodeFailed` naming the node, with no traceback shown.
    """
