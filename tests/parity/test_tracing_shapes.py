"""Tracing shapes and sizes: unpacking, negative indices, Size arithmetic, numel/dim.

Tracing sweep: corner cases real models hit while being traced, run with torch.fx (the oracle)
and with fxkit in both patch modes (fast and plain); helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import torch
import torch.fx

from .oracle import (
    error_of,
    error_type_of,
    parity_test,
    snippet,
    traced,
)


@snippet
def shape_unpacked_with_fixed_count(fx):
    def fn(x):
        b, c, h, w = x.shape
        return x.view(b, c, h * w).mean(-1) * w

    return traced(fx, fn, torch.randn(2, 3, 4, 5))


@snippet
def shape_unpacked_with_star(fx):
    def fn(x):
        b, *rest = x.shape
        return x.reshape(b, -1), rest

    return error_type_of(lambda: fx.symbolic_trace(fn))


@snippet
def size_iterated_without_count_raises(fx):
    def fn(x):
        return [d for d in x.size()]

    outcome = error_of(lambda: fx.symbolic_trace(fn))
    return outcome[0], "iterate" in outcome[1] or "iter" in outcome[1]


@snippet
def shape_negative_index_and_floordiv(fx):
    def fn(x):
        half = x.size(-1) // 2
        return x[..., :half] * x.shape[-1]

    return traced(fx, fn, torch.randn(2, 6))


@snippet
def torch_size_arithmetic(fx):
    def fn(x, y):
        shape = x.shape[:-1] + (y.shape[-1],)
        return torch.zeros(shape) + y.sum()

    return traced(fx, fn, torch.randn(2, 3, 4), torch.randn(5))


@snippet
def view_batch_flatten(fx):
    def fn(x):
        return x.view(x.size(0), -1)

    return traced(fx, fn, torch.randn(2, 3, 4))


@snippet
def new_zeros_and_arange_from_sizes(fx):
    def fn(x):
        positions = torch.arange(x.size(1))
        return x.new_zeros(x.size(0), x.size(1)) + positions, x.new_ones((2,)), x.new_full((1,), 3.0)

    return traced(fx, fn, torch.randn(2, 3))


@snippet
def dtype_and_device_attributes(fx):
    def fn(x, other):
        y = x.to(other.dtype)
        z = torch.ones(3, dtype=x.dtype, device=x.device)
        return y + other, z * x

    return traced(fx, fn, torch.ones(3, dtype=torch.float32), torch.arange(3, dtype=torch.float64))


@snippet
def numel_dim_and_ndim(fx):
    def fn(x):
        return x.reshape(x.numel()) * x.dim() + x.ndim

    return traced(fx, fn, torch.randn(2, 3))


test_fxkit_matches_torch_fx = parity_test(__name__, both_patch_modes=True)
