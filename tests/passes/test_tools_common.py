"""tools_common against torch.fx's: target names, tensor checks, both topological sorts (on many
scrambled node orders) and the acc fusion groups."""

from __future__ import annotations

import operator
import random

import pytest
import torch
import torch.fx
from torch.fx.passes import tools_common as oracle
from torch.fx.passes.shape_prop import ShapeProp as OracleShapeProp

import fxkit as fx
from fxkit.passes import tools_common
from fxkit.passes.shape_prop import ShapeProp

TARGETS = [
    "abc",
    operator.add,
    torch.relu,
    torch.add,
    torch.ops.aten.add.Tensor,
    torch.ops.aten.add,
    torch.nn.functional.relu,
    len,
    getattr,
]


@pytest.mark.parametrize("target", TARGETS, ids=repr)
def test_get_acc_ops_name_matches(target):
    assert tools_common.get_acc_ops_name(target) == oracle.get_acc_ops_name(target)


class Mixed(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)
        self.p = torch.nn.Parameter(torch.ones(4))

    def forward(self, x):
        a = self.lin(x)
        b = a.relu()
        c = torch.add(b, self.p)
        d = operator.getitem(c, 0)
        e = torch.ops.aten.mul.Tensor(d, 2)
        return d + c.dim() + e, c.size(), getattr(c, "shape")


def test_get_node_target_and_is_node_output_tensor_match():
    model, x = Mixed(), torch.randn(2, 4)
    ours, theirs = fx.symbolic_trace(model), torch.fx.symbolic_trace(model)
    ShapeProp(ours).propagate(x)
    OracleShapeProp(theirs).propagate(x)
    our_modules, their_modules = dict(ours.named_modules()), dict(theirs.named_modules())
    for node, reference in zip(ours.graph.nodes, theirs.graph.nodes, strict=True):
        assert tools_common.is_node_output_tensor(node) == oracle.is_node_output_tensor(reference), node.name
        if reference.op in oracle.CALLABLE_NODE_OPS:
            assert tools_common.get_node_target(our_modules, node) == oracle.get_node_target(
                their_modules, reference
            )
        else:
            with pytest.raises(AssertionError, match="Expect op types of"):
                tools_common.get_node_target(our_modules, node)


def _program(tracing):
    graph = tracing.Graph()
    x, y = graph.placeholder("x"), graph.placeholder("y")
    a = graph.call_function(torch.relu, (x,))
    b = graph.call_function(operator.add, (y, 1))
    c = graph.call_function(torch.neg, (a,))
    d = graph.call_function(operator.mul, (b, 2))
    e = graph.call_function(torch.cat, ([c, d],))
    f = graph.call_function(operator.getitem, (e, 0))
    size = graph.call_method("size", (x, 0))
    g = graph.call_function(operator.add, (size, 1))
    h = graph.call_function(operator.eq, (g, 3))
    s1 = graph.call_function(torch.sigmoid, (c,))
    s2 = graph.call_function(torch.tanh, (c,))
    s3 = graph.call_function(torch.add, (s1, s2))
    w = graph.get_attr("w")
    graph.output((f, size, h, w, s3))
    root = torch.nn.Module()
    root.w = torch.nn.Parameter(torch.ones(1))
    return tracing.GraphModule(root, graph)


def _scramble(gm, seed):
    movable = [node for node in gm.graph.nodes if node.op not in ("placeholder", "output")]
    random.Random(seed).shuffle(movable)
    anchor = [node for node in gm.graph.nodes if node.op == "placeholder"][-1]
    for node in movable:
        anchor.append(node)
        anchor = node
    return [node.name for node in gm.graph.nodes]


@pytest.mark.parametrize("sort", ["legalize_graph", "stable_topological_sort"])
def test_topological_sorts_match_on_scrambled_orders(sort):
    for seed in range(40):
        ours, theirs = _program(fx), _program(torch.fx)
        assert _scramble(ours, seed) == _scramble(theirs, seed)
        assert getattr(tools_common, sort)(ours) is ours
        getattr(oracle, sort)(theirs)
        assert [n.name for n in ours.graph.nodes] == [n.name for n in theirs.graph.nodes], seed
        ours.graph.lint()
        assert ours.code == theirs.code
        x, y = torch.randn(3), torch.randn(3)
        for got, expected in zip(ours(x, y), theirs(x, y), strict=True):
            assert torch.equal(torch.as_tensor(got), torch.as_tensor(expected))


@pytest.mark.parametrize(
    ("sort", "error"), [("legalize_graph", RuntimeError), ("stable_topological_sort", AssertionError)]
)
def test_cycles_are_refused_like_torch_fx(sort, error):
    messages = []
    for tracing, module in ((fx, tools_common), (torch.fx, oracle)):
        gm = _program(tracing)
        nodes = {node.name: node for node in gm.graph.nodes}
        nodes["relu"].args = (nodes["neg"],)
        with pytest.raises(error, match="Input graph has cycles") as raised:
            getattr(module, sort)(gm)
        messages.append(str(raised.value))
    assert messages[0] == messages[1]


class ShapeArithmetic(torch.nn.Module):
    """Non-tensor values (sizes) feeding tensor ops, with paths that leave a fusion group and
    come back into it."""

    def forward(self, x, y):
        a = x.relu()
        b = a.view(a.size(0), -1) + y
        d = torch.sigmoid(b)
        e = d * a
        g = d.reshape(e.shape[1], -1)
        k = torch.cat([g.flatten(), b.flatten()]) + e.sum()
        s0 = x.size(0)
        u = x * s0
        z = (torch.tanh(u.relu()) + d).view(s0, -1)
        return k, b, z, u.reshape(z.size(1), -1)


def test_acc_fusion_groups_match_on_random_acc_sets():
    model, args = ShapeArithmetic(), (torch.randn(4, 3), torch.randn(4, 3))
    ours, theirs = fx.symbolic_trace(model), torch.fx.symbolic_trace(model)
    ShapeProp(ours).propagate(*args)
    OracleShapeProp(theirs).propagate(*args)
    calls = [node.name for node in theirs.graph.nodes if node.op in oracle.CALLABLE_NODE_OPS]
    grouped = 0
    for seed in range(200):
        rng = random.Random(seed)
        acc = {name for name in calls if rng.random() < 0.6}
        our_acc = {node for node in ours.graph.nodes if node.name in acc}
        their_acc = {node for node in theirs.graph.nodes if node.name in acc}
        got = tools_common.FxNetAccFusionsFinder(ours, our_acc)()
        expected = oracle.FxNetAccFusionsFinder(theirs, their_acc)()
        assert {k.name: sorted(n.name for n in v) for k, v in got.items()} == {
            k.name: sorted(n.name for n in v) for k, v in expected.items()
        }, seed
        assert sorted(n.name for n in our_acc) == sorted(n.name for n in their_acc), seed
        grouped += bool(got)
    assert grouped > 20
