"""passes.utils.common (HolderModule, lift_subgraph_as_module, compare_graphs) against torch.fx's."""

from __future__ import annotations

import importlib
from typing import Any, List

import torch
import torch.fx

import fxkit


class Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 3)
        self.sub = torch.nn.Module()
        self.sub.w = torch.nn.Parameter(torch.ones(3))
        self.register_buffer("b", torch.zeros(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) * self.sub.w + self.b


def _observe(fx: Any) -> List[Any]:
    common = importlib.import_module(fx.__name__ + ".passes.utils.common")
    split_utils = importlib.import_module(fx.__name__ + ".passes.split_utils")
    gm = fx.symbolic_trace(Model())
    sub = fx.Graph()
    lin = sub.call_module("lin", (sub.placeholder("x"),))
    sub.output(sub.call_function(torch.mul, (lin, sub.get_attr("sub.w"))))
    lifted, mapping = common.lift_subgraph_as_module(gm, sub, comp_name="comp", class_name="Lifted")
    plain, plain_mapping = common.lift_subgraph_as_module(gm, sub)
    holder = common.HolderModule({"a": torch.nn.Linear(1, 1), "b": None})
    x = torch.randn(2, 3)
    return [
        type(lifted).__name__, mapping, [name for name, _ in lifted.named_modules()],
        sorted(dict(lifted.named_parameters())), lifted.code, lifted.sub.w is gm.sub.w, lifted.lin is gm.lin,
        torch.equal(lifted(x), gm.lin(x) * gm.sub.w), type(plain).__name__, plain_mapping,
        [name for name, _ in holder.named_children()], repr(holder),
        common.compare_graphs(gm.graph, gm.graph), common.compare_graphs(sub, gm.graph),
        common.compare_graphs(fx.symbolic_trace(Model()).graph, gm.graph),
        split_utils.lift_subgraph_as_module is common.lift_subgraph_as_module,
        split_utils.HolderModule is common.HolderModule,
    ]  # fmt: skip


def test_common_helpers_match_torch_fx() -> None:
    assert _observe(fxkit) == _observe(torch.fx)
