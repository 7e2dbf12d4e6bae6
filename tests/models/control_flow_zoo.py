"""Small models of our own whose control flow depends on the values or sizes of their inputs."""

from __future__ import annotations

import json
from typing import Callable, List

import torch
from torch import nn

from .zoo_entry import Inputs, ZooEntry


def _floats(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


class SignBranch(nn.Module):
    """Takes one of two branches on the sign of the input's sum."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return torch.relu(self.linear(x))
        return -self.linear(x)


class RowLoop(nn.Module):
    """A Python loop over the rows of its input: the row count is fixed by the example."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = []
        for index in range(x.shape[0]):
            rows.append(x[index] * self.scale * (index + 1))
        return torch.stack(rows)


class ShapeUnpacking(nn.Module):
    """``len()``, star-unpacking and ``int()`` of sizes, as attention code does."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *batch_shape, width = x.shape
        heads = int(width // 4)
        if len(batch_shape) != 2:
            raise ValueError("expected (batch, sequence, width)")
        y = self.proj(x).view(*batch_shape, heads, 4)
        return y.transpose(1, 2).reshape(*batch_shape, width)


class TopKWidth(nn.Module):
    """Keeps a number of columns computed from the data (``int()`` of a tensor)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = int((x[0] > 0).sum()) + 1
        return x[:, :keep].cumsum(dim=1)


class ItemThreshold(nn.Module):
    """Compares a Python float from ``.item()`` against a threshold."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        peak = x.abs().max().item()
        if peak > 2.0:
            return x / peak
        return x * 2.0


class JsonLogger(nn.Module):
    """Keeps statistics as JSON text: nothing of it can be traced, so it must become a leaf."""

    def __init__(self) -> None:
        super().__init__()
        self.records: List[str] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.records.append(json.dumps(x.mean(dim=0).tolist()))
        return x * 1.0


class LoggedSignBranch(nn.Module):
    """A data-dependent branch around a submodule that cannot be traced at all."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 8)
        self.logger = JsonLogger()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.logger(self.linear(x))
        if x.mean() > 0:
            return y.sigmoid()
        return y.tanh()


def _x(make: Callable[[int], torch.Tensor], seed: int) -> Inputs:
    return lambda model: {"x": make(seed)}


def _entry(
    name: str, build: Callable[[], nn.Module], make: Callable[[int], torch.Tensor], *others: Inputs
) -> ZooEntry:
    """Captured on ``make(1)``, checked on ``make(2)`` and ``make(3)`` and on the ``others``."""
    return ZooEntry(name, "control-flow", build, _x(make, 1), (_x(make, 2), _x(make, 3)), others)


def control_flow_entries() -> List[ZooEntry]:
    """Our own models with data-dependent control flow."""

    def positive(seed: int) -> torch.Tensor:
        return _floats(seed, 4, 8).abs() + 0.1

    def rows(seed: int) -> torch.Tensor:
        # Two positive entries in the first row for seeds 1-3: three columns are kept.
        first_rows = [[1.0, -1.0, 2.0, -3.0], [4.0, -2.0, 1.0, -1.0], [0.5, -2.0, 3.0, -1.0]]
        return torch.tensor([first_rows[seed - 1]] * 3)

    return [
        _entry("sign-branch", SignBranch, positive, _x(lambda seed: -positive(seed) * 10, 4)),
        _entry(
            "row-loop", RowLoop, lambda seed: _floats(seed, 3, 8), _x(lambda seed: _floats(seed, 5, 8), 4)
        ),
        _entry(
            "shape-unpacking",
            ShapeUnpacking,
            lambda seed: _floats(seed, 2, 5, 8),
            _x(lambda seed: _floats(seed, 6, 5, 8), 4),
            _x(lambda seed: _floats(seed, 5, 8), 5),
        ),
        _entry("topk-width", TopKWidth, rows, _x(lambda seed: torch.ones(3, 4), 4)),
        _entry(
            "item-threshold",
            ItemThreshold,
            lambda seed: _floats(seed, 4, 8) * 10,
            _x(lambda seed: _floats(seed, 4, 8) * 0.01, 4),
        ),
        _entry("logged-sign-branch", LoggedSignBranch, positive, _x(lambda seed: -positive(seed) * 10, 4)),
    ]


def count_positive(x: torch.Tensor) -> torch.Tensor:
    """Counts with Python numbers, which cannot be traced: tests name it in ``leaf_functions``."""
    return torch.full_like(x, float(sum(1 for value in x.flatten().tolist() if value > 0)))


class Helpers:
    """A static method, for ``leaf_functions`` given as a class attribute."""

    @staticmethod
    def halve(x: torch.Tensor) -> torch.Tensor:
        return x / 2
