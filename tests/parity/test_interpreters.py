"""Interpreter and Transformer: running graphs and overriding their per-node methods.

Run once with torch.fx (the oracle) and once with fxkit; results must be equal. Each snippet takes
the library module as ``fx`` and returns plain data; helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from .models import AddRelu, SmallNet, TwoLayer
from .oracle import error_of, parity_test, snippet, summary


@snippet
def interpreter_run(fx):
    gm = fx.symbolic_trace(SmallNet())
    x = torch.randn(2, 4)
    return fx.Interpreter(gm).run(x), gm(x)


@snippet
def interpreter_run_node_override(fx):
    visited = []

    class Recording(fx.Interpreter):
        def run_node(self, n):
            result = super().run_node(n)
            visited.append((n.op, n.name, tuple(result.shape) if isinstance(result, torch.Tensor) else None))
            return result

    out = Recording(fx.symbolic_trace(SmallNet())).run(torch.randn(2, 4))
    return visited, out


@snippet
def interpreter_call_function_override(fx):
    class NegateRelu(fx.Interpreter):
        def call_function(self, target, args, kwargs):
            if target is torch.relu:
                return torch.neg(*args, **kwargs)
            return super().call_function(target, args, kwargs)

    gm = fx.symbolic_trace(AddRelu())
    return NegateRelu(gm).run(torch.ones(2), torch.ones(2))


@snippet
def interpreter_call_module_and_method_override(fx):
    calls = []

    class Counting(fx.Interpreter):
        def call_module(self, target, args, kwargs):
            calls.append(("module", target))
            return super().call_module(target, args, kwargs)

        def call_method(self, target, args, kwargs):
            calls.append(("method", target))
            return super().call_method(target, args, kwargs)

        def get_attr(self, target, args, kwargs):
            calls.append(("attr", target))
            return super().get_attr(target, args, kwargs)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.scale = nn.Parameter(torch.ones(2))

        def forward(self, x):
            return self.lin(x).sum(-1, keepdim=True) * self.scale

    out = Counting(fx.symbolic_trace(M())).run(torch.ones(1, 2))
    return calls, out


@snippet
def interpreter_initial_env(fx):
    gm = fx.symbolic_trace(AddRelu())
    add_node = next(node for node in gm.graph.nodes if node.name == "add")
    return fx.Interpreter(gm).run(
        torch.ones(2), torch.ones(2), initial_env={add_node: torch.tensor([-1.0, 5.0])}
    )


@snippet
def interpreter_env_after_run(fx):
    gm = fx.symbolic_trace(AddRelu())
    kept = fx.Interpreter(gm, garbage_collect_values=False)
    kept.run(torch.ones(2), torch.ones(2))
    collected = fx.Interpreter(gm)
    collected.run(torch.ones(2), torch.ones(2))
    return sorted(node.name for node in kept.env), sorted(node.name for node in collected.env)


@snippet
def interpreter_fetch_args_and_map_nodes(fx):
    class Peeking(fx.Interpreter):
        seen = []

        def run_node(self, n):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            self.seen.append((n.name, len(args), sorted(kwargs)))
            return super().run_node(n)

    Peeking.seen = []
    interpreter = Peeking(fx.symbolic_trace(SmallNet()))
    interpreter.run(torch.ones(1, 4))
    return Peeking.seen


@snippet
def interpreter_wrong_argument_count(fx):
    gm = fx.symbolic_trace(AddRelu())
    name, message = error_of(lambda: fx.Interpreter(gm).run(torch.ones(2)))
    return name


@snippet
def transformer_replaces_call_function(fx):
    class ReluToGelu(fx.Transformer):
        def call_function(self, target, args, kwargs):
            if target is torch.relu:
                return super().call_function(F.gelu, args, kwargs)
            return super().call_function(target, args, kwargs)

    new_gm = ReluToGelu(fx.symbolic_trace(AddRelu())).transform()
    return (
        new_gm.code,
        summary(new_gm.graph),
        new_gm(torch.ones(2), -torch.ones(2) * 0.5),
        type(new_gm).__name__,
    )


@snippet
def transformer_placeholder_and_get_attr_overrides(fx):
    class Rewriting(fx.Transformer):
        def placeholder(self, target, args, kwargs):
            proxy = super().placeholder(target, args, kwargs)
            return proxy * 10

        def get_attr(self, target, args, kwargs):
            proxy = super().get_attr(target, args, kwargs)
            return proxy + 1

    new_gm = Rewriting(fx.symbolic_trace(SmallNet())).transform()
    return new_gm.code, summary(new_gm.graph), new_gm(torch.ones(1, 4))


@snippet
def transformer_with_proxy_arithmetic_in_call_module(fx):
    class Doubling(fx.Transformer):
        def call_module(self, target, args, kwargs):
            return super().call_module(target, args, kwargs) * 2

    new_gm = Doubling(fx.symbolic_trace(TwoLayer())).transform()
    return new_gm.code, new_gm(torch.ones(1, 3))


test_fxkit_matches_torch_fx = parity_test(__name__)
