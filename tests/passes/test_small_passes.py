"""fake_tensor_prop, dialect.common.cse_pass, the old pass_manager and
infra.pass_manager._topological_sort_passes against torch.fx's."""

from __future__ import annotations

import logging
import random

import pytest
import torch
import torch.fx
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.fx.passes import pass_manager as oracle_pm
from torch.fx.passes.dialect.common.cse_pass import CSEPass as OracleCSEPass
from torch.fx.passes.dialect.common.cse_pass import get_CSE_banned_ops as oracle_banned
from torch.fx.passes.fake_tensor_prop import FakeTensorProp as OracleFakeTensorProp
from torch.fx.passes.infra.pass_manager import _topological_sort_passes as oracle_sort

import fxkit as fx
from fxkit.passes import pass_manager
from fxkit.passes.dialect.common.cse_pass import CSEPass, get_CSE_banned_ops
from fxkit.passes.fake_tensor_prop import FakeTensorProp
from fxkit.passes.infra.pass_manager import _topological_sort_passes


def _program(x, n: int):
    return x.relu() * n, x.size(0), (x, 3), x.sum()


def _vals(gm):
    rows = []
    for node in gm.graph.nodes:
        value = node.meta["val"]
        flat = value if isinstance(value, tuple) else (value,)
        rows.append(
            (
                node.name,
                [
                    (type(v).__name__, tuple(v.shape), v.dtype) if isinstance(v, torch.Tensor) else v
                    for v in flat
                ],
            )
        )
    return rows


def test_fake_tensor_prop_matches():
    ours, theirs = fx.symbolic_trace(_program), torch.fx.symbolic_trace(_program)
    x = torch.randn(2, 4)
    got = FakeTensorProp(ours).propagate(x, 3)
    OracleFakeTensorProp(theirs).propagate(x, 3)
    assert isinstance(got[0], FakeTensor) and got[1] == 2
    assert str(_vals(ours)) == str(_vals(theirs))


def test_fake_tensor_prop_given_mode_and_module_parameters():
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    model = torch.nn.Linear(4, 3)
    gm = fx.symbolic_trace(model)
    prop = FakeTensorProp(gm, mode)
    result = prop.propagate_dont_convert_inputs(mode.from_tensor(torch.randn(2, 4)))
    assert isinstance(result, FakeTensor) and result.shape == (2, 3) and result.fake_mode is mode
    with pytest.raises(Exception, match="FakeTensor"):
        FakeTensorProp(fx.symbolic_trace(_program)).propagate_dont_convert_inputs(torch.randn(2, 4), 3)


class Repeats(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)
        self.p = torch.nn.Parameter(torch.ones(2))

    def forward(self, x):
        a = self.lin(x) + self.lin(x)
        c = torch.cat([x, x]) + torch.cat([x, x])
        f = x.sum(dim=[0]) + x.sum(dim=[0]) + self.p + self.p
        g = torch.add(x, 1, alpha=2) + torch.add(x, 1, alpha=2) + torch.add(x, 1, alpha=3)
        i = torch.add(x, 1) + torch.add(x, other=1)
        j = torch.ops.aten.relu.default(x) + torch.ops.aten.relu.default(x)
        return a, c, f, g, i, j


@pytest.mark.parametrize("banned", [None, {torch.ops.aten.relu}])
def test_cse_pass_matches(banned):
    model = Repeats()
    gm = fx.symbolic_trace(model)
    before = gm.code
    ours = CSEPass(banned_ops=banned)(gm)
    theirs = OracleCSEPass(banned_ops=banned)(torch.fx.symbolic_trace(model))
    assert ours.modified == theirs.modified is True
    assert ours.graph_module.code == theirs.graph_module.code
    assert gm.code == before
    x = torch.randn(3, 2)
    for got, expected in zip(ours.graph_module(x), model(x), strict=True):
        torch.testing.assert_close(got, expected)
    assert get_CSE_banned_ops() == oracle_banned()
    assert CSEPass()(fx.symbolic_trace(lambda x: x + 1)).modified is False


def test_cse_pass_keeps_random_and_in_place_calls_and_hashes_slices():
    def program(x):
        noise = torch.ops.aten.rand_like.default(x) + torch.ops.aten.rand_like.default(x)
        y = x.clone()
        y.add_(1)
        y.add_(1)
        return noise, y, x[1:] + x[1:]

    result = CSEPass()(fx.symbolic_trace(program))
    code = result.graph_module.code
    # torch.fx merges both random draws and both in-place adds (and cannot hash the slices).
    assert code.count("rand_like.default(x)") == 2 and code.count(".add_(1)") == 2
    assert code.count("slice(1, None, None)") == 1
    x = torch.randn(3)
    torch.testing.assert_close(result.graph_module(x)[1], x + 2)


def _named(index):
    def one_pass(x):
        return x + [index]

    one_pass.__name__ = f"p{index}"
    return one_pass


def test_topological_sort_passes_matches_on_random_constraints():
    for seed in range(200):
        rng = random.Random(seed)
        passes = [_named(i) for i in range(rng.randint(1, 7))]
        constraints = []
        for _ in range(rng.randint(0, 6)):
            if len(passes) > 1:
                a, b = rng.sample(range(len(passes)), 2)
                constraints.append(pass_manager.this_before_that_pass_constraint(passes[a], passes[b]))
        try:
            expected = [p.__name__ for p in oracle_sort(passes, constraints)]
        except RuntimeError as error:
            with pytest.raises(RuntimeError) as raised:
                _topological_sort_passes(passes, constraints)
            assert str(raised.value) == str(error)
            continue
        assert [p.__name__ for p in _topological_sort_passes(passes, constraints)] == expected, seed


@pytest.mark.parametrize("module", [pass_manager, oracle_pm], ids=["fxkit", "torch.fx"])
def test_old_pass_manager(module, caplog):
    a, b, c = _named(1), _named(2), _named(3)
    assert module.PassManager([a, b, c])([]) == [1, 2, 3]
    manager = module.PassManager.build_from_passlist([a, b, c])
    manager.add_constraint(module.this_before_that_pass_constraint(c, a))
    with pytest.raises(RuntimeError, match="pass schedule constraint violated. Expected") as raised:
        manager([])
    assert "at index 0 and" in str(raised.value)
    manager = module.PassManager([a, b, c])
    manager.remove_pass(["p2"])
    assert manager([]) == [1, 3]
    manager.replace_pass(a, c)
    assert manager([]) == [3, 3]
    assert module.loop_pass(a, n_iter=3)([]) == [1, 1, 1]
    assert module.loop_pass(a, predicate=lambda x: len(x) < 4)([]) == [1, 1, 1, 1]
    assert module.loop_pass(a, 2).__name__ == "p1"
    with pytest.raises(AssertionError, match="Exactly one of"):
        module.loop_pass(a)
    assert module.inplace_wrapper(lambda x: x.append(5))([]) == [5]
    with caplog.at_level(logging.INFO):
        assert module.log_hook(a)([]) == [1]
    if module is pass_manager:
        assert "Ran pass" in caplog.text
    for make in (module.this_before_that_pass_constraint, module.these_before_those_pass_constraint):
        constraint = make(a, b)
        assert [constraint(a, b), constraint(b, a), constraint(a, a), constraint(c, a)] == [
            True,
            False,
            True,
            True,
        ]
