"""Errors: TraceError, wrong calls, missing names and foreign nodes.

Run once with torch.fx (the oracle) and once with fxkit; results must be equal. Each snippet takes
the library module as ``fx`` and returns plain data; helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import torch
import torch.fx

from .models import AddRelu, TwoLayer
from .oracle import (
    error_of,
    error_type_of,
    is_fxkit,
    parity_test,
    snippet,
)


@snippet
def trace_error_on_assert_and_range(fx):
    def asserting(x):
        assert x.dim() == 2
        return x

    def ranging(x):
        return [x[i] for i in range(x.size(0))]

    first = error_of(lambda: fx.symbolic_trace(asserting))
    second = error_of(lambda: fx.symbolic_trace(ranging))
    return first[0], first[1][:60], second[0]


@snippet
def trace_error_class_and_hierarchy(fx):
    error_class = fx.proxy.TraceError
    return error_class.__name__, [c.__name__ for c in error_class.__mro__]


@snippet
def calling_graph_module_with_wrong_arguments(fx):
    gm = fx.symbolic_trace(AddRelu())
    too_few = error_of(lambda: gm(torch.ones(1)))
    too_many = error_of(lambda: gm(torch.ones(1), torch.ones(1), torch.ones(1)))
    return too_few[0], "missing 1 required positional argument: 'y'" in too_few[1], too_many[0]


@snippet
def concrete_args_with_unknown_name(fx):
    outcome = error_type_of(lambda: fx.symbolic_trace(lambda x: x, concrete_args={"nope": 1}))
    if is_fxkit(fx):
        # Difference kept: fxkit rejects a concrete_args name the function does not take; torch.fx ignores it.
        assert outcome == "TraceError"
        return None
    return outcome


@snippet
def get_submodule_missing(fx):
    gm = fx.symbolic_trace(TwoLayer())
    return error_type_of(lambda: gm.get_submodule("fc.nope")), error_type_of(
        lambda: gm.get_parameter("fc.nope")
    )


@snippet
def erase_node_of_other_graph_and_missing_output(fx):
    first = fx.symbolic_trace(AddRelu()).graph
    second = fx.symbolic_trace(AddRelu()).graph
    foreign = next(node for node in first.nodes if node.op == "output")
    graph = fx.Graph()
    graph.placeholder("x")
    no_output = error_type_of(lambda: graph.output_node())
    if is_fxkit(fx):
        # Difference kept: torch.fx asserts (AssertionError); fxkit raises RuntimeError saying how to fix it.
        assert no_output == "RuntimeError"
        no_output = "AssertionError"
    return error_type_of(lambda: second.erase_node(foreign)), no_output


test_fxkit_matches_torch_fx = parity_test(__name__)
