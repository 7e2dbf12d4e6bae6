"""Pausing Python's cyclic garbage collector around bulk graph work."""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator

__all__ = ["collector_paused"]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector for the duration of the block, restoring its previous state.

    Tracing, code generation, pickling and rewriting allocate many objects that form no garbage
    cycles; letting the collector rescan the growing heap meanwhile costs more than the work
    itself (2-4x on 10k-node graphs). The state is restored on exit, also when the block raises.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
