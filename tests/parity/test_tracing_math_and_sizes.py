"""Tracing math autowrapping, sizes as outputs and more concrete_args.

Tracing sweep: corner cases real models hit while being traced, run with torch.fx (the oracle)
and with fxkit in both patch modes (fast and plain); helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

import fxkit

from .oracle import (
    error_type_of,
    parity_test,
    snippet,
    summary,
    traced,
)


# Wrapped at module scope by both libraries (wrap registers this module's globals).
def halve_last_dim(x, scale):
    return x[..., : x.shape[-1] // 2] * scale


torch.fx.wrap("halve_last_dim")
fxkit.wrap("halve_last_dim")


@snippet
def math_functions_on_proxy_sizes_are_recorded(fx):
    def fn(x):
        scale = math.sqrt(x.size(-1))
        rows = math.floor(x.size(0) / 2) + math.ceil(x.size(0) / 3)
        return x / scale, x[:rows]

    return traced(fx, fn, torch.ones(4, 4))


@snippet
def autowrap_modules_extended(fx):
    def fn(x):
        return F.relu(x) + operator.neg(x)

    tracer = fx.Tracer(autowrap_modules=(math, operator))
    graph = tracer.trace(fn)
    gm = fx.GraphModule(tracer.root, graph)
    return gm.code, summary(graph), gm(torch.tensor([-1.0, 2.0]))


@snippet
def sizes_and_torch_size_constants_as_outputs(fx):
    def fn(x):
        return x.size(), x.shape[1:], torch.Size([2, 3]), x.size(1)

    return traced(fx, fn, torch.ones(2, 3))


@snippet
def split_with_sizes_and_unflatten(fx):
    def fn(x):
        a, b = torch.split(x, [1, 2], dim=1)
        return a.unflatten(0, (2, -1)), F.linear(b, torch.ones(1, 2))

    return traced(fx, fn, torch.ones(4, 3))


@snippet
def dict_output_with_integer_keys(fx):
    def fn(x):
        return {0: x, 1: x + 1, "two": [x]}

    return traced(fx, fn, torch.ones(1))


@snippet
def concrete_args_list_of_placeholders_and_tensor(fx):
    def fn(tensors, weight):
        return tensors[0] * weight + tensors[1]

    gm = fx.symbolic_trace(fn, concrete_args={"tensors": [fx.PH, fx.PH]})
    return gm.code, summary(gm.graph), gm([torch.ones(1), torch.ones(1) * 2], torch.ones(1) * 3)


@snippet
def concrete_args_mismatch_fails_at_call(fx):
    def fn(x, flag):
        return x * 2 if flag else x

    gm = fx.symbolic_trace(fn, concrete_args={"flag": False})
    return gm.code, gm(torch.ones(1), False), error_type_of(lambda: gm(torch.ones(1), True))


@snippet
def leaf_called_with_star_list_and_functional_linear(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            inputs = [x]
            return self.lin(*inputs) + F.linear(x, self.lin.weight, self.lin.bias)

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def wrapped_function_called_from_module_forward(fx):
    class Net(nn.Module):
        def forward(self, x):
            return x + halve_last_dim(x, 2.0).sum()

    return traced(fx, Net(), torch.ones(2, 4))


class _OwnCallImpl(nn.Module):
    """Runs ``forward`` from its own ``_call_impl``: only a patched ``__call__`` sees its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.full((2,), 2.0))

    def _call_impl(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, x):
        return x * self.w


@snippet
def submodule_with_its_own_call_impl(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = _OwnCallImpl()

        def forward(self, x):
            return self.inner(x) + 1

    gm = fx.symbolic_trace(Net())
    # Whether the call was seen shows in the scopes recorded on the nodes.
    scopes = [list(node.meta.get("nn_module_stack", {})) for node in gm.graph.nodes]
    return gm.code, summary(gm.graph), gm(torch.ones(2)), scopes


@snippet
def submodule_with_its_own_getattr_reading_a_parameter(fx):
    class Aliased(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.full((2,), 3.0))

        def __getattr__(self, name):
            return super().__getattr__("w" if name == "alias" else name)

        def forward(self, x):
            return x * self.alias

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Aliased()

        def forward(self, x):
            return self.inner(x) - self.inner.alias

    return traced(fx, Net(), torch.ones(2))


@snippet
def parameter_of_a_plain_module_container_read_in_forward(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.holder = nn.Module()
            self.holder.w = nn.Parameter(torch.full((2,), 4.0))

        def forward(self, x):
            return x + self.holder.w

    return traced(fx, Net(), torch.ones(2))


test_fxkit_matches_torch_fx = parity_test(__name__, both_patch_modes=True)
