"""experimental.merge_matmul against torch.fx's merge_matmul and eager numerics."""

from __future__ import annotations

import pytest
import torch
import torch.fx
import torch.nn as nn
from torch.fx.experimental import merge_matmul as oracle

import fxkit as fx
from fxkit.experimental.merge_matmul import (
    are_nodes_independent,
    may_depend_on,
    merge_matmul,
    split_result_tensors,
)


class SharedInput(nn.Module):
    def forward(self, a, b, c):
        return torch.matmul(a, c), torch.matmul(b, c)


class Interleaved(nn.Module):
    """Unrelated work between the products; an ``@`` (not torch.matmul) stays as it is."""

    def forward(self, a, b, c, d):
        x = torch.matmul(a, c)
        k = d.relu()
        y = torch.matmul(b, c)
        return x, y, k, x @ c


class Dependent(nn.Module):
    """The second left operand is the first product: nothing can be merged."""

    def forward(self, a, c):
        x = torch.matmul(a, c)
        return x, torch.matmul(x, c)


class SharedParameter(nn.Module):
    """The shared right operand is a parameter; a parameter is also a left operand."""

    def __init__(self) -> None:
        super().__init__()
        self.rhs, self.w = nn.Parameter(torch.randn(4, 5)), nn.Parameter(torch.randn(3, 4))
        self.p = nn.Parameter(torch.randn(5))

    def forward(self, a, b, c):
        x = torch.matmul(a, self.rhs)
        y = torch.matmul(b, self.rhs)
        z = torch.matmul(x.t(), c)
        return x + self.p, y, z, torch.matmul(self.w, self.rhs)


class NothingToMerge(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rhs, self.p = nn.Parameter(torch.randn(4, 5)), nn.Parameter(torch.randn(5))

    def forward(self, a, b):
        return torch.matmul(a, self.rhs) + self.p, b + self.p


CASES = {
    SharedInput: (torch.randn(2, 4), torch.randn(3, 4), torch.randn(4, 5)),
    Interleaved: (torch.randn(2, 4), torch.randn(3, 4), torch.randn(4, 4), torch.randn(3)),
    Dependent: (torch.randn(4, 4), torch.randn(4, 4)),
    SharedParameter: (torch.randn(2, 4), torch.randn(3, 4), torch.randn(2, 6)),
    NothingToMerge: (torch.randn(2, 4), torch.randn(5)),
}


def _code(gm, module_path):
    return gm.code.replace(module_path + ".split_result_tensors", "split_result_tensors")


@pytest.mark.parametrize("model_class", list(CASES), ids=lambda cls: cls.__name__)
def test_merge_matmul_matches_torch_fx(model_class) -> None:
    model, inputs = model_class(), CASES[model_class]
    ours, expected = merge_matmul(model), oracle.merge_matmul(model)
    assert _code(ours, "fxkit.experimental.merge_matmul") == _code(
        expected, "torch.fx.experimental.merge_matmul"
    )
    merged = sum(node.target is torch.cat for node in ours.graph.nodes)
    assert merged == (0 if model_class in (Dependent, NothingToMerge) else 1)
    with torch.no_grad():
        torch.testing.assert_close(ours(*inputs), model(*inputs))


def test_merge_matmul_chained_groups() -> None:
    """Products of a merged group feeding a second group: torch.fx fails ("Attempting to remove
    ... from wrong graph"); fxkit merges both groups."""

    class Chained(nn.Module):
        def forward(self, a, b, c, d):
            x, y = torch.matmul(a, c), torch.matmul(b, c)
            return x, y, torch.matmul(x, d), torch.matmul(y, d)

    model = Chained()
    inputs = (torch.randn(2, 4), torch.randn(3, 4), torch.randn(4, 4), torch.randn(4, 2))
    ours = merge_matmul(model)
    assert sum(node.target is torch.cat for node in ours.graph.nodes) == 2
    torch.testing.assert_close(ours(*inputs), model(*inputs))
    with pytest.raises(RuntimeError, match="wrong graph"):
        oracle.merge_matmul(model)


def test_split_result_tensors_matches_torch_fx() -> None:
    result, inputs = torch.arange(12.0).reshape(6, 2), [torch.ones(2, 3), torch.ones(4, 3)]
    ours, expected = split_result_tensors(result, inputs), oracle.split_result_tensors(result, inputs)
    assert type(ours) is type(expected) and len(ours) == 2
    for piece, want in zip(ours, expected):
        torch.testing.assert_close(piece, want)


def _chain_graph(graph_class):
    graph = graph_class()
    x, y = graph.placeholder("x"), graph.placeholder("y")
    chain = [x]
    for _ in range(10):
        chain.append(graph.call_function(torch.neg, (chain[-1],)))
    joined = graph.call_function(torch.add, (chain[3], y))
    return x, y, chain, joined


def test_dependency_helpers_match_torch_fx() -> None:
    ours, theirs = _chain_graph(fx.Graph), _chain_graph(torch.fx.Graph)

    def queries(x, y, chain, joined):
        return [
            (x, x), (chain[1], x), (x, chain[1]), (chain[6], x), (chain[7], x), (chain[7], x, 7), (chain[2], y),
            (joined, y), (joined, x), (joined, chain[3], 0), (y, x, 0), (chain[1], y, 0), (chain[1], y, 1),
        ]  # fmt: skip

    for mine, oracle_query in zip(queries(*ours), queries(*theirs)):
        assert may_depend_on(*mine) == oracle.may_depend_on(*oracle_query), mine

    def groups(x, y, chain, joined):
        return [[x, y], [x, chain[1]], [chain[1], y], [], [x], [chain[9], y], [joined, chain[9]]]

    assert [are_nodes_independent(g) for g in groups(*ours)] == [
        oracle.are_nodes_independent(g) for g in groups(*theirs)
    ]
