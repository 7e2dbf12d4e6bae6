"""split_module against torch.fx's split_module: same partitions, names, code and outputs."""

from __future__ import annotations

import pytest
import torch
import torch.fx
from torch.fx.passes.split_module import split_module as oracle_split_module

import fxkit as fx
from fxkit import zoo
from fxkit.passes.split_module import split_module


class Branchy(torch.nn.Module):
    """Partitions that are not created in dependency order, a nested submodule target, a
    parameter read by a partition, a buffer, a placeholder default and a dead value."""

    def __init__(self) -> None:
        super().__init__()
        self.param = torch.nn.Parameter(torch.rand(3, 4))
        self.linear = torch.nn.Linear(4, 5)
        self.seq = torch.nn.Sequential(torch.nn.Linear(5, 5), torch.nn.ReLU())
        self.register_buffer("shift", torch.ones(5))

    def forward(self, x, y, scale=2.0):
        z = self.linear(x + self.param).clamp(min=0.0, max=1.0)
        w = self.seq(z)
        dead = z.mean()
        return w + y * scale + self.shift, z.sum(), x


BRANCHY_PARTITIONS = {
    "add": 0,
    "linear": 1,
    "clamp": 1,
    "seq_0": 2,
    "seq_1": 2,
    "mul": 4,
    "add_1": 4,
    "add_2": 4,
    "mean": 5,
    "sum_1": 3,
}


def _by_position(step: int):
    def callback(node) -> int:
        return list(node.graph.nodes).index(node) // step

    return callback


CASES = {
    "branchy": (
        Branchy,
        lambda: (torch.randn(3, 4), torch.randn(3, 5)),
        lambda n: BRANCHY_PARTITIONS[n.name],
    ),
    "mlp_by_3": (lambda: zoo.get_model("mlp"), lambda: zoo.example_inputs("mlp"), _by_position(3)),
    "resnet_by_7": (lambda: zoo.get_model("resnet"), lambda: zoo.example_inputs("resnet"), _by_position(7)),
    "transformer_by_11": (
        lambda: zoo.get_model("transformer"),
        lambda: zoo.example_inputs("transformer"),
        _by_position(11),
    ),
}


def _describe(split) -> dict:
    return {
        "code": split.code,
        "children": {name: child.code for name, child in split.named_children() if hasattr(child, "code")},
        "parameters": [name for name, _ in split.named_parameters()],
        "buffers": [name for name, _ in split.named_buffers()],
    }


@pytest.mark.parametrize("keep_original_order", [False, True])
@pytest.mark.parametrize("case", sorted(CASES))
def test_same_split_as_torch_fx(case: str, keep_original_order: bool) -> None:
    build, make_inputs, callback = CASES[case]
    model = build().eval()
    ours, theirs = fx.symbolic_trace(model), torch.fx.symbolic_trace(model)
    our_map: dict = {}
    their_map: dict = {}
    split = split_module(ours, model, callback, our_map, keep_original_order=keep_original_order)
    oracle = oracle_split_module(theirs, model, callback, their_map, keep_original_order=keep_original_order)
    assert _describe(split) == _describe(oracle)
    assert our_map == their_map
    inputs = make_inputs()
    with torch.no_grad():
        torch.testing.assert_close(split(*inputs), model(*inputs))


@pytest.mark.parametrize(
    "options",
    [
        {"keep_original_node_name": True},
        {"keep_original_input_name": False},
        {"tuple_return": True},
    ],
)
def test_options_match_torch_fx(options: dict) -> None:
    model = Branchy()
    callback = CASES["branchy"][2]
    split = split_module(fx.symbolic_trace(model), model, callback, **options)
    oracle = oracle_split_module(torch.fx.symbolic_trace(model), model, callback, **options)
    assert _describe(split) == _describe(oracle)
    inputs = CASES["branchy"][1]()
    torch.testing.assert_close(split(*inputs), model(*inputs))


def test_partition_needed_before_its_creation_order() -> None:
    def fn(x):
        a1 = x * 2
        b1 = torch.relu(x)
        return torch.clamp(a1, min=b1) + 1

    traced = fx.symbolic_trace(fn)
    parts = {"mul": 0, "relu": 1, "clamp": 0, "add": 0}
    split = split_module(traced, traced, lambda n: parts[n.name], keep_original_order=True)
    calls = [node.target for node in split.graph.nodes if node.op == "call_module"]
    assert calls == ["submod_1", "submod_0"]
    x = torch.randn(5)
    torch.testing.assert_close(split(x), fn(x))


def test_cycle_between_partitions_is_reported() -> None:
    traced = fx.symbolic_trace(lambda x: (x * 2 + 1) * 3)
    parts = {"mul": 0, "add": 1, "mul_1": 0}
    with pytest.raises(RuntimeError, match="cycle exists between partitions"):
        split_module(traced, traced, lambda n: parts[n.name])


@pytest.mark.parametrize("bad", [1.5, None, True, "not valid"])
def test_callback_returning_non_int_says_why(bad) -> None:
    traced = fx.symbolic_trace(lambda x: x + 1)
    with pytest.raises((TypeError, ValueError)) as info:
        split_module(traced, traced, lambda n: bad)
    assert "split_callback returned" in str(info.value) and "add" in str(info.value)


def test_identifier_strings_are_accepted_like_torch_fx() -> None:
    traced = fx.symbolic_trace(lambda x: x + 1)
    split = split_module(traced, traced, lambda n: "first")
    assert [name for name, _ in split.named_children()] == ["submod_first"]


def test_partition_affix_names_submodules_like_torch_fx() -> None:
    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.lin(x)) * 2

    model = Model()

    def callback(node: object) -> int:
        return 0 if getattr(node, "name", "") == "lin" else 1

    for options in ({"partition_affix": "pre"}, {"partition_affix": "x_", "keep_original_order": True}):
        ours_map: dict = {}
        theirs_map: dict = {}
        ours = split_module(fx.symbolic_trace(model), model, callback, ours_map, **options)
        theirs = oracle_split_module(torch.fx.symbolic_trace(model), model, callback, theirs_map, **options)
        assert [name for name, _ in ours.named_children()] == [name for name, _ in theirs.named_children()]
        assert ours.code == theirs.code and ours_map == theirs_map
        x = torch.randn(2, 3)
        assert torch.equal(ours(x), theirs(x))


# -- split_module_simple ----------------------------------------------------------------------


def _simple_program(x, y):
    a = torch.relu(x)
    b = a + y
    c = torch.sin(b)
    d = torch.cos(a)
    return {"c": c, "pair": (d, b), "e": torch.tanh(d)}


def _split_simple(library, assignment, **options):
    from torch.fx.passes.split_module import split_module_simple as oracle_simple

    from fxkit.passes.split_module import split_module_simple

    traced = library.symbolic_trace(_simple_program)
    for node in traced.graph.nodes:
        node.meta["origin"] = node.name
    operations = [node for node in traced.graph.nodes if node.op not in ("placeholder", "output")]
    mapping = dict(zip(operations, assignment))
    splitter = split_module_simple if library is fx else oracle_simple
    return traced, splitter(traced, mapping, **options)


@pytest.mark.parametrize(
    "assignment, affix",
    [((5, 5, 2, 2, 2), None), ((0, 0, 0, 0, 0), None), ((0, 1, 1, 2, 2), "aff"), ((3, 3, 3, 3, 7), None)],
)
def test_split_module_simple_matches_torch_fx(assignment, affix) -> None:
    x, y = torch.randn(3), torch.randn(3)
    described = []
    for library in (fx, torch.fx):
        traced, split = _split_simple(library, assignment, partition_affix=affix)
        children = list(split.named_children())
        described.append(
            (
                split.code,
                [
                    (name, child.code, [(n.name, n.meta.get("origin")) for n in child.graph.nodes])
                    for name, child in children
                ],
                [(node.name, node.meta.get("origin")) for node in split.graph.nodes],
            )
        )
        result, expected = split(x, y), traced(x, y)
        assert torch.equal(result["e"], expected["e"]) and torch.equal(result["pair"][1], expected["pair"][1])
    assert described[0] == described[1]


def test_split_module_simple_refuses_what_it_cannot_split() -> None:
    with pytest.raises(ValueError, match="submod_0 reads 'add'.*use split_module"):
        _split_simple(fx, (0, 1, 0, 1, 1))
    with pytest.raises(KeyError):  # torch.fx raises KeyError there as well
        _split_simple(torch.fx, (0, 1, 0, 1, 1))

    class WithWeight(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(3))

        def forward(self, x):
            return torch.relu(x) + self.w

    from fxkit.passes.split_module import split_module_simple

    traced = fx.symbolic_trace(WithWeight())
    with pytest.raises(ValueError, match="node 'w' is a get_attr"):
        split_module_simple(traced, {node: 0 for node in traced.graph.nodes})
    traced = fx.symbolic_trace(lambda x, y: torch.relu(x) + y)
    with pytest.raises(KeyError, match="node 'relu' has no partition"):
        split_module_simple(traced, {})


def test_split_module_simple_carries_modules_and_defaults() -> None:
    # Beyond torch.fx (whose partitions lose both): call_module targets and placeholder defaults.
    from fxkit.passes.split_module import split_module_simple

    class Scaled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU())

        def forward(self, x, scale=2.0):
            return self.body(x) * scale

    traced = fx.symbolic_trace(Scaled())
    operations = [node for node in traced.graph.nodes if node.op not in ("placeholder", "output")]
    split = split_module_simple(traced, {node: min(index, 1) for index, node in enumerate(operations)})
    x = torch.randn(2, 3)
    torch.testing.assert_close(split(x), traced(x))
    assert "scale = 2.0" in split.code


class _Identity(torch.nn.Module):
    def forward(self, x):
        return x


def _graph_reading_a_submodule(fx_module):
    """x * y in one partition, then two reads of the submodule ``sub.branch`` in another (as torch.cond
    graphs read their branches); the get_attr sits between the placeholders."""
    graph = fx_module.Graph()
    x = graph.placeholder("x")
    branch = graph.get_attr("sub.branch")
    y = graph.placeholder("y")
    product = graph.call_function(torch.mul, (x, y))
    scaled = graph.call_function(torch.mul, (product, branch))
    graph.output(graph.call_function(torch.add, (scaled, branch)))
    root = torch.nn.Module()
    root.sub = torch.nn.Module()
    root.sub.branch = _Identity()
    return fx_module.GraphModule(root, graph)


def _structure(split) -> dict:
    return {
        "parent": [(n.op, n.name, n.target) for n in split.graph.nodes],
        "children": {
            name: (
                [(n.op, n.name, n.target) for n in child.graph.nodes],
                [k for k, _ in child.named_modules()],
            )
            for name, child in split.named_children()
            if hasattr(child, "graph")
        },
    }


@pytest.mark.parametrize("keep_original_order", [False, True])
def test_submodule_get_attr_is_repeated_in_its_partition_as_torch_fx_does(keep_original_order: bool) -> None:
    def callback(node):
        return 0 if node.name == "mul" else 1

    kwargs = {"root_m": None, "split_callback": callback, "keep_original_order": keep_original_order}
    ours = split_module(_graph_reading_a_submodule(fx), **kwargs)
    oracle = oracle_split_module(_graph_reading_a_submodule(torch.fx), **kwargs)
    assert _structure(ours) == _structure(oracle)
