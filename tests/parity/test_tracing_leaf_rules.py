"""Tracing leaf rules, retracing, metadata and unusual signatures.

Tracing sweep: corner cases real models hit while being traced, run with torch.fx (the oracle)
and with fxkit in both patch modes (fast and plain); helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from .oracle import (
    error_type_of,
    is_fxkit,
    parity_test,
    snippet,
    summary,
    traced,
)


class UserLinear(nn.Linear):
    """A user subclass of a torch.nn module: it lives outside torch.nn, so it is traced through."""

    def forward(self, x):
        return super().forward(x) * 2


@snippet
def user_subclass_of_torch_module_is_traced_through(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = UserLinear(2, 2)
            self.seq = nn.Sequential(nn.Linear(2, 2))

        def forward(self, x):
            return self.seq(self.proj(x))

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def retracing_a_graph_module(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return torch.relu(self.lin(x)) + self.lin(x).sum(-1, keepdim=True)

    first = fx.symbolic_trace(Net())
    second = fx.symbolic_trace(first)
    return first.code, second.code, summary(second.graph), second(torch.ones(1, 2))


@snippet
def nn_module_stack_and_stack_traces(fx):
    class Inner(nn.Module):
        def forward(self, x):
            return x * 2

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Inner()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return self.lin(self.inner(x))

    tracer = fx.Tracer()
    tracer.record_stack_traces = True
    graph = tracer.trace(Net())
    rows = []
    for node in graph.nodes:
        stack = node.meta.get("nn_module_stack")
        rows.append((node.name, None if stack is None else list(stack), node.stack_trace is None))
        if is_fxkit(fx) and node.op == "call_function":
            # Documented difference (docs/tracing.md): fxkit's stack traces hold the user's frames
            # only, ending at the traced line; torch.fx's end in its own tracing internals.
            assert node.stack_trace.strip().splitlines()[-1].strip() == "return x * 2"
    return rows


@snippet
def param_shapes_constant_size_and_shape(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(3, 2))

        def forward(self, x):
            return x.new_zeros(self.weight.size()) + self.weight.shape[0] + x

    tracer = fx.Tracer(param_shapes_constant=True)
    graph = tracer.trace(Net())
    gm = fx.GraphModule(tracer.root, graph)
    return gm.code, summary(graph), gm(torch.ones(3, 2))


@snippet
def lambda_and_positional_only_traced(fx):
    def positional_only(x, y, /):
        return x - y

    square = fx.symbolic_trace(lambda x: x * x)
    difference = fx.symbolic_trace(positional_only)
    return square.code, square(torch.ones(2) * 3), difference.code, difference(torch.ones(1), torch.ones(1))


@snippet
def tensor_default_argument(fx):
    def fn(x, bias=torch.ones(2)):
        return x + bias

    # Both libraries put the tensor constant's attribute name as the default in the signature,
    # which the generated code cannot resolve: torch.fx fails while tracing, fxkit on first call.
    return error_type_of(lambda: fx.symbolic_trace(fn)(torch.zeros(2)))


@snippet
def odd_constants_in_output(fx):
    def fn(x):
        return x.dtype, torch.float16, torch.device("cpu"), slice(1, None), Ellipsis

    gm = fx.symbolic_trace(fn)
    return gm.code, summary(gm.graph), gm(torch.ones(1))[1:]


@snippet
def unsupported_output_type_raises(fx):
    class Box:
        def __init__(self, value):
            self.value = value

    def fn(x):
        return Box(x)

    return error_type_of(lambda: fx.symbolic_trace(fn))


@snippet
def range_and_finfo_of_proxies_raise(fx):
    def loops(x):
        for _ in range(x.size(0)):
            x = x + 1
        return x

    def finfo(x):
        return x.clamp(min=torch.finfo(x.dtype).min)

    return error_type_of(lambda: fx.symbolic_trace(loops)), error_type_of(lambda: fx.symbolic_trace(finfo))


@snippet
def softmax_with_dtype_and_stacklevel(fx):
    def fn(x):
        return F.softmax(x, dim=-1, _stacklevel=5, dtype=torch.float64), F.log_softmax(x, 1)

    return traced(fx, fn, torch.ones(2, 3))


@snippet
def same_module_traced_twice_gives_same_code(fx):
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    return fx.symbolic_trace(model).code == fx.symbolic_trace(model).code


@snippet
def sequential_subclass_with_custom_forward(fx):
    class Stack(nn.Sequential):
        def forward(self, x):
            for module in self:
                x = module(x) + x
            return x

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stack = Stack(nn.Linear(2, 2), nn.Tanh())

        def forward(self, x):
            return self.stack(x)

    return traced(fx, Net(), torch.ones(1, 2))


test_fxkit_matches_torch_fx = parity_test(__name__, both_patch_modes=True)
