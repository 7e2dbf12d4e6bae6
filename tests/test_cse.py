"""CSE against torch.fx's CSEPass where that pass is sound, and against eager numerics."""

from __future__ import annotations

import operator

import torch
import torch.fx
from torch.fx.passes.dialect.common.cse_pass import CSEPass as OracleCSEPass

import fxkit as fx
from fxkit.passes.cse import CSEPass, PassResult, eliminate_common_subexpressions


def repeated_pure_ops(x, y):
    a = torch.sin(x) + y
    b = torch.sin(x) + y
    c = x.view(-1).sum(dim=0, keepdim=True)
    d = x.view(-1).sum(dim=0, keepdim=True)
    e = torch.cat([a, b], dim=0)
    f = torch.cat([a, b], dim=0)
    return a * b + c * d, e - f, torch.stack((c, d)).max(dim=0).values


def test_same_result_as_torch_fx_on_pure_ops() -> None:
    ours = CSEPass()(fx.symbolic_trace(repeated_pure_ops))
    theirs = OracleCSEPass()(torch.fx.symbolic_trace(repeated_pure_ops))
    assert isinstance(ours, PassResult) and ours.modified == theirs.modified is True
    assert ours.graph_module.code == theirs.graph_module.code
    x, y = torch.randn(3, 4), torch.randn(3, 4)
    torch.testing.assert_close(ours.graph_module(x, y), repeated_pure_ops(x, y))


def test_impure_random_and_inplace_ops_are_kept() -> None:
    def fn(x):
        noise_a = torch.rand_like(x)
        noise_b = torch.rand_like(x)
        y = x.clone()
        y.add_(1)
        y.add_(1)
        return noise_a - noise_b, y

    traced = fx.symbolic_trace(fn)
    before = [node.name for node in traced.graph.nodes]
    assert eliminate_common_subexpressions(traced) is False
    assert [node.name for node in traced.graph.nodes] == before
    difference, bumped = traced(torch.zeros(1000))
    assert difference.abs().sum() > 0
    torch.testing.assert_close(bumped, torch.full((1000,), 2.0))


def test_constants_of_different_types_are_not_merged() -> None:
    def fn(x):
        return x + 1, x + 1.0, x + True, x + 1

    traced = fx.symbolic_trace(fn)
    assert eliminate_common_subexpressions(traced) is True
    adds = [node for node in traced.graph.nodes if node.target is operator.add]
    assert [node.args[1] for node in adds] == [1, 1.0, True]
    x = torch.arange(3)
    for got, expected in zip(traced(x), fn(x)):
        assert torch.equal(got, expected) and got.dtype == expected.dtype


def test_pass_object_leaves_input_alone_and_banned_ops_stay() -> None:
    traced = fx.symbolic_trace(lambda x: torch.sin(x) + torch.sin(x) + torch.cos(x) + torch.cos(x))
    code_before = traced.code
    result = CSEPass(banned_ops={torch.cos})(traced)
    assert traced.code == code_before
    targets = [node.target for node in result.graph_module.graph.nodes if node.op == "call_function"]
    assert targets.count(torch.sin) == 1 and targets.count(torch.cos) == 2
    x = torch.randn(4)
    torch.testing.assert_close(result.graph_module(x), 2 * torch.sin(x) + 2 * torch.cos(x))
