"""FxGraphDrawer: DOT text that describes exactly the graph (torch.fx's drawer needs pydot, which
is not installed, so the checks are structural)."""

from __future__ import annotations

import re
import shutil

import pytest
import torch

import fxkit as fx
from fxkit import zoo
from fxkit.passes.graph_drawer import DotGraph, FxGraphDrawer
from fxkit.passes.shape_prop import ShapeProp
from fxkit.passes.split_module import split_module

_NODE = re.compile(r'^  "([^"]+)" \[label="(.*)", fillcolor=\w+\];$')
_EDGE = re.compile(r'^  "([^"]+)" -> "([^"]+)";$')


def _parse(dot: str):
    lines = dot.splitlines()
    assert lines[0].startswith("digraph ") and lines[0].endswith("{") and lines[-1] == "}"
    nodes, edges = {}, []
    for line in lines[3:-1]:
        node_match, edge_match = _NODE.match(line), _EDGE.match(line)
        assert node_match or edge_match, line
        if node_match:
            nodes[node_match.group(1)] = node_match.group(2)
        else:
            edges.append(edge_match.groups())
    for source, destination in edges:
        assert source in nodes and destination in nodes
    return nodes, edges


def test_every_node_and_use_is_drawn() -> None:
    traced = fx.symbolic_trace(zoo.get_model("resnet"))
    ShapeProp(traced).propagate(*zoo.example_inputs("resnet"))
    dot = FxGraphDrawer(traced, "resnet").get_dot_graph()
    assert isinstance(dot, DotGraph) and dot.to_string() == str(dot)
    nodes, edges = _parse(dot)
    graph_nodes = list(traced.graph.nodes)
    for node in graph_nodes:
        assert f"name=%{node.name}" in nodes[node.name] and f"op_code={node.op}" in nodes[node.name]
    expected_edges = {(node.name, user.name) for node in graph_nodes for user in node.users}
    parameter_edges = {edge for edge in edges if "." in edge[0]}
    assert set(edges) - parameter_edges == expected_edges
    parameter_count = sum(1 for _ in traced.parameters()) + sum(1 for _ in traced.buffers())
    assert len(parameter_edges) == parameter_count
    conv1 = next(node for node in graph_nodes if node.name == "conv1")
    assert f"shape={tuple(conv1.meta['tensor_meta'].shape)}" in nodes["conv1"]


def test_options_hide_getattr_and_parameters() -> None:
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)
            self.scale = torch.nn.Parameter(torch.ones(2))

        def forward(self, x):
            return self.lin(x) * self.scale

    traced = fx.symbolic_trace(M())
    nodes, _ = _parse(
        FxGraphDrawer(traced, "m", ignore_getattr=True, ignore_parameters_and_buffers=True).get_dot_graph()
    )
    assert set(nodes) == {node.name for node in traced.graph.nodes if node.op != "get_attr"}
    nodes, _ = _parse(FxGraphDrawer(traced, "m", skip_node_names_in_args=False).get_dot_graph())
    assert "args=(%x,)" in nodes["lin"] and "lin.weight" in nodes


def test_labels_escape_record_characters() -> None:
    traced = fx.symbolic_trace(lambda x: x.view(-1).new_full((2,), 0.0) + x.sum(dim={0: 1}.get(0)))
    nodes, _ = _parse(FxGraphDrawer(traced, 'quote"name').get_dot_graph())
    for label in nodes.values():
        inner = label[1:-1]
        assert not re.search(r'(?<!\\)[{}<>"]', inner)


def test_split_module_children_get_their_own_graphs() -> None:
    traced = fx.symbolic_trace(zoo.get_model("mlp"))
    split = split_module(traced, traced, lambda node: 0 if node.name.startswith("layers_0") else 1)
    drawer = FxGraphDrawer(split, "split")
    assert sorted(drawer.get_all_dot_graphs()) == ["split", "split_submod_0", "split_submod_1"]
    nodes, _ = _parse(drawer.get_dot_graph("submod_1"))
    assert {name for name in nodes if "." not in name} == {node.name for node in split.submod_1.graph.nodes}
    with pytest.raises(KeyError, match="submod_9"):
        drawer.get_dot_graph("submod_9")


def test_write_raw_and_rendering(tmp_path) -> None:
    dot = FxGraphDrawer(fx.symbolic_trace(lambda x: x + 1), "tiny").get_dot_graph()
    path = tmp_path / "tiny.dot"
    dot.write_raw(str(path))
    assert path.read_text() == str(dot)
    if shutil.which("dot") is None:
        with pytest.raises(RuntimeError, match="Graphviz"):
            dot.create_svg()
    else:
        assert dot.create_svg().lstrip().startswith(b"<")
