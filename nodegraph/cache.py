"""Node outputs kept where they were made, under a byte budget, least recently used first out.

An entry's outputs stay on the device that produced them. When the resident
bytes pass the budget, the least recently used entries are spilled to host
memory (their GPU tensors and modules moved to the CPU) while the spill budget
allows, and dropped after that. A spilled entry moves back to its device when
it is used again. Nothing here imports torch: values are inspected through
``sys.modules``, so an engine that never touches torch never loads it.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any


_RELEASE_HOOKS: list = []


def on_release(hook) -> None:
    """Register a function the engine calls when the device runs out of memory, for node modules that
    keep loaded objects of their own (outside the engine's cache) and can let them go."""
    _RELEASE_HOOKS.append(hook)


def run_release_hooks() -> None:
    for hook in list(_RELEASE_HOOKS):
        hook()


@dataclass
class Entry:
    outputs: dict[str, Any]
    value_ids: dict[str, str]  # identity of each output's value, for early cutoff downstream
    nbytes: int = 0
    spilled: bool = False
    device: str = "cpu"
    meta: dict[str, Any] = field(default_factory=dict)


def nbytes(value: Any) -> int:
    """Memory held by a value: tensors, modules, arrays, and containers of them."""
    torch = sys.modules.get("torch")
    if torch is not None:
        if isinstance(value, torch.Tensor):
            return value.numel() * value.element_size()
        if isinstance(value, torch.nn.Module):
            tensors = list(value.parameters()) + list(value.buffers())
            return sum(t.numel() * t.element_size() for t in tensors)
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value)
    if _is_record(value):  # a model bundle, a latent with its mask, ...
        return sum(nbytes(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, (bytes, bytearray, str)):
        return len(value)
    return int(getattr(value, "nbytes", 0) or 0)


def move(value: Any, device: str) -> Any:
    """``value`` with its tensors and modules on ``device`` (modules move in place).

    GPU tensors spill into pinned (page-locked) host memory: copies to and from it run at bus
    speed, where pageable memory measured about 1 GiB/s on an H100 (docs/benchmarks.md).
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return value
    if isinstance(value, torch.Tensor):
        if device == "cpu" and value.is_cuda:
            try:
                pinned = torch.empty(value.shape, dtype=value.dtype, device="cpu", pin_memory=True)
                return pinned.copy_(value)
            except RuntimeError:  # pinned memory exhausted: pageable memory still works
                return value.to("cpu")
        return value.to(device)
    if isinstance(value, torch.nn.Module):
        return value.to(device)
    if isinstance(value, dict):
        return {k: move(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(move(v, device) for v in value)
    if _is_record(value):
        return dataclasses.replace(value, **{f.name: move(getattr(value, f.name), device)
                                             for f in dataclasses.fields(value) if f.init})
    return value


def _is_record(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def same_value(a: Any, b: Any) -> bool:
    """Whether a re-run produced exactly the value it produced before (early cutoff)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(a, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and bool(torch.equal(a, b))
    if torch is not None and isinstance(a, torch.nn.Module):
        return False  # a fresh model object: compare by identity only
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if _is_record(a):
        return all(same_value(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    np = sys.modules.get("numpy")
    if np is not None and isinstance(a, np.ndarray):
        return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))
    try:
        return bool(a == b)
    except Exception:
        return False


class Cache:
    """LRU cache of node outputs keyed by fingerprint.

    ``budget`` bounds the bytes resident on their devices; ``spill_budget`` bounds the
    bytes of GPU entries spilled to host memory (0 turns spilling off).
    """

    def __init__(self, budget: int, spill_budget: int = 0, remember_evicted: int = 100_000, mover=move):
        self.budget = budget
        self._move = mover
        self.spill_budget = spill_budget
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._evicted: OrderedDict[str, None] = OrderedDict()
        self._remember = remember_evicted
        self._lock = threading.RLock()
        self.resident_bytes = 0
        self.spilled_bytes = 0
        self.stats = {"hits": 0, "misses": 0, "spills": 0, "restores": 0, "drops": 0}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def peek(self, key: str) -> Entry | None:
        """The entry without touching its recency or moving it."""
        return self._entries.get(key)

    def get(self, key: str) -> Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.stats["misses"] += 1
                return None
            self.stats["hits"] += 1
            self._entries.move_to_end(key)
            if entry.spilled:
                entry.outputs = self._move(entry.outputs, entry.device)
                entry.spilled = False
                self.spilled_bytes -= entry.nbytes
                self.resident_bytes += entry.nbytes
                self.stats["restores"] += 1
                entry.meta["restored"] = True
                self._enforce(protect=key)
            return entry

    def put(self, key: str, entry: Entry) -> None:
        with self._lock:
            self.discard(key)
            entry.nbytes = nbytes(entry.outputs)
            self._entries[key] = entry
            self.resident_bytes += entry.nbytes
            self._evicted.pop(key, None)
            if entry.nbytes > self.budget:  # can never be resident: spill it or let it go now
                self._spill_or_drop(key, entry)
            self._enforce(protect=key)

    def discard(self, key: str) -> None:
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                if entry.spilled:
                    self.spilled_bytes -= entry.nbytes
                else:
                    self.resident_bytes -= entry.nbytes

    def was_evicted(self, key: str) -> bool:
        return key in self._evicted

    def release_device(self) -> None:
        """Spill or drop every resident GPU entry (after an out-of-memory error)."""
        with self._lock:
            for key in list(self._entries):
                entry = self._entries[key]
                if not entry.spilled and entry.device != "cpu":
                    self._spill_or_drop(key, entry)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.resident_bytes = self.spilled_bytes = 0

    def _enforce(self, protect: str | None = None) -> None:
        """Spill or drop least recently used entries until both budgets hold (O(1) when they already do)."""
        if self.resident_bytes > self.budget:
            for key in [k for k, e in self._entries.items() if not e.spilled and k != protect]:
                if self.resident_bytes <= self.budget:
                    break
                self._spill_or_drop(key, self._entries[key])
        if self.spilled_bytes > self.spill_budget:
            for key in [k for k, e in self._entries.items() if e.spilled]:
                if self.spilled_bytes <= self.spill_budget:
                    break
                self._drop(key)

    def _spill_or_drop(self, key: str, entry: Entry) -> None:
        if entry.device == "cpu" or entry.nbytes > self.spill_budget:
            self._drop(key)
            return
        entry.outputs = self._move(entry.outputs, "cpu")
        entry.spilled = True
        self.resident_bytes -= entry.nbytes
        self.spilled_bytes += entry.nbytes
        self.stats["spills"] += 1

    def _drop(self, key: str) -> None:
        self.discard(key)
        self.stats["drops"] += 1
        self._evicted[key] = None
        while len(self._evicted) > self._remember:
            self._evicted.popitem(last=False)
