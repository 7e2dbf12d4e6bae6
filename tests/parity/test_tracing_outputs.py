"""Tracing outputs: dicts, lists, tuples, namedtuples, None, inputs and constants.

Tracing sweep: corner cases real models hit while being traced, run with torch.fx (the oracle)
and with fxkit in both patch modes (fast and plain); helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.fx

import fxkit
from fxkit.tracer import use_fast_patches

from .oracle import assert_same, run_snippet, snippet, snippet_ids, sweep, traced


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


SNIPPETS = sweep(__name__)


@pytest.mark.parametrize("patches", ["fast", "plain"])
@pytest.mark.parametrize("function", SNIPPETS, ids=snippet_ids(SNIPPETS))
def test_fxkit_matches_torch_fx(function: Callable[[Any], Any], patches: str) -> None:
    """Each snippet with fxkit's fast patches (``_call_impl``, ``__getattr__`` per class) and with the
    plain ones (``nn.Module.__call__`` and ``__getattr__``, as torch.fx patches them)."""
    expected = run_snippet(function, torch.fx)
    with use_fast_patches(patches == "fast"):
        actual = run_snippet(function, fxkit)
    assert_same(expected, actual)
