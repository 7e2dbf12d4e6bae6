"""Per-thread on/off switches for the fast paths that sit beside a plain definition.

The Interpreter, the subgraph matcher and the rewriter each have a plain version (the definition)
and a fast one that must give the same answers. A switch lets tests and users run either; it is
on by default, and turning it off affects only the calling thread until the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

__all__ = ["FastPathSwitch"]


class FastPathSwitch:
    """Whether one fast path is used, per thread; ``with switch.use(False): ...`` turns it off."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._local = threading.local()

    def enabled(self) -> bool:
        """True unless the calling thread is inside ``use(False)``."""
        return getattr(self._local, "enabled", True)

    @contextlib.contextmanager
    def use(self, enabled: bool = True) -> Iterator[None]:
        """Use (or, with ``False``, bypass) the fast path in this thread for the block."""
        if not isinstance(enabled, bool):
            raise TypeError(
                f"use_fast_path({enabled!r}): expected True or False for the {self.name} fast path"
            )
        previous = self.enabled()
        self._local.enabled = enabled
        try:
            yield
        finally:
            self._local.enabled = previous

    def __repr__(self) -> str:
        return f"FastPathSwitch({self.name!r}, enabled={self.enabled()})"
