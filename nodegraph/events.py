"""Execution events, delivered to a listener on the thread that runs the workflow.

Kinds: ``started`` (message: why it runs), ``progress`` (fraction, optional preview
image), ``finished`` (seconds), ``cached``, ``skipped`` (message: muted, bypassed
or which input is missing), ``failed`` (message), ``cancelled``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    kind: str
    node: str
    fraction: float | None = None
    preview: Any = None
    message: str = ""
    seconds: float | None = None
