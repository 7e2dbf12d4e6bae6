"""Tracing awkward attribute names (not identifiers, keywords) and printing proxies.

Tracing sweep: corner cases real models hit while being traced, run with torch.fx (the oracle)
and with fxkit in both patch modes (fast and plain); helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.fx
from torch import nn

from .oracle import (
    error_of,
    error_type_of,
    is_fxkit,
    parity_test,
    snippet,
    summary,
    traced,
)


@snippet
def module_dict_keys_that_are_not_identifiers(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = nn.ModuleDict({"a-b": nn.Linear(2, 2), "7": nn.ReLU()})

        def forward(self, x):
            return self.heads["7"](self.heads["a-b"](x))

    return traced(fx, Net(), torch.ones(1, 2))


def keyword_named_attributes_outcome(fx: Any, root: nn.Module, *inputs: Any) -> Any:
    """Trace a module whose attribute paths contain Python keywords.

    Documented difference (docs/graph.md): torch.fx writes them as plain attribute accesses
    (``self.heads.class``), which is a SyntaxError; fxkit writes ``getattr(..., "class")``.
    """
    outcome = error_of(lambda: fx.symbolic_trace(root))
    if not is_fxkit(fx):
        assert outcome is not None and outcome[0] == "SyntaxError", outcome
        return root(*inputs)
    assert outcome is None, outcome
    gm = fx.symbolic_trace(root)
    assert "getattr(self." in gm.code
    return gm(*inputs)


@snippet
def module_dict_keys_that_are_python_keywords(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = nn.ModuleDict({"class": nn.Linear(2, 2), "lambda": nn.ReLU()})

        def forward(self, x):
            return self.heads["lambda"](self.heads["class"](x))

    return keyword_named_attributes_outcome(fx, Net(), torch.ones(1, 2))


@snippet
def parameter_list_and_dict(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.scales = nn.ParameterList([nn.Parameter(torch.full((2,), 2.0)), nn.Parameter(torch.ones(2))])
            self.biases = nn.ParameterDict(
                {"first": nn.Parameter(torch.ones(2)), "if": nn.Parameter(torch.zeros(2))}
            )

        def forward(self, x):
            for scale in self.scales:
                x = x * scale
            return x + self.biases["first"]

    class WithKeyword(nn.Module):
        def __init__(self):
            super().__init__()
            self.biases = nn.ParameterDict({"if": nn.Parameter(torch.full((2,), 3.0))})

        def forward(self, x):
            return x + self.biases["if"]

    return traced(fx, Net(), torch.ones(2)), keyword_named_attributes_outcome(
        fx, WithKeyword(), torch.ones(2)
    )


@snippet
def leaf_attributes_read_in_forward(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 3)

        def forward(self, x):
            return (x @ self.lin.weight.T) * self.lin.in_features + self.lin.bias

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def names_colliding_with_placeholders_and_self(fx):
    def fn(add, mul):
        return add + mul, (add * mul) * 2

    def takes_self(self, x):
        return self + x

    gm = fx.symbolic_trace(fn)
    named_self = fx.symbolic_trace(takes_self)
    placeholder_name = next(iter(named_self.graph.nodes)).name
    # Documented difference (docs/graph.md): fxkit never names a node "self".
    assert placeholder_name == ("self_1" if is_fxkit(fx) else "self")
    # Either way the signature's first parameter is the module's own self, so a function whose
    # first argument is called self gives a module taking one argument fewer.
    calling_error = error_type_of(lambda: named_self(torch.ones(1), torch.ones(1)))
    return gm.code, summary(gm.graph), gm(torch.ones(1), torch.ones(1)), calling_error


@snippet
def printing_and_formatting_proxies(fx):
    import contextlib
    import io

    def fn(x):
        print(x, x.shape, x.size(0))
        return x + 1

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        gm = fx.symbolic_trace(fn)
    return buffer.getvalue(), gm.code


@snippet
def tensor_constants_mixed_with_sizes(fx):
    def fn(x):
        return torch.ones(1) + x * x.size(0), x.size(0) * torch.arange(2.0)

    gm = fx.symbolic_trace(fn)
    return gm.code, summary(gm.graph), gm(torch.ones(2))


@snippet
def tensor_from_proxy_size_raises(fx):
    def fn(x):
        return torch.tensor([x.size(0)])

    return error_type_of(lambda: fx.symbolic_trace(fn))


@snippet
def custom_tracer_overriding_call_module(fx):
    class Counting(fx.Tracer):
        def __init__(self):
            super().__init__()
            self.calls = []

        def call_module(self, m, forward, args, kwargs):
            self.calls.append(self.path_of_module(m))
            return super().call_module(m, forward, args, kwargs)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
            self.head = nn.Linear(2, 1)

        def forward(self, x):
            return self.head(self.body(x))

    tracer = Counting()
    graph = tracer.trace(Net())
    return tracer.calls, summary(graph)


test_fxkit_matches_torch_fx = parity_test(__name__, both_patch_modes=True)
