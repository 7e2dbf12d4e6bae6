"""source_matcher_utils against torch.fx's on graphs whose nodes carry source_fn_stack."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.fx
from torch.fx.passes.utils import source_matcher_utils as oracle

import fxkit as fx
from fxkit.passes.utils import source_matcher_utils


def _graph(tracing, with_list_input=False):
    graph = tracing.Graph()
    x, y, w = graph.placeholder("x"), graph.placeholder("y"), graph.get_attr("w")
    a = graph.call_function(operator.mul, (y, w))
    b = graph.call_function(operator.add, (x, a))
    c = graph.call_function(operator.sub, (b, x))
    d = graph.call_function(torch.relu, (c,))
    e = graph.call_function(torch.relu, (d,))
    f = graph.call_function(torch.cat, ([e, d, b],))
    graph.output((f, b))
    stacks = {
        "mul": [("outer", "O"), ("m", "M")],
        "add": [("outer", "O"), ("m", "M")],
        "sub": [("m", "M")],
        "w": [("m", "M")],
        "relu": [("r", torch.relu)],
        "relu_1": [("r_1", torch.relu)],
        "cat": [("m_1", "M")] if with_list_input else [("c", "C")],
    }
    for node in graph.nodes:
        if node.name in stacks:
            node.meta["source_fn_stack"] = stacks[node.name]
    return graph


def _summary(found):
    return {
        source: [
            (
                [n.name for n in p.nodes],
                p.source,
                sorted(n.name for n in p.input_nodes),
                sorted(n.name for n in p.output_nodes),
                [n.name for n in p.params],
            )
            for p in partitions
        ]
        for source, partitions in found.items()
    }


@pytest.mark.parametrize(
    "filter_fn",
    [None, lambda node: node.name != "add", lambda node: node.name != "relu_1"],
    ids=["all", "add", "relu"],
)
@pytest.mark.parametrize("wanted", [["M", "O", torch.relu], ["M"], ["Z"]], ids=repr)
def test_get_source_partitions_matches(wanted, filter_fn):
    got = source_matcher_utils.get_source_partitions(_graph(fx), wanted, filter_fn)
    expected = oracle.get_source_partitions(_graph(torch.fx), wanted, filter_fn)
    assert _summary(got) == _summary(expected)


def test_inputs_inside_lists_are_listed():
    # torch.fx reads only top-level arguments, so a torch.cat([...]) partition has no inputs there.
    [cat] = source_matcher_utils.get_source_partitions(_graph(fx, with_list_input=True), ["M"])["M"][1:]
    assert [node.name for node in cat.input_nodes] == ["relu_1", "relu", "add"]


def test_check_subgraphs_connected_matches():
    ours = source_matcher_utils.get_source_partitions(_graph(fx), ["M", torch.relu])
    theirs = oracle.get_source_partitions(_graph(torch.fx), ["M", torch.relu])
    our_parts = ours["M"] + ours[torch.relu]
    their_parts = theirs["M"] + theirs[torch.relu]
    for first in range(len(our_parts)):
        for second in range(len(our_parts)):
            assert source_matcher_utils.check_subgraphs_connected(
                our_parts[first], our_parts[second]
            ) == oracle.check_subgraphs_connected(their_parts[first], their_parts[second])
    assert list(source_matcher_utils.SourcePartition.__dataclass_fields__) == list(
        oracle.SourcePartition.__dataclass_fields__
    )


def test_a_torch_fx_graph_is_read_in_place() -> None:
    """A graph made by torch.fx (torch.export, Dynamo) is partitioned as torch.fx does, with its own nodes."""
    graph = _graph(torch.fx)
    wanted = ["M", torch.relu]
    ours = source_matcher_utils.get_source_partitions(graph, wanted)
    assert _summary(ours) == _summary(oracle.get_source_partitions(graph, wanted))
    nodes = set(graph.nodes)
    assert all(n in nodes for partitions in ours.values() for p in partitions for n in p.nodes)
    first, second = ours["M"][0], ours[torch.relu][0]
    assert source_matcher_utils.check_subgraphs_connected(first, second) == oracle.check_subgraphs_connected(
        oracle.get_source_partitions(graph, wanted)["M"][0],
        oracle.get_source_partitions(graph, wanted)[torch.relu][0],
    )
