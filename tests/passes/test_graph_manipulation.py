"""graph_manipulation, annotate_getitem_nodes and param_fetch against torch.fx's."""

from __future__ import annotations

import operator
import typing

import pytest
import torch
import torch.fx
from torch.fx.passes import graph_manipulation as oracle
from torch.fx.passes import param_fetch as oracle_param_fetch
from torch.fx.passes.annotate_getitem_nodes import annotate_getitem_nodes as oracle_annotate

import fxkit as fx
from fxkit.passes import graph_manipulation, param_fetch
from fxkit.passes.annotate_getitem_nodes import annotate_getitem_nodes


class Sized(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)
        self.register_buffer("b", torch.ones(3, dtype=torch.float16))

    def forward(self, x):
        c = self.lin(x).relu() + self.b
        return c.to(torch.int8), c.view(-1)[1:]


def test_sizes_of_all_nodes_match():
    model, x = Sized(), torch.randn(2, 4)
    ours, theirs = fx.symbolic_trace(model), torch.fx.symbolic_trace(model)
    assert graph_manipulation.get_size_of_all_nodes(ours, [x]) is None
    oracle.get_size_of_all_nodes(theirs, [x])
    for node, reference in zip(ours.graph.nodes, theirs.graph.nodes, strict=True):
        if reference.op == "output":
            assert not hasattr(node, "size_bytes")
            continue
        assert tuple(node.size_bytes) == tuple(reference.size_bytes), node.name
        assert graph_manipulation.get_size_of_node(ours, node) == tuple(
            oracle.get_size_of_node(theirs, reference)
        )


def test_missing_tensor_meta_raises_like_torch_fx():
    ours, theirs = fx.symbolic_trace(Sized()), torch.fx.symbolic_trace(Sized())
    with pytest.raises(RuntimeError, match="Node x has no tensor metadata associated with it") as raised:
        graph_manipulation.get_size_of_all_nodes(ours)
    with pytest.raises(RuntimeError) as expected:
        oracle.get_size_of_all_nodes(theirs)
    assert str(raised.value) == str(expected.value)
    assert graph_manipulation.size_bytes(1, 2) == oracle.size_bytes(1, 2)
    assert graph_manipulation.size_bytes._fields == oracle.size_bytes._fields


@pytest.mark.parametrize(
    "replacement",
    [
        ("call_function", operator.add, "call_function", operator.mul),
        ("call_method", "relu", "call_method", "sigmoid"),
        ("call_method", "view", "call_method", "reshape"),
    ],
)
def test_replace_target_nodes_with_matches(replacement):
    model, x = Sized(), torch.randn(2, 4)
    ours, theirs = fx.symbolic_trace(model), torch.fx.symbolic_trace(model)
    for gm in (ours, theirs):
        for node in gm.graph.nodes:
            node.meta["origin"] = node.name
    graph_manipulation.replace_target_nodes_with(ours, *replacement)
    oracle.replace_target_nodes_with(theirs, *replacement)
    assert ours.code == theirs.code
    assert [dict(n.meta) for n in ours.graph.nodes] == [dict(n.meta) for n in theirs.graph.nodes]
    for got, expected in zip(ours(x), theirs(x), strict=True):
        torch.testing.assert_close(got, expected)


class Pair(typing.NamedTuple):
    a: torch.Tensor
    b: int


def _typed(a: typing.Tuple[torch.Tensor, int], b: typing.List[torch.Tensor], c: typing.Dict[str, torch.Tensor],
           d: typing.Tuple[torch.Tensor, ...], e: typing.Tuple[typing.Tuple[int, float], str], f: tuple, g,
           h: list[torch.Tensor], k: tuple[int, str], p: Pair, i: int):  # fmt: skip
    return a[0], a[1], b[0], c["a"], d[3], e[0][1], e[1], f[0], g[0], h[0], k[-1], b[i], p[0], p[1], a[-2]


def test_annotate_getitem_nodes_matches():
    ours, theirs = fx.symbolic_trace(_typed), torch.fx.symbolic_trace(_typed)
    annotate_getitem_nodes(ours.graph)
    oracle_annotate(theirs.graph)
    assert [(n.name, n.type) for n in ours.graph.nodes] == [(n.name, n.type) for n in theirs.graph.nodes]


def test_annotate_getitem_out_of_range_and_slices():
    for tracing, annotate in ((fx, annotate_getitem_nodes), (torch.fx, oracle_annotate)):
        graph = tracing.Graph()
        x = graph.placeholder("x", type_expr=typing.Tuple[int, str])
        graph.output(graph.call_function(operator.getitem, (x, 5)))
        with pytest.raises(AssertionError, match="Index 5 out of range for parameterized_types"):
            annotate(graph)
    # torch.fx types a slice of a List[Tensor] as a Tensor; fxkit keeps the list type.
    graph = fx.Graph()
    x = graph.placeholder("x", type_expr=typing.List[torch.Tensor])
    sliced = graph.call_function(operator.getitem, (x, slice(0, 2)))
    graph.output(sliced)
    annotate_getitem_nodes(graph)
    assert sliced.type == typing.List[torch.Tensor]


MODULES = [
    torch.nn.Linear(2, 3),
    torch.nn.Conv2d(1, 2, 3),
    torch.nn.BatchNorm2d(3),
    torch.nn.ReLU(),
    torch.nn.MaxPool2d(2),
    torch.nn.AdaptiveAvgPool2d(1),
]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: type(m).__name__)
def test_extract_attrs_for_lowering_matches(module):
    got, expected = (
        param_fetch.extract_attrs_for_lowering(module),
        oracle_param_fetch.extract_attrs_for_lowering(module),
    )
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] is value or got[key] == value, key


def test_unknown_module_or_newer_version_is_refused():
    for module in (oracle_param_fetch, param_fetch):
        with pytest.raises(RuntimeError, match="is not in the module_fetch_book yet"):
            module.extract_attrs_for_lowering(torch.nn.LayerNorm(3))
        linear = torch.nn.Linear(2, 2)
        linear._version = 5
        with pytest.raises(
            RuntimeError, match="Fetcher version 1 try to fetch torch.nn.modules.linear.Linear version 5"
        ):
            module.extract_attrs_for_lowering(linear)
    assert param_fetch.default_matching("weight", 3) == oracle_param_fetch.default_matching("weight", 3)


class Nested(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)
        self.seq = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())

    def forward(self, x):
        return self.seq(self.lin(x))


def test_lift_lowering_attrs_to_nodes_matches():
    model = Nested()
    ours, theirs = fx.symbolic_trace(model), torch.fx.symbolic_trace(model)
    param_fetch.lift_lowering_attrs_to_nodes(ours)
    oracle_param_fetch.lift_lowering_attrs_to_nodes(theirs)
    for node, reference in zip(ours.graph.nodes, theirs.graph.nodes, strict=True):
        assert hasattr(node, "attrs_for_lowering") == hasattr(reference, "attrs_for_lowering")
        if hasattr(reference, "attrs_for_lowering"):
            assert node.attrs_for_lowering.keys() == reference.attrs_for_lowering.keys()
            assert node.attrs_for_lowering["name"] == reference.attrs_for_lowering["name"]
