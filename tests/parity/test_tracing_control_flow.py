"""Tracing Python control around tensors: grad modes, asserts, isinstance, branching on proxies.

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
def grad_mode_contexts_inside_forward(fx):
    def fn(x):
        with torch.no_grad():
            y = x * 2
        with torch.enable_grad():
            z = y + 1
        return z

    return traced(fx, fn, torch.ones(2))


@snippet
def assert_on_shape_raises(fx):
    def fn(x):
        assert x.shape[0] == 2, "batch must be 2"
        return x

    return error_type_of(lambda: fx.symbolic_trace(fn))


@snippet
def isinstance_tensor_check(fx):
    def fn(x):
        if isinstance(x, torch.Tensor):
            return x + 1
        return x

    return traced(fx, fn, torch.ones(2))


@snippet
def isinstance_proxy_check(fx):
    def fn(x):
        return isinstance(x, fx.Proxy)

    gm = fx.symbolic_trace(fn)
    return gm.code, gm(torch.ones(1))


@snippet
def control_flow_on_proxy_raises(fx):
    def fn(x):
        if x.sum() > 0:
            return x
        return -x

    outcome = error_of(lambda: fx.symbolic_trace(fn))
    return outcome[0], "symbolically traced variables cannot be used as inputs to control flow" in outcome[1]


@snippet
def bool_and_int_of_proxy_raise(fx):
    def as_int(x):
        return torch.zeros(int(x.size(0)))

    def as_float(x):
        return float(x.sum())

    return error_type_of(lambda: fx.symbolic_trace(as_int)), error_type_of(
        lambda: fx.symbolic_trace(as_float)
    )


test_fxkit_matches_torch_fx = parity_test(__name__, both_patch_modes=True)
