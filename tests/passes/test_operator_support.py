"""operator_support against torch.fx's: the same nodes supported for the same tables and combinators."""

from __future__ import annotations

import pytest
import torch
import torch.fx
from torch.fx.passes import operator_support as oracle
from torch.fx.passes.shape_prop import ShapeProp as OracleShapeProp

import fxkit as fx
from fxkit.passes import operator_support
from fxkit.passes.shape_prop import ShapeProp


class Casts(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x, i):
        a = self.lin(x)
        b = torch.add(a, x, alpha=2)
        c = b.to(torch.float16)
        d = torch.add(c, i)
        return torch.cat([d.sum(dim=0), c.flatten()]), d.size()


def _traced_pair():
    model = Casts()
    args = (torch.randn(2, 4), torch.ones(2, 4, dtype=torch.int32))
    ours, theirs = fx.symbolic_trace(model), torch.fx.symbolic_trace(model)
    ShapeProp(ours).propagate(*args)
    OracleShapeProp(theirs).propagate(*args)
    return ours, theirs


TABLES = [
    {
        "torch.nn.modules.linear.Linear": None,
        "torch.add": ((), {"alpha": [torch.float32]}),
        "to": (([torch.float32],), {}),
        "sum": (([torch.float16],), {}),
    },
    {"torch.add": (([torch.float32], [torch.float32]), {})},
    {"torch.add": (([torch.float32, torch.float16], [torch.float32, torch.int32]), {}), "torch.cat": None},
    {"torch.cat": (([torch.float32],), {}), "size": None, "flatten": ((), {"start_dim": [torch.int32]})},
    None,
    {},
]


def _same_answers(ours_support, theirs_support):
    ours, theirs = _traced_pair()
    our_modules, their_modules = dict(ours.named_modules()), dict(theirs.named_modules())
    got = [(n.name, ours_support.is_node_supported(our_modules, n)) for n in ours.graph.nodes]
    expected = [(n.name, theirs_support.is_node_supported(their_modules, n)) for n in theirs.graph.nodes]
    assert got == expected


@pytest.mark.parametrize("table", range(len(TABLES)))
def test_operator_support_table(table):
    _same_answers(operator_support.OperatorSupport(TABLES[table]), oracle.OperatorSupport(TABLES[table]))


def _by_op(submodules, node):
    return node.op == "call_module"


def _by_name(submodules, node):
    return node.name in ("add", "cat")


@pytest.mark.parametrize(
    "build",
    [
        lambda m: m.create_op_support(_by_op),
        lambda m: m.chain(m.create_op_support(_by_op), m.create_op_support(_by_name)),
        lambda m: m.any_chain(m.create_op_support(_by_op), m.create_op_support(_by_name)),
        lambda m: m.chain(),
        lambda m: m.any_chain(),
        lambda m: m.OpSupports.decline_if_input_dtype(torch.int32),
        lambda m: m.OpSupports.decline_if_input_dtype(torch.float16),
        lambda m: m.OpSupports.decline_if_node_in_names({"b", "x", "add_1"}),
        lambda m: m.chain(m.OperatorSupport(TABLES[2]), m.OpSupports.decline_if_node_in_names({"cat"})),
    ],
)
def test_combinators(build):
    ours = build(operator_support)
    assert isinstance(ours, operator_support.OperatorSupportBase)
    _same_answers(ours, build(oracle))


def test_base_is_abstract_and_dtype_needs_metadata():
    with pytest.raises(TypeError):
        operator_support.OperatorSupportBase()
    graph = fx.Graph()
    x = graph.placeholder("x")
    with pytest.raises(KeyError):
        operator_support._get_arg_dtype(x)
    x.meta["type"] = int
    assert operator_support._get_arg_dtype(x) is int
