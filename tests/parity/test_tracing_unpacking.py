"""Tracing unpacking, iteration and in-place operations.

Tracing sweep: corner cases real models hit while being traced, run with torch.fx (the oracle)
and with fxkit in both patch modes (fast and plain); helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from .oracle import (
    error_of,
    error_type_of,
    parity_test,
    snippet,
    summary,
    traced,
)


@snippet
def split_chunk_unbind_unpacked(fx):
    def fn(x):
        a, b = x.split(2, dim=-1)
        c, d = x.chunk(2)
        e, f = x.unbind(0)
        return a * b, c - d, e + f

    return traced(fx, fn, torch.arange(8.0).reshape(2, 4))


@snippet
def loop_over_unbind_raises(fx):
    def fn(x):
        return [row.sum() for row in x.unbind(0)]

    return error_type_of(lambda: fx.symbolic_trace(fn))


@snippet
def star_expansion_of_shape_in_call(fx):
    def fn(x, y):
        return y.expand(*x.shape)

    return error_type_of(lambda: fx.symbolic_trace(fn))


@snippet
def list_and_tuple_of_shape(fx):
    def as_list(x):
        return x.new_zeros(list(x.shape))

    def as_tuple(x):
        return x.new_zeros(tuple(x.shape))

    return error_type_of(lambda: fx.symbolic_trace(as_list)), error_type_of(
        lambda: fx.symbolic_trace(as_tuple)
    )


@snippet
def shape_slices_and_comparisons(fx):
    def fn(x, y):
        same = x.shape == y.shape
        return x.reshape(x.size()[:1] + (-1,)), same, x.size(0) == 2

    return traced(fx, fn, torch.ones(2, 3), torch.ones(2, 3))


@snippet
def augmented_assignment_and_item_assignment(fx):
    def fn(x):
        y = x.clone()
        y += 1
        y *= 2
        y -= x
        return y

    def assigns_item(x):
        x[0] = 0.5
        return x

    return traced(fx, fn, torch.ones(2, 2)), error_of(lambda: fx.symbolic_trace(assigns_item))


@snippet
def inplace_functional_and_module(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.act = nn.ReLU(inplace=True)

        def forward(self, x):
            y = x * 1
            return F.relu(self.act(y), inplace=True).add_(1)

    return traced(fx, Net(), torch.tensor([-1.0, 2.0]))


@snippet
def min_max_of_sizes_raise(fx):
    def fn(x):
        return x[: min(x.size(0), 4)]

    return error_type_of(lambda: fx.symbolic_trace(fn))


@snippet
def tensor_attributes_as_nodes(fx):
    def fn(x):
        return x.T, x.mT, x.requires_grad, x.is_floating_point()

    gm = fx.symbolic_trace(fn)
    return gm.code, summary(gm.graph), gm(torch.ones(2, 3))


@snippet
def conversions_and_layout_methods(fx):
    def fn(x, y):
        return x.float().type_as(y).permute(1, 0).contiguous(), torch.flatten(x.double(), 1), x.long().dtype

    return traced(fx, fn, torch.ones(2, 3, dtype=torch.int32), torch.ones(1, dtype=torch.float64))


test_fxkit_matches_torch_fx = parity_test(__name__, both_patch_modes=True)
