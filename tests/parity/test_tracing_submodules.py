"""Tracing parameters, buffers and submodule structure: shared modules, containers, slices.

Tracing sweep: corner cases real models hit while being traced, run with torch.fx (the oracle)
and with fxkit in both patch modes (fast and plain); helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import collections

import torch
import torch.fx
from torch import nn

from .oracle import parity_test, snippet, summary, traced


@snippet
def parameter_in_arithmetic(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.full((3,), 2.0))
            self.shift = nn.Parameter(torch.ones(3))

        def forward(self, x):
            return x * self.scale - self.shift / 2 + self.scale.sum()

    return traced(fx, Net(), torch.ones(3))


@snippet
def buffer_updated_in_place(fx):
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("steps", torch.zeros(1))

        def forward(self, x):
            self.steps.add_(1)
            return x + self.steps

    gm = fx.symbolic_trace(Counter())
    first = gm(torch.zeros(2))
    second = gm(torch.zeros(2))
    return gm.code, summary(gm.graph), first, second, gm.steps


@snippet
def identity_modules_are_leaves(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.skip = nn.Identity()
            self.body = nn.Sequential(nn.Identity(), nn.Linear(2, 2))

        def forward(self, x):
            return self.skip(x) + self.body(x)

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def nested_containers_numeric_and_string_keys(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stages = nn.ModuleList([nn.Sequential(nn.Linear(2, 2), nn.ReLU()), nn.Linear(2, 2)])
            self.heads = nn.ModuleDict({"cls": nn.Linear(2, 1), "0": nn.Linear(2, 3)})
            self.seq = nn.Sequential(collections.OrderedDict(box=nn.Sequential(nn.Tanh())))

        def forward(self, x):
            for stage in self.stages:
                x = stage(x)
            x = self.seq(x)
            return {name: head(x) for name, head in self.heads.items()}

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def shared_submodule_called_twice(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return self.lin(self.lin(x)) + self.lin(x)

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def shared_module_under_two_names(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.first = nn.Linear(2, 2)
            self.second = self.first

        def forward(self, x):
            return self.second(self.first(x))

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def len_of_module_list_and_range_loop(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(2, 2) for _ in range(3))
            self.n = 2

        def forward(self, x):
            for index in range(self.n):
                x = self.layers[index](x) + index
            return x * len(self.layers)

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def module_list_sliced_and_negative_index(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(2, 2) for _ in range(4))

        def forward(self, x):
            for layer in self.layers[1:3]:
                x = layer(x)
            return self.layers[-1](x)

    return traced(fx, Net(), torch.ones(1, 2))


test_fxkit_matches_torch_fx = parity_test(__name__, both_patch_modes=True)
