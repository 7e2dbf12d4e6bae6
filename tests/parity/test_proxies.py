"""Proxies: repr, iteration, unpacking, len, and wrap registration.

Run once with torch.fx (the oracle) and once with fxkit; results must be equal. Each snippet takes
the library module as ``fx`` and returns plain data; helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import torch
import torch.fx
from torch import nn

import fxkit

from .models import AddRelu
from .oracle import (
    error_of,
    in_fresh_module,
    parity_test,
    snippet,
    summary,
)

# len is wrapped at module scope by both libraries (wrap registers this module's globals); each
# library patches it only while it traces.
torch.fx.wrap("len")
fxkit.wrap("len")


@snippet
def proxy_transform_with_graph_appending_tracer(fx):
    gm = fx.symbolic_trace(AddRelu())
    new_graph = fx.Graph()
    tracer = fx.proxy.GraphAppendingTracer(new_graph)
    env = {}
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target is torch.relu:
            proxy = fx.Proxy(env[node.args[0].name], tracer)
            env[node.name] = (proxy.sigmoid() * proxy).node
        else:
            env[node.name] = new_graph.node_copy(node, lambda n: env[n.name])
    new_gm = fx.GraphModule(gm, new_graph)
    return new_gm.code, summary(new_graph), new_gm(torch.ones(2), torch.ones(2))


@snippet
def proxy_repr_and_node(fx):
    graph = fx.Graph()
    tracer = fx.proxy.GraphAppendingTracer(graph)
    x = fx.Proxy(graph.placeholder("x"), tracer)
    y = x.relu() + x.shape[0]
    graph.output(y.node)
    return repr(x), repr(y), y.node.name, str(graph)


@snippet
def proxy_keys_and_iteration_errors(fx):
    def iterate(x):
        for _item in x:
            pass

    def boolean(x):
        if x.sum() > 0:
            return x

    def to_int(x):
        return int(x)

    outcomes = []
    for fn in (iterate, boolean, to_int):
        name, message = error_of(lambda: fx.symbolic_trace(fn))
        outcomes.append((name, message[:60]))
    return outcomes


@snippet
def proxy_unpacking_with_known_length(fx):
    def fn(x):
        a, b = x.shape[:2]
        first, second = torch.split(x, 2)
        return a * b, first, second

    gm = fx.symbolic_trace(fn)
    return gm.code, gm(torch.arange(8.0).reshape(4, 2))


@snippet
def proxy_len_is_an_error(fx):
    class M(nn.Module):
        def forward(self, x):
            return torch.zeros(len(x.size()))

    return error_of(lambda: fx.Tracer().trace(M()))


@snippet
def len_without_wrap_is_an_error(fx):
    namespace = in_fresh_module(fx, "def fn(x):\n    return torch.zeros(len(x))\n")
    name, message = error_of(lambda: fx.symbolic_trace(namespace["fn"]))
    return name, message[:50]


@snippet
def wrap_by_name_in_fresh_module(fx):
    source = (
        "def helper(x, n):\n    return x.sum() * n if n > 1 else x\n"
        "fx.wrap('helper')\n"
        "def fn(x):\n    return helper(x, 3) + 1\n"
    )
    namespace = in_fresh_module(fx, source)
    gm = fx.symbolic_trace(namespace["fn"])
    return gm.code, summary(gm.graph), gm(torch.ones(2)), namespace["helper"](torch.ones(2), 3)


@snippet
def wrap_not_at_module_scope_is_an_error(fx):
    def inner():
        fx.wrap("something")

    name, message = error_of(inner)
    return name


test_fxkit_matches_torch_fx = parity_test(__name__)
