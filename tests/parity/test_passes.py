"""Passes: shape_prop, split_module, subgraph_rewriter, const_fold and optimization.

Run once with torch.fx (the oracle) and once with fxkit; results must be equal. Each snippet takes
the library module as ``fx`` and returns plain data; helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import torch
import torch.fx
import torch.fx.experimental.const_fold
import torch.fx.experimental.optimization
import torch.fx.passes.shape_prop
import torch.fx.passes.split_module
import torch.fx.subgraph_rewriter
from torch import nn

from .models import SmallNet
from .oracle import error_of, parity_test, snippet


@snippet
def shape_prop_tensor_meta(fx):
    gm = fx.symbolic_trace(SmallNet())
    fx.passes.shape_prop.ShapeProp(gm).propagate(torch.randn(2, 4))
    rows = []
    for node in gm.graph.nodes:
        meta = node.meta.get("tensor_meta")
        if meta is None:
            rows.append((node.name, None))
            continue
        rows.append(
            (
                node.name,
                tuple(meta.shape),
                str(meta.dtype),
                meta.requires_grad,
                meta.stride,
                str(meta.memory_format),
                meta.is_quantized,
                type(meta).__name__,
                node.meta["type"].__name__,
            )
        )
    return rows


@snippet
def shape_prop_on_nested_outputs(fx):
    gm = fx.symbolic_trace(lambda x: (x.chunk(2), {"s": x.sum()}))
    fx.passes.shape_prop.ShapeProp(gm).propagate(torch.randn(4, 2))
    chunk = next(node for node in gm.graph.nodes if node.name == "chunk")
    meta = chunk.meta["tensor_meta"]
    return type(meta).__name__, [tuple(m.shape) for m in meta], chunk.meta["type"].__name__


@snippet
def split_module_partitions(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.param = nn.Parameter(torch.randn(4))

        def forward(self, x, y):
            z = self.lin(x + self.param)
            w = torch.relu(z) + y
            return w.sum(), z

    root = M()
    gm = fx.symbolic_trace(root)
    partition_of = {}
    for index, node in enumerate(gm.graph.nodes):
        partition_of[node.name] = min(index // 3, 2)
    split = fx.passes.split_module.split_module(gm, root, lambda node: partition_of[node.name])
    x, y = torch.randn(2, 4), torch.randn(2, 4)
    return (
        split.code,
        [(name, type(m).__name__) for name, m in split.named_children()],
        [split.get_submodule(name).code for name, _ in split.named_children()],
        split(x, y),
        gm(x, y),
    )


@snippet
def split_module_keep_original_order(fx):
    gm = fx.symbolic_trace(lambda x: (x + 1).relu() * 2 - x.neg())
    parts = {"add": 0, "relu": 1, "mul": 1, "neg": 0, "sub": 2}
    split = fx.passes.split_module.split_module(
        gm, None, lambda node: parts[node.name], keep_original_order=True
    )
    cyclic = {"add": 0, "relu": 1, "mul": 0, "neg": 1, "sub": 0}
    name, message = error_of(
        lambda: fx.passes.split_module.split_module(gm, None, lambda node: cyclic[node.name])
    )
    return (
        split.code,
        [split.get_submodule(name).code for name, _ in split.named_children()],
        split(torch.ones(2)),
        name,
        message[:32],
    )


@snippet
def replace_pattern_return_values(fx):
    def pattern(x, y):
        return torch.relu(torch.add(x, y))

    def replacement(x, y):
        return torch.sigmoid(torch.sub(x, y))

    class M(nn.Module):
        def forward(self, a, b):
            c = torch.relu(torch.add(a, b))
            d = torch.relu(torch.add(c, a))
            return torch.relu(torch.add(d, 1)) + d

    gm = fx.symbolic_trace(M())
    matches = fx.subgraph_rewriter.replace_pattern(gm, pattern, replacement)
    rows = [
        (
            match.anchor.name,
            sorted((k.name, str(v)) for k, v in match.nodes_map.items()),
            type(match).__name__,
        )
        for match in matches
    ]
    return rows, gm.code, gm(torch.ones(2), torch.ones(2))


@snippet
def replace_pattern_with_filters_and_replacements(fx):
    def pattern(x):
        return x.neg()

    def replacement(x):
        return x * -1

    def only_first(match, original_graph, pattern_graph):
        return any(node.name == "neg" for node in match.nodes_map.values())

    gm = fx.symbolic_trace(lambda x: x.neg().neg() + 1)
    results = fx.subgraph_rewriter.replace_pattern_with_filters(
        gm, pattern, replacement, match_filters=[only_first]
    )
    return (
        [(r.anchor.name, [n.name for n in r.replacements], type(r).__name__) for r in results],
        gm.code,
    )


@snippet
def const_fold_split_const_subgraphs(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(3))

        def forward(self, x):
            folded = self.w * 2 + torch.ones(3)
            return x + folded

    folded = fx.experimental.const_fold.split_const_subgraphs(M())
    folded.run_folding()
    return folded.code, type(folded).__name__, folded(torch.zeros(3))


@snippet
def optimization_fuse_conv_bn(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 3)
            self.bn = nn.BatchNorm2d(3)

        def forward(self, x):
            return torch.relu(self.bn(self.conv(x)))

    module = M().eval()
    module.bn.running_mean.uniform_()
    fused = fx.experimental.optimization.fuse(module)
    x = torch.randn(1, 2, 5, 5)
    return fused.code, [n for n, _ in fused.named_modules()], fused(x), module(x)


test_fxkit_matches_torch_fx = parity_test(__name__)
