"""Tracing with concrete_args, default arguments, wrapped and autowrapped functions.

Tracing sweep: corner cases real models hit while being traced, run with torch.fx (the oracle)
and with fxkit in both patch modes (fast and plain); helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import math

import torch
import torch.fx

import fxkit

from .oracle import parity_test, snippet, summary, traced


# Module-scope helpers: the first two wrapped by both libraries (wrap registers this module's globals),
# the last one handed to Tracer(autowrap_functions=...).
def halve_last_dim(x, scale):
    return x[..., : x.shape[-1] // 2] * scale


torch.fx.wrap("halve_last_dim")
fxkit.wrap("halve_last_dim")


@torch.fx.wrap
@fxkit.wrap
def scaled_add(x, y, alpha=1.0):
    return x + alpha * y


def autowrapped_norm(x):
    return x / (x.norm() + 1)


@snippet
def concrete_args_nested_dict_with_placeholders(fx):
    def fn(inputs):
        return inputs["x"] + inputs["pair"][0] * inputs["pair"][1]

    gm = fx.symbolic_trace(fn, concrete_args={"inputs": {"x": fx.PH, "pair": (fx.PH, fx.PH)}})
    out = gm({"x": torch.ones(2), "pair": (torch.ones(2) * 2, torch.ones(2) * 3)})
    return gm.code, summary(gm.graph), out


@snippet
def concrete_args_bool_flag_and_none(fx):
    def fn(x, flag, extra=None):
        if flag:
            x = x * 2
        if extra is not None:
            x = x + extra
        return x

    gm = fx.symbolic_trace(fn, concrete_args={"flag": True, "extra": None})
    return gm.code, summary(gm.graph), gm(torch.ones(2), True, None)


@snippet
def function_with_default_args(fx):
    def fn(x, scale=2.0, bias=None, mode="add"):
        return x * scale

    gm = fx.symbolic_trace(fn)
    return gm.code, summary(gm.graph), gm(torch.ones(2)), gm(torch.ones(2), 3.0)


@snippet
def autowrap_functions_on_tracer(fx):
    def fn(x):
        return autowrapped_norm(x) + 1

    tracer = fx.Tracer(autowrap_functions=(autowrapped_norm,))
    graph = tracer.trace(fn)
    gm = fx.GraphModule(tracer.root, graph)
    return gm.code, summary(graph), gm(torch.ones(2))


@snippet
def wrapped_functions_with_proxies_and_constants(fx):
    def fn(x, y):
        return scaled_add(x, y, alpha=0.5)[..., :2] + halve_last_dim(x, 3)

    return traced(fx, fn, torch.ones(2, 4), torch.ones(2, 4))


@snippet
def wrapped_function_called_with_constants_only(fx):
    def fn(x):
        return x + scaled_add(1.0, 2.0)

    return traced(fx, fn, torch.ones(2))


@snippet
def math_functions_on_sizes(fx):
    def fn(x):
        return x * math.sqrt(x.size(-1)) if False else x / x.size(-1) ** 0.5

    return traced(fx, fn, torch.ones(2, 4))


@snippet
def operator_on_proxy_sizes(fx):
    def fn(x):
        return x.reshape(-1, x.size(1) * x.size(2)), -x.size(0), x.size(0) % 2

    return traced(fx, fn, torch.ones(2, 3, 4))


test_fxkit_matches_torch_fx = parity_test(__name__, both_patch_modes=True)
