"""split_const_subgraphs against torch.fx's const_fold on the same models, and eager numerics."""

from __future__ import annotations

import warnings
from collections import Counter

import pytest
import torch
import torch.fx
from torch.fx.experimental import const_fold as oracle_const_fold

import fxkit as fx
from fxkit.experimental.const_fold import FoldedGraphModule, split_const_subgraphs


class TwoFolds(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(4, 4))
        self.register_buffer("b", torch.randn(4))
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):
        w2 = self.w.t() * 2 + 1
        c = self.b.relu() + self.lin.weight.sum()
        return x @ w2 + c, self.b + x.sum()


class OneFold(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(4, 4))

    def forward(self, x):
        return x @ (self.w * 2)


class RandomIsNotFolded(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(4, 4))

    def forward(self, x):
        noise = torch.rand_like(self.w)
        return x @ (self.w.exp() + noise * 0)


def _call_targets(graph) -> Counter:
    return Counter(str(node.target) for node in graph.nodes if node.op.startswith("call_"))


def _folded_values(module):
    folded = getattr(module, module.fx_const_folded_attrs_name)
    return list(folded) if isinstance(folded, torch.nn.ParameterList) else [folded]


CASES = {"two_folds": TwoFolds, "one_fold": OneFold, "random": RandomIsNotFolded}


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_folding_as_torch_fx(case: str) -> None:
    model = CASES[case]()
    ours = split_const_subgraphs(fx.symbolic_trace(model))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = oracle_const_fold.split_const_subgraphs(torch.fx.symbolic_trace(model))
    assert isinstance(ours, FoldedGraphModule)
    assert _call_targets(ours.graph) == _call_targets(theirs.graph)
    assert _call_targets(ours.const_subgraph_module.graph) == _call_targets(
        theirs.const_subgraph_module.graph
    )
    assert not ours.has_folding_been_run
    x = torch.randn(3, 4)
    with torch.no_grad():
        ours_out, theirs_out, eager = ours(x), theirs(x), model(x)
    assert ours.has_folding_been_run
    if case != "random":
        torch.testing.assert_close(ours_out, eager)
        torch.testing.assert_close(ours_out, theirs_out)
    ours_folded, theirs_folded = _folded_values(ours), _folded_values(theirs)
    assert type(getattr(ours, ours.fx_const_folded_attrs_name)) is type(
        getattr(theirs, theirs.fx_const_folded_attrs_name)
    )
    assert len(ours_folded) == len(theirs_folded)
    for mine, oracle in zip(ours_folded, theirs_folded):
        torch.testing.assert_close(mine, oracle)
        assert mine.requires_grad == oracle.requires_grad


def test_skip_folding_node_fn_and_plain_module() -> None:
    model = TwoFolds()
    skip = lambda node: node.op == "call_method" and node.target == "t"  # noqa: E731
    ours = split_const_subgraphs(model, skip_folding_node_fn=skip)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = oracle_const_fold.split_const_subgraphs(model, skip_folding_node_fn=skip)
    assert _call_targets(ours.graph) == _call_targets(theirs.graph)
    assert any(str(node.target) == "t" for node in ours.graph.nodes)
    x = torch.randn(2, 4)
    torch.testing.assert_close(ours(x), model(x))
    theirs(x)
    assert len(_folded_values(ours)) == len(_folded_values(theirs))


def test_nothing_to_fold_keeps_the_code() -> None:
    traced = fx.symbolic_trace(lambda x: x + 1)
    folded = split_const_subgraphs(traced)
    assert folded.const_subgraph_module is None
    assert folded.code == traced.code
    torch.testing.assert_close(folded(torch.ones(2)), torch.full((2,), 2.0))


def test_run_folding_twice_is_refused() -> None:
    folded = split_const_subgraphs(OneFold())
    folded.run_folding()
    with pytest.raises(RuntimeError, match="already been folded"):
        folded.run_folding()


def test_get_unique_attr_name_in_module_matches_torch_fx() -> None:
    from fxkit.experimental.const_fold import get_unique_attr_name_in_module

    ours, oracle = fx.symbolic_trace(torch.nn.Linear(1, 1)), torch.fx.symbolic_trace(torch.nn.Linear(1, 1))
    for module in (ours, oracle):
        for taken in ("a", "a_1", "a_2", "b_1", "c_5", "d_01", "e", "f_1", "f_2"):
            setattr(module, taken, 1)
    names = [
        "a",
        "a_1",
        "b",
        "b_1",
        "c_5",
        "d_01",
        "e_0",
        "f_1",
        "weight",
        "bias_0",
        "sub.weight",
        "x-y",
        "9",
        "é",
        "a__1",
    ]
    for name in names:
        assert get_unique_attr_name_in_module(ours, name) == oracle_const_fold.get_unique_attr_name_in_module(
            oracle, name
        ), name


class ClashingAttr(torch.nn.Module):
    """The model already has an attribute named like the folded values' attribute."""

    def __init__(self) -> None:
        super().__init__()
        self._FX_CONST_FOLDED_ATTRS = torch.nn.Parameter(torch.ones(2))
        self.w = torch.nn.Parameter(torch.ones(2))

    def forward(self, x):
        return x + self._FX_CONST_FOLDED_ATTRS + self.w * 2


def test_folded_attr_name_does_not_clash_with_the_model() -> None:
    model, x = ClashingAttr(), torch.randn(2)
    ours = split_const_subgraphs(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.fx warns about its own get_attr here
        oracle = oracle_const_fold.split_const_subgraphs(model)
    assert ours.fx_const_folded_attrs_name == oracle.fx_const_folded_attrs_name == "_FX_CONST_FOLDED_ATTRS_1"
    assert ours.code == oracle.code
    torch.testing.assert_close(ours(x), model(x))
