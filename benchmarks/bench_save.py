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


def _setup(library: ModuleType) -> Any:
    path = os.path.join(tempfile.mkdtemp(prefix="fxkit-bench-"), "stack.fxkit")
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
