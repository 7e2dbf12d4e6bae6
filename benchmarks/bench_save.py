"""Saving and loading: fxkit.save + fxkit.load against a torch.fx GraphModule's pickle round trip."""

from __future__ import annotations

import os
import pickle
import tempfile
from types import ModuleType
from typing import Any

import torch

from benchmarks.harness import Workload

LAYERS, WIDTH = 200, 64


def _stack() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(*[torch.nn.Linear(WIDTH, WIDTH) for _ in range(LAYERS)])


_DIRECTORY: list[tempfile.TemporaryDirectory] = []  # one per run, removed at exit


def _setup(library: ModuleType) -> Any:
    if not _DIRECTORY:
        _DIRECTORY.append(tempfile.TemporaryDirectory(prefix="fxkit-bench-"))
    path = os.path.join(_DIRECTORY[0].name, "stack.fxkit")
    # Each sample writes a new file (rewriting one in place makes ext4 flush it on close), and the
    # disk holds one file at a time rather than one per sample.
    if os.path.exists(path):
        os.unlink(path)
    return library.symbolic_trace(_stack()), path


def _fxkit_round_trip(state: Any) -> object:
    import fxkit

    traced, path = state
    fxkit.save(traced, path)
    return fxkit.load(path)


def _pickle_round_trip(state: Any) -> object:
    traced, _ = state
    return pickle.loads(pickle.dumps(traced))


def workloads() -> list[Workload]:
    return [
        Workload(
            "round-trip-linear-200",
            fxkit=_fxkit_round_trip,
            baseline=_pickle_round_trip,
            setup=_setup,
            baseline_name="torch.fx pickle",
            target=1 / 0.3,
            description="fxkit.save + fxkit.load (a file) vs pickle.dumps + loads of torch.fx's GraphModule,"
            f" {LAYERS} Linear({WIDTH}, {WIDTH}) layers",
        )
    ]
