"""Tracing constants and attributes created or read in forward.

Tracing sweep: corner cases real models hit while being traced, run with torch.fx (the oracle)
and with fxkit in both patch modes (fast and plain); helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from .oracle import parity_test, snippet, summary, traced


@snippet
def tensor_constant_created_in_forward(fx):
    def fn(x):
        return x + torch.tensor([1.0, 2.0]) * torch.tensor(3.0)

    gm = fx.symbolic_trace(fn)
    return gm.code, summary(gm.graph), gm(torch.ones(2)), sorted(name for name, _ in gm.named_buffers())


@snippet
def plain_tensor_attribute_and_nonpersistent_buffer(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = torch.arange(3.0)
            self.register_buffer("mask", torch.tensor([1.0, 0.0, 1.0]), persistent=False)

        def forward(self, x):
            return (x + self.table) * self.mask

    gm = fx.symbolic_trace(Net())
    return gm.code, summary(gm.graph), gm(torch.ones(3))


@snippet
def dynamic_submodule_lookup_by_name(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            for index in range(2):
                setattr(self, f"block{index}", nn.Linear(2, 2))
            self.heads = nn.ModuleDict({"a": nn.Linear(2, 1), "b": nn.Linear(2, 1)})

        def forward(self, x):
            for index in range(2):
                x = getattr(self, f"block{index}")(x)
            return sum(self.heads[key](x) for key in ("b", "a"))

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def embedding_leaf_and_functional(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(5, 3, padding_idx=0)

        def forward(self, ids):
            return self.embed(ids) + F.embedding(ids, self.embed.weight, padding_idx=0)

    return traced(fx, Net(), torch.tensor([[0, 3], [4, 1]]))


@snippet
def keyword_only_forward_argument(fx):
    class Net(nn.Module):
        def forward(self, x, *, scale=2.0):
            return x * scale

    gm = fx.symbolic_trace(Net())
    return gm.code, summary(gm.graph), gm(torch.ones(2), scale=3.0)


@snippet
def jit_scripting_checks_and_torch_assert(fx):
    def fn(x):
        if torch.jit.is_scripting():
            return x
        torch._assert(x.dim() == 2, "two dims")
        return x + 1

    return traced(fx, fn, torch.ones(1, 2))


@snippet
def stack_cat_of_proxy_lists(fx):
    def fn(x, y):
        return torch.stack([x.sum(), y.mean()]), torch.cat([x, y, x], dim=-1), torch.cat((x,) * 2)

    return traced(fx, fn, torch.ones(2, 2), torch.ones(2, 1))


@snippet
def creation_ops_from_shape(fx):
    def fn(x):
        return (
            torch.full((x.size(0),), 1.5),
            torch.zeros(x.shape, dtype=torch.int64),
            torch.ones_like(x, dtype=torch.bool),
        )

    return traced(fx, fn, torch.ones(2, 3))


@snippet
def custom_leaf_tuple_output_indexed(fx):
    class Pairing(nn.Module):
        def forward(self, x):
            return x + 1, x - 1

    class Leafy(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return isinstance(m, Pairing) or super().is_leaf_module(m, qualname)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.pair = Pairing()

        def forward(self, x):
            out = self.pair(x)
            first, second = self.pair(out[0])
            return out[1] * first + second

    net = Net()
    graph = Leafy().trace(net)
    gm = fx.GraphModule(net, graph)
    return gm.code, summary(graph), gm(torch.ones(2))


@snippet
def sequential_traced_directly_and_nested(fx):
    model = nn.Sequential(
        nn.Sequential(nn.Linear(2, 3), nn.ReLU()),
        nn.ModuleList([nn.Identity()])[0],
        nn.Flatten(),
        nn.Linear(3, 1),
    )
    return traced(fx, model, torch.ones(4, 2))


@snippet
def batchnorm_eval_and_dropout_leaf(fx):
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1)
    )
    model.eval()
    return traced(fx, model, torch.randn(1, 1, 4, 4))


test_fxkit_matches_torch_fx = parity_test(__name__, both_patch_modes=True)
