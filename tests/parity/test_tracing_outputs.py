"""Tracing outputs: dicts, lists, tuples, namedtuples, None, inputs and constants.

Tracing sweep: corner cases real models hit while being traced, run with torch.fx (the oracle)
and with fxkit in both patch modes (fast and plain); helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import collections

import torch
import torch.fx

from .oracle import parity_test, snippet, traced


@snippet
def dict_list_tuple_outputs(fx):
    def fn(x):
        return {"a": [x, (x + 1, x * 2)], "b": (x.sum(),)}

    return traced(fx, fn, torch.ones(2))


Pair = collections.namedtuple("Pair", ["left", "right"])


@snippet
def namedtuple_output(fx):
    def fn(x):
        return Pair(x + 1, right=x - 1)

    code, nodes, out = traced(fx, fn, torch.ones(2))
    return code, nodes, tuple(out), type(out).__name__


@snippet
def none_output_and_input_returned_unchanged(fx):
    def returns_none(x):
        x.add_(1)

    def returns_input(x, y):
        return x

    gm_none = fx.symbolic_trace(returns_none)
    gm_same = fx.symbolic_trace(returns_input)
    x = torch.ones(2)
    return gm_none.code, gm_none(x), x, gm_same.code, gm_same(x, x)


@snippet
def constant_output(fx):
    def fn(x):
        return 3, "text", None

    return traced(fx, fn, torch.ones(1))


test_fxkit_matches_torch_fx = parity_test(__name__, both_patch_modes=True)
