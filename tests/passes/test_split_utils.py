"""split_by_tags against torch.fx's: same components, code, node names, meta, fqn map and outputs."""

from __future__ import annotations

import pytest
import torch
import torch.fx
from torch.fx.passes import split_utils as oracle

import fxkit as fx
from fxkit.passes import split_utils


class Tagged(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(torch.rand(4))
        self.seq = torch.nn.Sequential(torch.nn.Linear(4, 4))
        self.sub = torch.nn.Module()
        self.sub.q = torch.nn.Parameter(torch.rand(4))
        self.register_buffer("shift", torch.ones(4))

    def forward(self, x, y, unused):
        a = self.seq(x + self.p)
        b = torch.relu(a) * self.p + self.sub.q
        c = b - y + self.shift
        return {"c": c.sum(), "a": a, "x": x}


def _traced(tracing, tag_of, model=None):
    gm = tracing.symbolic_trace(model if model is not None else Tagged())
    for node in gm.graph.nodes:
        if node.op not in ("placeholder", "output"):
            node.tag = tag_of(node.name)
        node.meta["origin"] = node.name
    return gm


def _summary(module):
    rows = [(n.name, n.op, str(n.target), dict(n.meta), getattr(n, "tag", None)) for n in module.graph.nodes]
    children = {
        name: (
            child.code,
            [(n.name, n.op, str(n.target), dict(n.meta), getattr(n, "tag", None)) for n in child.graph.nodes],
        )
        for name, child in module.named_children()
    }
    return module.code, rows, children, sorted(module.state_dict())


SPLITS = {
    "three_tags": (
        ["red", "blue", "green"],
        {"add": "red", "seq_0": "red", "relu": "blue", "mul": "blue"},
        "green",
    ),
    "empty_middle": (["t0", "t1", "t2"], {"add": "t0", "seq_0": "t0"}, "t2"),
    "one_tag": (["only"], {}, "only"),
}


@pytest.mark.parametrize("return_tuple", [False, True])
@pytest.mark.parametrize("case", sorted(SPLITS))
def test_split_by_tags_matches_torch_fx(case, return_tuple):
    tags, explicit, default = SPLITS[case]

    def tag_of(name):
        return explicit.get(name, default)

    model = Tagged()
    expected, expected_map = oracle.split_by_tags(
        _traced(torch.fx, tag_of, model), tags, return_fqn_mapping=True, return_tuple=return_tuple
    )
    got, got_map = split_utils.split_by_tags(
        _traced(fx, tag_of, model), tags, return_fqn_mapping=True, return_tuple=return_tuple
    )
    assert isinstance(got, fx.GraphModule)
    assert _summary(got) == _summary(expected)
    assert got_map == expected_map
    x, y = torch.randn(2, 4), torch.randn(2, 4)
    got_out, expected_out = got(x, y, None), expected(x, y, None)
    assert got_out.keys() == expected_out.keys()
    for key in expected_out:
        torch.testing.assert_close(got_out[key], expected_out[key])


def test_default_returns_module_only_and_keeps_original():
    gm = _traced(fx, lambda name: "a")
    before = gm.code
    split = split_utils.split_by_tags(gm, ["a"])
    assert isinstance(split, fx.GraphModule)
    assert gm.code == before


def test_tag_reading_a_later_tag_raises_like_torch_fx():
    def tag_of(name):
        return "t1" if name == "add" else "t0"

    with pytest.raises(
        AssertionError, match="Component t0 order must be >= max of its upstream components"
    ) as ours:
        split_utils.split_by_tags(_traced(fx, tag_of), ["t0", "t1"])
    with pytest.raises(AssertionError, match="Component t0 order must be >= max of its upstream components"):
        oracle.split_by_tags(_traced(torch.fx, tag_of), ["t0", "t1"])
    assert "seq_0" in str(ours.value)


def test_unknown_tag_and_missing_tag():
    with pytest.raises(KeyError):
        oracle.split_by_tags(_traced(torch.fx, lambda name: "zz"), ["t0"])
    with pytest.raises(KeyError, match="zz"):
        split_utils.split_by_tags(_traced(fx, lambda name: "zz"), ["t0"])
    gm = fx.symbolic_trace(Tagged())
    with pytest.raises(AttributeError, match="has no 'tag'"):
        split_utils.split_by_tags(gm, ["t0"])


def test_getattr_and_setattr_recursive_match_torch_fx():
    for module in (oracle, split_utils):
        model = Tagged()
        assert module.getattr_recursive(model, "seq.0.weight") is model.seq[0].weight
        assert module.getattr_recursive(model, "seq.nope") is None
        assert module.getattr_recursive(model, "nope.deeper") is None
        module.setattr_recursive(model, "sub.extra", 5)
        assert model.sub.extra == 5
        with pytest.raises(AttributeError):
            module.setattr_recursive(torch.nn.Module(), "a.b", 1)


def test_component_fields_match_torch_fx():
    expected = oracle.Component(torch.fx.Graph(), 0, "x")
    got = split_utils.Component(fx.Graph(), 0, "x")
    assert list(expected.__dataclass_fields__) == list(got.__dataclass_fields__)
    assert (got.order, got.name, got.input_placeholders, got.gm) == (0, "x", [], None)


class _Sizes(torch.nn.Module):
    def forward(self, a):
        b = torch.relu(a)
        t = b.size(0) * 2
        d = torch.sin(b).view(t, -1)
        e = torch.cos(d)
        return e.sum(e.dim() - 1)


_BOUNDARY_CASES = [
    [
        (True, ["relu", "size", "mul"]),
        (False, ["sin", "view"]),
        (True, ["cos", "dim", "sub"]),
        (False, ["sum_1"]),
    ],
    [
        (True, ["relu", "size"]),
        (False, ["mul", "sin", "view"]),
        (True, ["cos", "dim"]),
        (False, ["sub", "sum_1"]),
    ],
    [(True, ["relu"]), (False, ["size", "mul", "sin"]), (True, ["view", "cos", "dim", "sub", "sum_1"])],
    [(False, ["relu", "size", "mul"]), (True, ["sin", "view", "cos", "dim", "sub"]), (False, ["sum_1"])],
]


@pytest.mark.parametrize("groups", _BOUNDARY_CASES)
def test_move_non_tensor_nodes_on_boundary_matches_torch_fx(groups, capsys) -> None:
    import torch.fx.passes.shape_prop as oracle_shape_prop
    import torch.fx.passes.splitter_base as oracle_splitter

    from fxkit.passes import shape_prop, splitter_base

    def moved(tracing, shape_prop_module, splitter_module, split_utils_module):
        gm = tracing.symbolic_trace(_Sizes())
        shape_prop_module.ShapeProp(gm).propagate(torch.randn(2, 4))
        nodes = {node.name: node for node in gm.graph.nodes}
        subgraphs = [
            splitter_module.Subgraph(is_acc=acc, nodes=[nodes[n] for n in names]) for acc, names in groups
        ]
        split_utils_module.move_non_tensor_nodes_on_boundary(subgraphs)
        return [(s.is_acc, [n.name for n in s.nodes]) for s in subgraphs], capsys.readouterr().out

    ours = moved(fx, shape_prop, splitter_base, split_utils)
    assert ours == moved(torch.fx, oracle_shape_prop, oracle_splitter, oracle)


class ConvScaleRelu(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return torch.relu(self.conv(x) * 0.5)


def test_a_torch_export_module_is_split_through_its_twin_with_its_tags():
    model = ConvScaleRelu()
    x = torch.randn(1, 3, 8, 8)

    def exported_and_tagged():
        gm = torch.export.export(model, (x,), strict=True).module()
        for node in gm.graph.nodes:
            node.tag = "red" if "conv" in node.name else "blue" if "mul" in node.name else "green"
        return gm

    tags = ["red", "blue", "green"]
    expected, expected_map = oracle.split_by_tags(exported_and_tagged(), tags, return_fqn_mapping=True)
    theirs = exported_and_tagged()
    before = theirs.code
    got, got_map = split_utils.split_by_tags(theirs, tags, return_fqn_mapping=True)
    assert theirs.code == before  # the torch.fx module is only read
    assert isinstance(got, fx.GraphModule)
    assert got.code == expected.code
    assert {name: child.code for name, child in got.named_children()} == {
        name: child.code for name, child in expected.named_children()
    }
    assert got_map == expected_map
    torch.testing.assert_close(got(x), expected(x))
