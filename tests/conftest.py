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


@pytest.fixture(params=["per-class-patches", "nn-module-patches"])
def both_patch_kinds(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a test with the tracer's fast patches (``__getattr__`` per class, ``_call_impl``) and with
    the plain ones (``nn.Module.__getattr__`` and ``__call__``, as torch.fx patches them)."""
    from fxkit.tracer import use_fast_patches

    with use_fast_patches(request.param == "per-class-patches"):
        yield request.param


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's headless Chromium for the HTML view tests (the README's test command installs it)."""
    import os

    if not os.path.exists(CHROMIUM):
        pytest.skip(
            f"HTML VIEW TESTS NOT RUN: {CHROMIUM} is missing; install Debian's chromium package"
            " (the README's test command does: apt-get install -y chromium)"
        )
    return CHROMIUM
