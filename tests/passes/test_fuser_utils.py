"""fuser_utils against torch.fx's: same topological orders, fused submodules, parent code, meta
and outputs; cyclic partitions refused before anything is edited."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.fx
from torch.fx.passes.utils import fuser_utils as oracle

import fxkit as fx
from fxkit.passes.utils import fuser_utils


class Chain(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 3)
        self.p = torch.nn.Parameter(torch.ones(3))

    def forward(self, x, y):
        a = x + y
        b = self.lin(a)
        c = b * self.p
        d = torch.sigmoid(c)
        e = d - a
        f = e.neg()
        return f + c, b


def _traced(tracing, model):
    gm = tracing.symbolic_trace(model)
    for node in gm.graph.nodes:
        node.meta["origin"] = node.name
    return gm, {node.name: node for node in gm.graph.nodes}


def _shape(gm):
    children = {name: getattr(child, "code", None) for name, child in gm.named_children()}
    return gm.code, [(n.name, n.op, str(n.target), dict(n.meta)) for n in gm.graph.nodes], children


def _two_chains(tracing):
    def program(y):
        a1 = torch.relu(y)
        a2 = a1 + 1
        b1 = torch.neg(y)
        b2 = b1 * 2
        return a2 + b2, torch.relu(y) + a1

    gm = tracing.symbolic_trace(program)
    return {node.name: node for node in gm.graph.nodes}


def test_topo_sort_matches_on_every_order():
    ours, theirs = _two_chains(fx), _two_chains(torch.fx)
    names = ["relu", "add", "neg", "mul", "relu_1", "add_2"]
    for order in itertools.permutations(names):
        got = [n.name for n in fuser_utils.topo_sort([ours[name] for name in order])]
        assert got == [n.name for n in oracle.topo_sort([theirs[name] for name in order])], order


@pytest.mark.parametrize(
    "names",
    [["add", "sigmoid"], ["add", "lin"], ["add", "sub"], ["lin", "mul", "sigmoid", "sub"], ["mul", "add_1"]],
)
def test_validate_partition_matches(names):
    model = Chain()
    (_, ours), (_, theirs) = _traced(fx, model), _traced(torch.fx, model)
    assert fuser_utils.validate_partition([ours[n] for n in names]) == oracle.validate_partition(
        [theirs[n] for n in names]
    )


@pytest.mark.parametrize("always_return_tuple", [False, True])
@pytest.mark.parametrize("names", [["add", "lin", "mul"], ["sub", "neg"], ["lin", "p", "mul"], ["add_1"]])
def test_fuse_as_graphmodule_then_insert_and_erase(names, always_return_tuple):
    model = Chain()
    results = []
    for tracing, module in ((fx, fuser_utils), (torch.fx, oracle)):
        gm, nodes = _traced(tracing, model)
        ordered = module.topo_sort([nodes[n] for n in names])
        sub, inputs, outputs = module.fuse_as_graphmodule(
            gm, ordered, "piece", always_return_tuple=always_return_tuple
        )
        sub_shape = (sub.code, [(n.name, dict(n.meta)) for n in sub.graph.nodes], type(sub).__name__)
        boundary = ([n.name for n in inputs], [n.name for n in outputs])
        module.insert_subgm(gm, sub, inputs, outputs)
        module.erase_nodes(gm, ordered)
        gm.recompile()
        results.append((sub_shape, boundary, _shape(gm), gm))
    (ours_sub, ours_io, ours_gm, ours), (their_sub, their_io, their_gm, theirs) = results
    assert (ours_sub, ours_io) == (their_sub, their_io)
    assert ours_gm == their_gm
    x, y = torch.randn(2, 3), torch.randn(2, 3)
    for got, expected in zip(ours(x, y), model(x, y), strict=True):
        torch.testing.assert_close(got, expected)


PARTITIONS = [
    [["lin", "mul", "p"], ["sub", "neg"]],
    [["add", "lin"], ["add_1"]],
    [["neg", "sub", "sigmoid", "mul", "p", "lin"]],
]


@pytest.mark.parametrize("always_return_tuple", [False, True])
@pytest.mark.parametrize("case", range(len(PARTITIONS)))
def test_fuse_by_partitions_matches(case, always_return_tuple):
    model = Chain()
    fused = []
    for tracing, module in ((fx, fuser_utils), (torch.fx, oracle)):
        gm, nodes = _traced(tracing, model)
        partitions = [{nodes[name]: None for name in names} for name in [None] for names in PARTITIONS[case]]
        result = module.fuse_by_partitions(
            gm, partitions, prefix="fz_", always_return_tuple=always_return_tuple
        )
        assert result is gm
        fused.append(gm)
    ours, theirs = fused
    assert _shape(ours) == _shape(theirs)
    x, y = torch.randn(2, 3), torch.randn(2, 3)
    for got, expected in zip(ours(x, y), model(x, y), strict=True):
        torch.testing.assert_close(got, expected)


def test_cyclic_partitions_are_refused_and_graph_left_alone():
    model = Chain()
    gm, nodes = _traced(fx, model)
    before = gm.code
    with pytest.raises(AssertionError, match="Invalid partition, found dependency cycles"):
        fuser_utils.fuse_by_partitions(
            gm, [{nodes["lin"]: None}, {nodes["add"]: None, nodes["sigmoid"]: None}]
        )
    assert gm.code == before and not hasattr(gm, "fused_0")
    # Two partitions that are each fine but read from each other once fused.
    with pytest.raises(AssertionError, match="Invalid partition, found dependency cycles"):
        fuser_utils.fuse_by_partitions(
            gm, [{nodes["lin"]: None, nodes["sigmoid"]: None}, {nodes["mul"]: None, nodes["sub"]: None}]
        )
    assert gm.code == before
    gm.graph.lint()
