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


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's headless Chromium for the HTML view tests; installed here when missing and we are root.

    The view tests must run in CI, so a missing browser is installed rather than skipped; the test
    is skipped (with the reason) only when the installation itself fails.
    """
    import os
    import shutil
    import subprocess

    if not os.path.exists(CHROMIUM) and shutil.which("apt-get") and os.geteuid() == 0:
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            subprocess.run(command, capture_output=True, timeout=900, check=False)
    if not os.path.exists(CHROMIUM):
        pytest.skip(
            f"HTML VIEW TESTS NOT RUN: {CHROMIUM} is missing and `apt-get install -y chromium` did not"
            " provide it (not root, or no package index); install Debian's chromium package"
        )
    return CHROMIUM
