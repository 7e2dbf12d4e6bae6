"""Symbolic tracing basics: modules, functions, functional calls, tensor methods and containers.

Run once with torch.fx (the oracle) and once with fxkit; results must be equal. Each snippet takes
the library module as ``fx`` and returns plain data; helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import math

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

import fxkit

from .models import AddRelu, SmallNet
from .oracle import is_fxkit, parity_test, snippet, summary


# Wrapped at module scope by both libraries (wrap registers this module's globals); each library
# patches them only while it traces.
def clamp_len(x):
    return len(x)


torch.fx.wrap("clamp_len")
fxkit.wrap("clamp_len")
torch.fx.wrap("len")
fxkit.wrap("len")


@torch.fx.wrap
@fxkit.wrap
def decorated_scale(x, factor):
    return x * factor


@snippet
def code_and_graph_of_simple_module(fx):
    gm = fx.symbolic_trace(AddRelu())
    return gm.code, str(gm.graph), summary(gm.graph), gm(torch.ones(2), torch.arange(2.0))


@snippet
def parameters_and_buffers_become_get_attr(fx):
    gm = fx.symbolic_trace(SmallNet())
    return gm.code, summary(gm.graph), gm(torch.randn(2, 4)), sorted(gm.state_dict())


@snippet
def trace_plain_function(fx):
    def fn(a, b):
        return torch.sigmoid(a) - b.mean()

    gm = fx.symbolic_trace(fn)
    return gm.code, type(gm).__name__, gm(torch.ones(3), torch.ones(3))


@snippet
def functional_calls(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(5, 4))

        def forward(self, x):
            y = F.linear(x, self.w)
            y = F.gelu(y)
            y = F.softmax(y, dim=-1)
            return F.layer_norm(y, (5,))

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), gm(torch.randn(2, 4))


@snippet
def tensor_methods_and_shapes(fx):
    class M(nn.Module):
        def forward(self, x):
            b, c = x.size()[:2]
            n = x.shape[-1]
            d = x.dim()
            y = x.view(b, c, -1).permute(0, 2, 1).transpose(1, 2).reshape(b, -1).contiguous()
            return y * n + d, x.size(1)

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), gm(torch.randn(2, 3, 4))


@snippet
def chunk_split_unbind(fx):
    class M(nn.Module):
        def forward(self, x):
            a, b = x.chunk(2, dim=1)
            c = torch.split(x, 1, dim=0)[0]
            first = x.unbind(0)[1]
            return a + b, c, first

    gm = fx.symbolic_trace(M())
    return gm.code, gm(torch.randn(2, 4))


@snippet
def getitem_variants(fx):
    class M(nn.Module):
        def forward(self, x, idx):
            return x[0], x[:, 1:3], x[None], x[..., -1], x[idx], x[1, ..., None, ::2]

    gm = fx.symbolic_trace(M())
    x = torch.randn(3, 4, 5)
    return gm.code, gm(x, torch.tensor([2, 0]))


@snippet
def inplace_ops(fx):
    class M(nn.Module):
        def forward(self, x):
            y = x.clone()
            y.add_(1)
            y += 2
            y.mul_(torch.ones_like(y))
            torch.relu_(y)
            return y

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), gm(torch.randn(3))


@snippet
def cat_and_stack_lists(fx):
    class M(nn.Module):
        def forward(self, x, y):
            z = torch.cat([x, y, x * 2], dim=0)
            return torch.stack((z, z + 1)), torch.cat((x,), 0)

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), gm(torch.randn(2), torch.randn(2))


@snippet
def keyword_only_and_default_args(fx):
    class M(nn.Module):
        def forward(self, x, y=None, *, scale: float = 2.0, bias=3):
            return x * scale + bias

    gm = fx.symbolic_trace(M())
    return (
        gm.code,
        str(gm.graph),
        summary(gm.graph),
        gm(torch.ones(2)),
        gm(torch.ones(2), scale=torch.tensor(5.0)),
    )


@snippet
def varargs_and_kwargs_forward(fx):
    class M(nn.Module):
        def forward(self, *args, **kwargs):
            return args[0] + args[1], kwargs

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph)


@snippet
def control_flow_on_self_attribute(fx):
    class M(nn.Module):
        def __init__(self, use_relu):
            super().__init__()
            self.use_relu = use_relu
            self.depth = 3

        def forward(self, x):
            for _ in range(self.depth):
                x = x + 1
            if self.use_relu:
                x = torch.relu(x)
            return x

    return fx.symbolic_trace(M(True)).code, fx.symbolic_trace(M(False)).code


@snippet
def submodule_called_twice(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            return self.lin(self.lin(x)) + self.lin(x)

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), gm(torch.randn(2, 3))


@snippet
def container_modules(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3)])
            self.heads = nn.ModuleDict({"a": nn.Linear(3, 2), "b": nn.Linear(3, 1)})
            self.seq = nn.Sequential(nn.Tanh(), nn.Sequential(nn.Linear(3, 3), nn.Sigmoid()))

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            x = self.seq(x)
            return {name: head(x) for name, head in self.heads.items()}, self.layers[-1](x)

    gm = fx.symbolic_trace(M())
    names = [name for name, _ in gm.named_modules()]
    return gm.code, summary(gm.graph), names, gm(torch.randn(2, 3))


@snippet
def constants_from_factories(fx):
    class M(nn.Module):
        def forward(self, x):
            return (
                x + torch.ones(3) + x.new_zeros(x.shape[0], 3) + torch.full((1, 3), 2.0) + torch.zeros(2, 3)
            )

    gm = fx.symbolic_trace(M())
    return gm.code, gm(torch.randn(2, 3))


@snippet
def math_functions_autowrapped(fx):
    class M(nn.Module):
        def forward(self, x):
            return x / math.sqrt(x.size(-1)) + math.pi + math.floor(2.5)

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), gm(torch.randn(2, 4))


@snippet
def len_wrapped_at_module_scope(fx):
    def fn(x):
        return x * len(x) + clamp_len(x)

    gm = fx.symbolic_trace(fn)
    code = gm.code
    if is_fxkit(fx):
        # Documented difference: the wrap lines name fxkit's module.
        assert 'fxkit._symbolic_trace.wrap("len")' in code
        code = code.replace("fxkit._symbolic_trace.wrap", "torch.fx._symbolic_trace.wrap")
    return code, summary(gm.graph), gm(torch.ones(3, 2))


@snippet
def wrap_used_as_decorator(fx):
    class M(nn.Module):
        def forward(self, x):
            return decorated_scale(x, 3) + 1

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), gm(torch.ones(2))


@snippet
def tensor_constant_becomes_attribute(fx):
    class M(nn.Module):
        def forward(self, x):
            return x + torch.tensor([1.0, 2.0]) * torch.tensor(3.0)

    gm = fx.symbolic_trace(M())
    constants = sorted(name for name, _ in gm.named_buffers()) + sorted(
        name for name in dir(gm) if name.startswith("_tensor_constant")
    )
    return gm.code, summary(gm.graph), constants, gm(torch.ones(2))


@snippet
def plain_tensor_attribute(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = torch.arange(4.0)

        def forward(self, x):
            return x + self.table

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), gm(torch.ones(4))


@snippet
def dropout_train_and_eval(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            return F.dropout(self.drop(x), p=0.2, training=self.training)

    module = M()
    train_code = fx.symbolic_trace(module).code
    module.eval()
    gm = fx.symbolic_trace(module)
    return train_code, gm.code, gm(torch.ones(4))


@snippet
def tensor_attribute_methods_on_proxy(fx):
    class M(nn.Module):
        def forward(self, x):
            return x.T, x.dtype, x.device, x.float().double().to(torch.float32), x.new_zeros(2)

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph)


@snippet
def builtin_operators_on_proxies(fx):
    def fn(x, y):
        return (-x, abs(x), ~(x > 0), x // 2, x % 3, x**2, 2**x, x @ y, x < y, x != y, 1 - x, 2 / x)

    gm = fx.symbolic_trace(fn)
    x = torch.arange(1.0, 5.0).reshape(2, 2)
    return gm.code, summary(gm.graph), gm(x, x)


@snippet
def non_tensor_outputs_and_nested_structures(fx):
    def fn(x):
        return {"a": [x, (x + 1, None)], "b": 3, "c": "text"}

    gm = fx.symbolic_trace(fn)
    return gm.code, str(gm.graph), gm(torch.ones(1))


@snippet
def module_with_no_inputs_uses_getattr(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Module()
            self.inner.p = nn.Parameter(torch.ones(2))

        def forward(self):
            return self.inner.p * 2

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), gm()


test_fxkit_matches_torch_fx = parity_test(__name__)
