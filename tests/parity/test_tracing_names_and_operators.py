"""Tracing names, operators and structured inputs.

Tracing sweep: corner cases real models hit while being traced, run with torch.fx (the oracle)
and with fxkit in both patch modes (fast and plain); helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import torch
import torch.fx
from torch import nn

from .oracle import (
    error_of,
    error_type_of,
    parity_test,
    snippet,
    summary,
    trace_error,
    traced,
)


@snippet
def placeholders_shadowing_builtins(fx):
    def fn(input, list, sum, x_1):
        return input + list * sum - x_1

    ones = torch.ones(1)
    return traced(fx, fn, ones, ones, ones, ones)


@snippet
def nested_parameter_and_clashing_attribute_names(fx):
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()
            self.block_lin_weight = nn.Parameter(torch.ones(2, 2))
            self.layers = nn.ModuleList([nn.Linear(2, 2)])
            self.layers_0 = nn.Linear(2, 2)

        def forward(self, x):
            y = x @ self.block.lin.weight + self.block_lin_weight.sum()
            return self.layers[0](y) + self.layers_0(y) + self.block.lin(x)

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def all_operators_and_reflected_forms(fx):
    def fn(x, y):
        return (1 - x, 2**x, x @ y, -x, abs(x), x // 2, x % 3, 3 / x, +x, x**2, x > y, 1 < x, x != y, x == 1)

    return traced(fx, fn, torch.arange(1.0, 5.0).reshape(2, 2), torch.ones(2, 2))


@snippet
def bitwise_and_shift_operators(fx):
    def fn(x, y):
        return ~x, x & y, x | y, x ^ y, x << 1, x >> 1, 1 & x

    return traced(fx, fn, torch.tensor([1, 6]), torch.tensor([3, 2]))


@snippet
def unbound_tensor_methods_and_dunders(fx):
    def fn(x, y):
        return x.__mul__(y), x.__radd__(1), getattr(x, "shape")

    def unbound(x, y):
        return torch.Tensor.add(x, y)

    return traced(fx, fn, torch.ones(2, 2), torch.ones(2, 2)), error_type_of(
        lambda: fx.symbolic_trace(unbound)
    )


@snippet
def dict_and_tuple_inputs_indexed(fx):
    def fn(batch, pair):
        return batch["x"] * pair[0] + pair[1]

    gm = fx.symbolic_trace(fn)
    return gm.code, summary(gm.graph), gm({"x": torch.ones(2)}, (torch.ones(2), torch.ones(2)))


@snippet
def double_star_of_proxy_raises_or_records(fx):
    def takes(**kwargs):
        return kwargs

    def fn(batch):
        return takes(**batch)

    return trace_error(fx, lambda: fx.symbolic_trace(fn))


@snippet
def reductions_returning_named_results(fx):
    def fn(x):
        values, indices = x.topk(2)
        best = x.max(dim=1)
        return values + best.values.unsqueeze(-1), indices, torch.max(x, dim=0)[1], x.sort(descending=True)[0]

    return traced(fx, fn, torch.tensor([[1.0, 3.0, 2.0], [0.0, -1.0, 5.0]]))


@snippet
def leaf_called_with_keyword_argument(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return self.lin(input=x)

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def unregistered_module_in_plain_list_raises(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = [nn.Linear(2, 2)]

        def forward(self, x):
            return self.hidden[0](x)

    error_type, message = error_of(lambda: fx.symbolic_trace(Net()))
    return error_type, "not installed as a submodule" in message


@snippet
def attribute_set_on_module_during_trace(fx):
    class Net(nn.Module):
        def forward(self, x):
            self.cache = x * 2
            return self.cache + 1

    net = Net()
    gm = fx.symbolic_trace(net)
    return gm.code, summary(gm.graph), gm(torch.ones(2)), type(net.cache).__name__


@snippet
def zip_enumerate_reversed_over_containers(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.mix = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
            self.gates = nn.ModuleList([nn.Sigmoid(), nn.Tanh()])

        def forward(self, x):
            for index, (mix, gate) in enumerate(zip(self.mix, self.gates)):
                x = gate(mix(x)) * (index + 1)
            for mix in reversed(self.mix):
                x = mix(x)
            return x

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def module_with_overridden_call(fx):
    class Scaled(nn.Module):
        def __call__(self, x):
            return super().__call__(x) * 2

        def forward(self, x):
            return x + 1

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Scaled()

        def forward(self, x):
            return self.inner(x)

    return traced(fx, Net(), torch.ones(2))


@snippet
def out_keyword_and_method_on_size(fx):
    def fn(x):
        return x.reshape(x.shape.numel()), torch.add(x, 1, alpha=2)

    return traced(fx, fn, torch.ones(2, 2))


@snippet
def concrete_int_used_in_arithmetic(fx):
    def fn(x, heads):
        return x.reshape(x.size(0), heads, -1).transpose(0, 1) * heads

    gm = fx.symbolic_trace(fn, concrete_args={"heads": 2})
    return gm.code, summary(gm.graph), gm(torch.ones(3, 4), 2)


@snippet
def concrete_tensor_placeholder_and_tracer_trace(fx):
    def fn(x, y):
        return x + y

    tracer = fx.Tracer()
    graph = tracer.trace(fn, concrete_args={"y": fx.PH})
    gm = fx.GraphModule(tracer.root, graph)
    return gm.code, summary(graph), gm(torch.ones(1), torch.ones(1))


test_fxkit_matches_torch_fx = parity_test(__name__, both_patch_modes=True)
