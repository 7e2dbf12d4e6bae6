"""The DCE pass wrapper against torch.fx's eliminate_dead_code on the same graph."""

from __future__ import annotations

import torch
import torch.fx

import fxkit as fx
from fxkit.passes.dce import DCEPass, dead_code_elimination


class Wasteful(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used = torch.nn.Linear(3, 3)
        self.unused = torch.nn.Linear(3, 3)

    def forward(self, x):
        dead = torch.relu(x) * 2
        also_dead = self.unused(x)
        torch._assert(x.sum() > -1e9, "finite")
        return self.used(x)


def test_same_as_torch_fx_and_keeps_impure_nodes() -> None:
    ours, theirs = fx.symbolic_trace(Wasteful()), torch.fx.symbolic_trace(Wasteful())
    assert dead_code_elimination(ours) is True
    theirs.graph.eliminate_dead_code()
    theirs.recompile()
    assert ours.code == theirs.code
    assert any(node.target is torch._assert for node in ours.graph.nodes)
    assert dead_code_elimination(ours) is False


def test_pass_object_can_drop_unused_submodules() -> None:
    model = Wasteful()
    traced = fx.symbolic_trace(model)
    result = DCEPass(remove_unused_submodules=True)(traced)
    assert result.modified and result.graph_module is traced
    assert not hasattr(traced, "unused")
    x = torch.randn(2, 3)
    torch.testing.assert_close(traced(x), model(x))
