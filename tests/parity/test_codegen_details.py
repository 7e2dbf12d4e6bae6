"""Code generation details: annotations, constants, names and node meta.

Run once with torch.fx (the oracle) and once with fxkit; results must be equal. Each snippet takes
the library module as ``fx`` and returns plain data; helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import math

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from .models import TwoLayer
from .oracle import error_of, parity_test, snippet, summary


@snippet
def annotations_in_generated_code(fx):
    from typing import List, Optional, Tuple

    class M(nn.Module):
        def forward(
            self, x: torch.Tensor, sizes: List[int], flag: Optional[bool] = None
        ) -> Tuple[torch.Tensor, int]:
            return x.view(sizes), 1

    gm = fx.symbolic_trace(M())
    return gm.code, str(gm.graph), [repr(node.type) for node in gm.graph.nodes]


@snippet
def special_constants_in_generated_code(fx):
    def fn(x):
        y = x.masked_fill(x > 0, float("-inf")) + float("nan")
        z = x.to(dtype=torch.float16, device=torch.device("cpu"))
        return y, z, torch.clamp(x, min=-math.inf), (slice(1, None), ...), 1e-12, complex(1, 2)

    gm = fx.symbolic_trace(fn)
    return gm.code, str(gm.graph)


@snippet
def unbound_tensor_methods_and_torch_functions(fx):
    def fn(x):
        return torch.where(x > 0, x, 0.0), F.interpolate(x[None, None], scale_factor=2.0)

    gm = fx.symbolic_trace(fn)
    unbound_method = error_of(lambda: fx.symbolic_trace(lambda x: torch.Tensor.add(x, 1)))
    return gm.code, summary(gm.graph), gm(torch.arange(4.0).reshape(2, 2))[:2], unbound_method


@snippet
def shape_comparisons_and_size_arithmetic(fx):
    def fn(x):
        n = x.shape[0] * x.shape[1]
        same = x.shape[0] == 2
        return x.reshape(n), same, x.numel(), x.size(-1) // 2

    gm = fx.symbolic_trace(fn)
    return gm.code, summary(gm.graph), gm(torch.ones(2, 3))


@snippet
def leaf_module_called_with_kwargs(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(4, 2, batch_first=True)

        def forward(self, x):
            out, _ = self.attn(x, x, x, need_weights=False)
            return out

    gm = fx.symbolic_trace(M().eval())
    x = torch.randn(1, 3, 4)
    return gm.code, summary(gm.graph)


@snippet
def submodule_paths_with_digits(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(2, 2), nn.ReLU()) for _ in range(2)])

        def forward(self, x):
            for block in self.blocks:
                x = block(x) + block[0].bias
            return x

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph)


@snippet
def node_meta_from_tracing(fx):
    gm = fx.symbolic_trace(TwoLayer())
    rows = []
    for node in gm.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        rows.append(
            (node.name, sorted(node.meta), None if stack is None else {k: v for k, v in stack.items()})
        )
    return rows


@snippet
def record_stack_traces(fx):
    tracer = fx.Tracer()
    tracer.record_stack_traces = True
    graph = tracer.trace(TwoLayer())
    traces = [(node.name, node.stack_trace is not None) for node in graph.nodes]
    relu = next(node for node in graph.nodes if node.name == "act")
    return traces, "forward" in relu.stack_trace, "return self.act(self.fc(x)) + 1" in relu.stack_trace


test_fxkit_matches_torch_fx = parity_test(__name__)
