"""experimental.normalize and experimental.schema_type_annotation against torch.fx's."""

from __future__ import annotations

import typing
import warnings

import pytest
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from torch.fx.experimental import normalize as oracle_normalize
from torch.fx.experimental import schema_type_annotation as oracle_annotation

import fxkit as fx
from fxkit.experimental.normalize import NormalizeArgs, NormalizeOperators
from fxkit.experimental.schema_type_annotation import AnnotateTypesWithSchema


class Calls(nn.Module):
    """Modules, functionals, torch functions with one and several overloads, methods."""

    def __init__(self, alpha: int = 2) -> None:
        super().__init__()
        self.alpha = alpha  # torch.fx's NormalizeOperators drops alpha=: the tests pass 1 there
        self.conv, self.lin, self.bn = nn.Conv2d(3, 3, 3), nn.Linear(4, 4), nn.BatchNorm2d(3)
        self.p = nn.Parameter(torch.ones(16))
        self.seq = nn.Sequential(nn.ReLU())

    def forward(self, x, y):
        a = F.relu(self.conv(x), inplace=False)
        b = torch.sum(torch.add(a, 1, alpha=self.alpha) if self.alpha != 1 else torch.add(a, 1), dim=1)
        e = torch.cat([self.lin(y), y], dim=0).view(-1)
        h = torch.sub(torch.mul(e, 2), self.p.sum())
        k = torch.div(torch.add(h, h) + 1, 2)
        top = torch.topk(e, 2)[0]
        return (
            b, torch.eq(k, k), F.dropout(k, 0.1, self.training), self.bn(self.seq(x)), top, x.size(0), torch.floor_divide(k, 2),
            torch.clamp(k, min=0.0), F.softmax(k, dim=0), torch.relu(k), torch.remainder(k, 3), torch.ge(k, h),
        )  # fmt: skip


INPUTS = (torch.randn(2, 3, 6, 6), torch.randn(4, 4))


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.fx warns about type hints it cannot build
        return fn(*args, **kwargs)


def _types(gm):
    return [(node.name, node.type) for node in gm.graph.nodes]


@pytest.mark.parametrize("only_kwargs", [True, False])
def test_normalize_args_matches_torch_fx(only_kwargs: bool) -> None:
    model = Calls().eval()
    ours = NormalizeArgs(fx.symbolic_trace(model), normalize_to_only_use_kwargs=only_kwargs).transform()
    oracle = _quiet(
        oracle_normalize.NormalizeArgs(
            torch.fx.symbolic_trace(model), normalize_to_only_use_kwargs=only_kwargs
        ).transform
    )
    assert ours.code == oracle.code
    assert "input = " in ours.code if only_kwargs else "keepdim = False" in ours.code
    torch.testing.assert_close(ours(*INPUTS), model(*INPUTS))


def test_normalize_args_uses_type_meta_to_pick_an_overload() -> None:
    def build(graph_class, module_class):
        graph = graph_class()
        x, y = graph.placeholder("x"), graph.placeholder("y")
        add = graph.call_function(torch.add, (x, y), {"alpha": 2})
        add_scalar = graph.call_function(torch.add, (x, 3))
        product = graph.call_function(torch.mul, (add, add_scalar))
        for node in (x, y, add, add_scalar, product):
            # torch.fx reads the node's own type for each node argument, fxkit the argument's
            # type: with every node typed alike the two agree.
            node.meta["type"] = torch.Tensor
        graph.output((add, add_scalar, product))
        return module_class(nn.Module(), graph)

    ours = NormalizeArgs(build(fx.Graph, fx.GraphModule)).transform()
    oracle = _quiet(oracle_normalize.NormalizeArgs(build(torch.fx.Graph, torch.fx.GraphModule)).transform)
    assert ours.code == oracle.code
    assert "torch.add(input = x, other = y, alpha = 2)" in ours.code
    assert [node.meta.get("type") for node in ours.graph.nodes] == [
        node.meta.get("type") for node in oracle.graph.nodes
    ]


def test_normalize_operators_matches_torch_fx() -> None:
    class Binary(nn.Module):
        def forward(self, x, y):
            return (
                torch.add(x, y), torch.sub(x, 2), torch.mul(x, y), torch.div(x, y), torch.floor_divide(x, 2),
                torch.remainder(x, 3), torch.eq(x, y), torch.ne(x, y), torch.lt(x, y), torch.le(x, y),
                torch.gt(x, y), torch.ge(x, y), torch.add(x, other=y), F.relu(x), torch.relu(x),
            )  # fmt: skip

    for model, inputs in ((Binary(), (torch.randn(3), torch.rand(3) + 1)), (Calls(alpha=1).eval(), INPUTS)):
        ours = NormalizeOperators(fx.symbolic_trace(model)).transform()
        oracle = oracle_normalize.NormalizeOperators(torch.fx.symbolic_trace(model)).transform()
        assert ours.code == oracle.code
        assert _types(ours) == _types(oracle)
        torch.testing.assert_close(ours(*inputs), model(*inputs))


@pytest.mark.parametrize("call", ["add_alpha", "div_rounding"])
def test_normalize_operators_keeps_calls_with_keywords(call: str) -> None:
    """torch.fx drops the keywords (alpha=, rounding_mode=) and changes the result; fxkit keeps
    such calls as they are."""

    class Keywords(nn.Module):
        def forward(self, x):
            return torch.add(x, 1, alpha=2) if call == "add_alpha" else torch.div(x, 2, rounding_mode="floor")

    model, x = Keywords(), torch.randn(5) * 10
    ours = NormalizeOperators(fx.symbolic_trace(model)).transform()
    torch.testing.assert_close(ours(x), model(x))
    oracle = oracle_normalize.NormalizeOperators(torch.fx.symbolic_trace(model)).transform()
    assert not torch.allclose(oracle(x), model(x))  # the torch.fx behaviour fxkit does not copy


class Annotated(nn.Module):
    def forward(self, x) -> typing.List[torch.Tensor]:
        return [x]


class MyLinear(nn.Linear):
    pass


def _annotation_module(graph_class, module_class):
    root = nn.Module()
    root.lin, root.mine, root.user, root.seq = nn.Linear(2, 2), MyLinear(2, 2), Annotated(), nn.Sequential()
    root.attn, root.i, root.ints, root.t, root.p = (
        nn.MultiheadAttention(2, 1),
        3,
        [1, 2],
        torch.ones(1),
        nn.Parameter(torch.ones(1)),
    )
    root.pair, root.table = (1, "a"), {"a": 1.0}
    graph = graph_class()
    x = graph.placeholder("x")
    outs = [graph.call_module(name, (x,)) for name in ("lin", "mine", "user", "seq")]
    outs.append(graph.call_module("attn", (x, x, x)))
    outs += [graph.get_attr(name) for name in ("i", "ints", "t", "p", "pair", "table", "seq")]
    outs += [graph.call_function(fn, (x,)) for fn in (F.relu, F.gelu, F.max_pool1d, F.layer_norm, torch.relu)]
    graph.output(tuple(outs))
    return module_class(root, graph)


@pytest.mark.parametrize(
    "flags", [(True, True, True), (False, True, True), (True, False, True), (True, True, False)]
)
def test_annotate_types_with_schema_matches_torch_fx(flags) -> None:
    ours = AnnotateTypesWithSchema(_annotation_module(fx.Graph, fx.GraphModule), *flags).transform()
    oracle = oracle_annotation.AnnotateTypesWithSchema(
        _annotation_module(torch.fx.Graph, torch.fx.GraphModule), *flags
    ).transform()
    assert _types(ours) == _types(oracle)
    assert ours.code == oracle.code
    assert any(type_ is not None for _, type_ in _types(ours))
