"""Shared test fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def seeded_torch_rng() -> Iterator[None]:
    """Every test starts from the same torch RNG state and leaves the global state as it found it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield
