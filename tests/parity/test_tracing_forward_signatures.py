"""Tracing forward shapes: helper methods, *args/**kwargs, static/class methods, partials, lambdas.

Tracing sweep: corner cases real models hit while being traced, run with torch.fx (the oracle)
and with fxkit in both patch modes (fast and plain); helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import functools

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from .oracle import (
    parity_test,
    snippet,
    summary,
    trace_error,
    traced,
)


@snippet
def forward_calls_helper_method(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def project(self, x, scale=2):
            return self.lin(x) * scale

        def forward(self, x):
            return self.project(x) + self.project(x, scale=3)

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def forward_with_var_keyword(fx):
    class Net(nn.Module):
        def forward(self, x, **kwargs):
            return x + 1

    gm = fx.symbolic_trace(Net())
    return gm.code, summary(gm.graph), gm(torch.ones(1), extra=2)


@snippet
def len_of_var_keyword_proxy_raises(fx):
    class Net(nn.Module):
        def forward(self, x, **kwargs):
            return x + len(kwargs)

    return trace_error(fx, lambda: fx.symbolic_trace(Net()))


@snippet
def forward_with_var_positional(fx):
    class Net(nn.Module):
        def forward(self, x, *args):
            return x * 2

    gm = fx.symbolic_trace(Net())
    return gm.code, summary(gm.graph)


@snippet
def static_and_class_method_helpers(fx):
    class Net(nn.Module):
        factor = 3

        @staticmethod
        def double(x):
            return x * 2

        @classmethod
        def triple(cls, x):
            return x * cls.factor

        def forward(self, x):
            return self.double(x) + Net.triple(x)

    return traced(fx, Net(), torch.ones(2))


@snippet
def partial_and_lambda_attributes(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.act = functools.partial(F.leaky_relu, negative_slope=0.2)
            self.square = lambda t: t * t

        def forward(self, x):
            return self.square(self.act(x))

    return traced(fx, Net(), torch.tensor([-1.0, 2.0]))


@snippet
def partial_of_torch_function_called_directly(fx):
    softmax_last = functools.partial(torch.softmax, dim=-1)

    def fn(x):
        return softmax_last(x)

    return traced(fx, fn, torch.randn(2, 3))


test_fxkit_matches_torch_fx = parity_test(__name__, both_patch_modes=True)
