"""fxkit._lazy_graph_module: torch.fx's lazy-recompilation switches, accepted so that code written
for torch.fx runs; fxkit GraphModules generate their code on first use either way."""

import pytest
import torch
import torch.fx
from torch.fx._lazy_graph_module import _use_lazy_graph_module as oracle_use_lazy

import fxkit as fx
from fxkit._lazy_graph_module import _force_skip_lazy_graph_module, _make_graph_module, _use_lazy_graph_module


def double_plus_one(x):
    return x * 2 + 1


@pytest.mark.parametrize("use_lazy", [True, False])
def test_modules_built_under_the_switch_behave_as_torch_fx_ones(use_lazy: bool) -> None:
    with _use_lazy_graph_module(use_lazy):
        ours = fx.symbolic_trace(double_plus_one)
    with oracle_use_lazy(use_lazy):
        oracle = torch.fx.symbolic_trace(double_plus_one)
    assert ours.code == oracle.code
    x = torch.randn(3)
    torch.testing.assert_close(ours(x), oracle(x))


def test_code_is_generated_on_first_use_and_after_recompile() -> None:
    with _force_skip_lazy_graph_module():
        gm = _make_graph_module(torch.nn.Module(), fx.symbolic_trace(double_plus_one).graph)
    assert isinstance(gm, fx.GraphModule)
    assert "_generated" not in gm.__dict__ or gm.__dict__["_generated"] is None
    for node in gm.graph.nodes:
        if node.target is torch.ops.aten.add.Tensor or node.name == "add":
            node.args = (node.args[0], 5)
    gm.recompile()
    torch.testing.assert_close(gm(torch.ones(2)), torch.full((2,), 7.0))


def _recompile_states(fx_module, use_lazy) -> list:
    """``_needs_recompile()`` after each step: trace, call, edit, recompile, read code, retrace."""
    states = []
    with use_lazy(True):
        gm = fx_module.symbolic_trace(lambda x: x.sin())
        states.append(gm._needs_recompile())
        gm(torch.randn(2))
        states.append(gm._needs_recompile())
        for node in gm.graph.nodes:
            if node.target == "sin":
                node.target = "cos"
        states.append(gm._needs_recompile())
        gm.recompile()
        states.append(gm._needs_recompile())
        assert "cos" in gm.code
        states.append(gm._needs_recompile())
        gm.recompile()
        again = fx_module.symbolic_trace(gm)
        states += [gm._needs_recompile(), again._needs_recompile()]
    return states


def test_needs_recompile_follows_torch_fx() -> None:
    assert _recompile_states(fx, _use_lazy_graph_module) == _recompile_states(torch.fx, oracle_use_lazy)
