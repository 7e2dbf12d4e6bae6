"""Where a marker comment stands in a test file, so tests that check reported locations do not
hard-code line numbers."""

from __future__ import annotations


def line_of(path: str, marker: str) -> int:
    """The number of the first line of ``path`` that contains ``marker`` (and is not a lookup)."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if marker in line and "_line_of" not in line:
                return number
    raise AssertionError(marker)
