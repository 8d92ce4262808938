"""The part of the engine's context a node's run function uses, and nothing else: benchmarks call run
functions directly with it, so their figures hold no engine overhead (bench_engine measures that)."""

from __future__ import annotations

from pathlib import Path


class BareContext:
    def __init__(self, device):
        self.device = device

    def input_path(self, path):
        return Path(path)

    def progress(self, fraction, preview=None):
        pass

    def check_cancelled(self):
        pass
