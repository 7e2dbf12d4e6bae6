"""split_const_subgraphs against torch.fx's const_fold on the same models, and eager numerics."""

from __future__ import annotations

import copy
import operator
import warnings
from collections import Counter
from typing import Any, Callable, Dict, List

import pytest
import torch
import torch.fx
from torch.fx.experimental import const_fold as oracle_const_fold

import fxkit as fx
from fxkit.experimental.const_fold import FoldedGraphModule, split_const_subgraphs


class TwoFolds(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(4, 4))
        self.register_buffer("b", torch.randn(4))
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):
        w2 = self.w.t() * 2 + 1
        c = self.b.relu() + self.lin.weight.sum()
        return x @ w2 + c, self.b + x.sum()


class OneFold(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(4, 4))

    def forward(self, x):
        return x @ (self.w * 2)


class RandomIsNotFolded(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(4, 4))

    def forward(self, x):
        noise = torch.rand_like(self.w)
        return x @ (self.w.exp() + noise * 0)


def _call_targets(graph) -> Counter:
    return Counter(str(node.target) for node in graph.nodes if node.op.startswith("call_"))


def _folded_values(module):
    folded = getattr(module, module.fx_const_folded_attrs_name)
    return list(folded) if isinstance(folded, torch.nn.ParameterList) else [folded]


CASES = {"two_folds": TwoFolds, "one_fold": OneFold, "random": RandomIsNotFolded}


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_folding_as_torch_fx(case: str) -> None:
    model = CASES[case]()
    ours = split_const_subgraphs(fx.symbolic_trace(model))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = oracle_const_fold.split_const_subgraphs(torch.fx.symbolic_trace(model))
    assert isinstance(ours, FoldedGraphModule)
    assert _call_targets(ours.graph) == _call_targets(theirs.graph)
    assert _call_targets(ours.const_subgraph_module.graph) == _call_targets(
        theirs.const_subgraph_module.graph
    )
    assert not ours.has_folding_been_run
    x = torch.randn(3, 4)
    with torch.no_grad():
        ours_out, theirs_out, eager = ours(x), theirs(x), model(x)
    assert ours.has_folding_been_run
    if case != "random":
        torch.testing.assert_close(ours_out, eager)
        torch.testing.assert_close(ours_out, theirs_out)
    ours_folded, theirs_folded = _folded_values(ours), _folded_values(theirs)
    assert type(getattr(ours, ours.fx_const_folded_attrs_name)) is type(
        getattr(theirs, theirs.fx_const_folded_attrs_name)
    )
    assert len(ours_folded) == len(theirs_folded)
    for mine, oracle in zip(ours_folded, theirs_folded):
        torch.testing.assert_close(mine, oracle)
        assert mine.requires_grad == oracle.requires_grad


def test_skip_folding_node_fn_and_plain_module() -> None:
    model = TwoFolds()
    skip = lambda node: node.op == "call_method" and node.target == "t"  # noqa: E731
    ours = split_const_subgraphs(model, skip_folding_node_fn=skip)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = oracle_const_fold.split_const_subgraphs(model, skip_folding_node_fn=skip)
    assert _call_targets(ours.graph) == _call_targets(theirs.graph)
    assert any(str(node.target) == "t" for node in ours.graph.nodes)
    x = torch.randn(2, 4)
    torch.testing.assert_close(ours(x), model(x))
    theirs(x)
    assert len(_folded_values(ours)) == len(_folded_values(theirs))


def test_nothing_to_fold_keeps_the_code() -> None:
    traced = fx.symbolic_trace(lambda x: x + 1)
    folded = split_const_subgraphs(traced)
    assert folded.const_subgraph_module is None
    assert folded.code == traced.code
    torch.testing.assert_close(folded(torch.ones(2)), torch.full((2,), 2.0))


def test_run_folding_twice_is_refused_as_torch_fx_does() -> None:
    ours = split_const_subgraphs(OneFold())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = oracle_const_fold.split_const_subgraphs(OneFold())
    for module in (ours, theirs):
        module.run_folding()
    with pytest.raises(AssertionError) as oracle_error:
        theirs.run_folding()
    with pytest.raises(AssertionError, match=str(oracle_error.value)):  # also a RuntimeError
        ours.run_folding()
    with pytest.raises(RuntimeError):
        ours.run_folding()


def test_get_unique_attr_name_in_module_matches_torch_fx() -> None:
    from fxkit.experimental.const_fold import get_unique_attr_name_in_module

    ours, oracle = fx.symbolic_trace(torch.nn.Linear(1, 1)), torch.fx.symbolic_trace(torch.nn.Linear(1, 1))
    for module in (ours, oracle):
        for taken in ("a", "a_1", "a_2", "b_1", "c_5", "d_01", "e", "f_1", "f_2"):
            setattr(module, taken, 1)
    names = [
        "a",
        "a_1",
        "b",
        "b_1",
        "c_5",
        "d_01",
        "e_0",
        "f_1",
        "weight",
        "bias_0",
        "sub.weight",
        "x-y",
        "9",
        "é",
        "a__1",
    ]
    for name in names:
        assert get_unique_attr_name_in_module(ours, name) == oracle_const_fold.get_unique_attr_name_in_module(
            oracle, name
        ), name


class ClashingAttr(torch.nn.Module):
    """The model already has an attribute named like the folded values' attribute."""

    def __init__(self) -> None:
        super().__init__()
        self._FX_CONST_FOLDED_ATTRS = torch.nn.Parameter(torch.ones(2))
        self.w = torch.nn.Parameter(torch.ones(2))

    def forward(self, x):
        return x + self._FX_CONST_FOLDED_ATTRS + self.w * 2


def test_folded_attr_name_does_not_clash_with_the_model() -> None:
    model, x = ClashingAttr(), torch.randn(2)
    ours = split_const_subgraphs(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.fx warns about its own get_attr here
        oracle = oracle_const_fold.split_const_subgraphs(model)
    assert ours.fx_const_folded_attrs_name == oracle.fx_const_folded_attrs_name == "_FX_CONST_FOLDED_ATTRS_1"
    assert ours.code == oracle.code
    torch.testing.assert_close(ours(x), model(x))


# -- differential cases: the same graph built with both libraries ------------------------------


class _NoArgs(torch.nn.Module):
    def forward(self):
        return torch.full((4,), 2.0)


def _root() -> torch.nn.Module:
    root = torch.nn.Module()
    root.w = torch.nn.Parameter(torch.randn(4))
    root.lin = torch.nn.Linear(4, 4)
    root.sub = torch.nn.Module()
    root.sub.lin = torch.nn.Linear(4, 4)
    root.no_args = _NoArgs()
    return root


def _pure_no_inputs(g, x):
    # torch.ones reads nothing; the call_module nodes after it are constant too.
    ones = g.call_function(torch.ones, (4,))
    made = g.call_module("no_args")
    both = g.call_function(operator.add, (g.call_module("lin", (ones,)), g.call_module("sub.lin", (made,))))
    return g.call_function(operator.add, (x, both))


def _impure(g, x):
    w = g.get_attr("w")
    noise = g.call_function(torch.randn_like, (w,))
    fresh = g.call_function(torch.randn, (4,))
    clone = g.call_method("clone", (w,))
    g.call_function(operator.setitem, (clone, 0, 5.0))  # a side effect on a constant value
    scaled = g.call_function(operator.mul, (w, 2))
    out = g.call_function(operator.add, (x, noise))
    out = g.call_function(operator.add, (out, fresh))
    return g.call_function(operator.add, (g.call_function(operator.add, (out, scaled)), clone))


def _in_place_method(g, x):
    # An in-place method on a constant value is folded together with that value, as torch.fx does.
    clone = g.call_method("clone", (g.get_attr("w"),))
    g.call_method("add_", (clone, 1))
    return g.call_function(operator.add, (x, clone))


def _partial(g, x):
    w, foo = g.get_attr("w"), g.get_attr("w")
    foo.name = "foo"
    at_first = g.call_module("sub.lin", (foo,))
    item = g.call_function(operator.getitem, (x, 0))
    mixed = g.call_module("sub.lin", (g.call_function(operator.add, (item, at_first)),))
    unused = g.call_method("relu", (w,))  # a dead constant stays in the constant graph
    g.call_method("exp", (g.call_method("relu", (x,)),))  # dead non-constant code is dropped
    del unused
    total = g.call_method("sum", (w,))
    positive = g.call_function(operator.gt, (total, -100.0))
    g.call_function(torch._assert, (positive, "sum too small"))
    return g.call_function(operator.add, (g.call_function(operator.add, (mixed, total)), w))


def _unread_constant(g, x):
    w = g.get_attr("w")
    g.call_method("exp", (w,))  # constant, read by nothing: the constant graph returns ()
    return g.call_function(operator.add, (x, w))


def _all_constant(g, x):
    return g.call_method("relu", (g.call_module("lin", (g.get_attr("w"),)),))


def _numbers(g, x):
    size = g.call_method("size", (g.get_attr("w"), 0))
    return g.call_function(operator.add, (g.call_function(operator.add, (x, size)), size))


BUILDERS: Dict[str, Callable[[Any, Any], Any]] = {
    "pure_no_inputs": _pure_no_inputs,
    "impure": _impure,
    "in_place_method": _in_place_method,
    "partial": _partial,
    "unread_constant": _unread_constant,
    "all_constant": _all_constant,
    "numbers": _numbers,
}


def _build(library, case: str):
    torch.manual_seed(1)  # the same weights for both libraries
    root, graph = _root(), library.Graph()
    graph.output(BUILDERS[case](graph, graph.placeholder("x")))
    return library.GraphModule(root, graph)


def _fold_both(case: str, **options: Any):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = oracle_const_fold.split_const_subgraphs(_build(torch.fx, case), **options)
    return split_const_subgraphs(_build(fx, case), **options), theirs


def _stored(module) -> List[Any]:
    if module.fx_const_folded_attrs_name is None or not hasattr(module, module.fx_const_folded_attrs_name):
        return []
    value = getattr(module, module.fx_const_folded_attrs_name)
    values = list(value) if isinstance(value, torch.nn.ParameterList) else [value]
    return [type(value).__name__] + [
        (p.dtype, p.device, p.requires_grad, p.detach().tolist()) for p in values
    ]


def _assert_same_fold(ours, theirs) -> None:
    assert ours.code == theirs.code
    assert (ours.const_subgraph_module is None) == (theirs.const_subgraph_module is None)
    if ours.const_subgraph_module is not None:
        assert ours.const_subgraph_module.code == theirs.const_subgraph_module.code
    assert ours.fx_const_folded_attrs_name == theirs.fx_const_folded_attrs_name
    assert dict(ours.named_modules()).keys() == dict(theirs.named_modules()).keys()
    assert [name for name, _ in ours.named_parameters()] == [name for name, _ in theirs.named_parameters()]
    assert _stored(ours) == _stored(theirs)  # the stand-ins before folding


@pytest.mark.parametrize("case", sorted(BUILDERS))
def test_folds_as_torch_fx_does(case: str) -> None:
    ours, theirs = _fold_both(case)
    _assert_same_fold(ours, theirs)
    x = torch.randn(4)
    outcomes = []
    for module in (ours, theirs):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(2)  # impure nodes draw the same numbers in both
            try:
                outcomes.append(("value", module(x).tolist()))
            except RuntimeError as error:  # the impure case writes into a folded Parameter in both
                outcomes.append(("error", str(error).splitlines()[0]))
    assert outcomes[0] == outcomes[1]
    assert _stored(ours) == _stored(theirs)
    assert ours.has_folding_been_run and theirs.has_folding_been_run


def test_impure_nodes_are_not_folded() -> None:
    ours, _ = _fold_both("impure")
    impure = (torch.randn, torch.randn_like, operator.setitem)
    assert {node.target for node in ours.graph.nodes if node.target in impure} == set(impure)
    assert not any(node.target in impure for node in ours.const_subgraph_module.graph.nodes)


def test_skip_folding_node_fn_is_asked_as_torch_fx_asks() -> None:
    asked: Dict[str, List[Any]] = {"ours": [], "theirs": []}

    def recorder(key: str, refuse: str):
        def skip(node) -> bool:
            asked[key].append((node.op, node.name))
            return node.name == refuse

        return skip

    for refuse in ("", "foo", "sum_1", "sub_lin"):
        for key in asked:
            asked[key].clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = oracle_const_fold.split_const_subgraphs(
                _build(torch.fx, "partial"), skip_folding_node_fn=recorder("theirs", refuse)
            )
        ours = split_const_subgraphs(_build(fx, "partial"), skip_folding_node_fn=recorder("ours", refuse))
        assert asked["ours"] == asked["theirs"], refuse
        _assert_same_fold(ours, theirs)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_device_for_folded_attrs_moves_numbers_only(device: str) -> None:
    ours, theirs = _fold_both("numbers", device_for_folded_attrs=device)
    assert ours.device_for_folded_attrs == theirs.device_for_folded_attrs == device
    for module in (ours, theirs):
        module.run_folding()
    described = [[(p.dtype, p.device, p.requires_grad) for p in _folded_values(m)] for m in (ours, theirs)]
    assert described[0] == described[1]
    ours, theirs = _fold_both("partial", device_for_folded_attrs=device)  # tensors keep their device
    for module in (ours, theirs):
        module.run_folding()
    assert _stored(ours) == _stored(theirs)


def test_run_folding_without_constants_does_nothing() -> None:
    ours = split_const_subgraphs(fx.symbolic_trace(lambda x: x * 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = oracle_const_fold.split_const_subgraphs(torch.fx.symbolic_trace(lambda x: x * 2))
    for module in (ours, theirs):
        module.run_folding()
        module.run_folding()  # no constant subgraph: nothing to refuse either
    assert ours.has_folding_been_run is theirs.has_folding_been_run is False
    assert ours.fx_const_folded_attrs_name is theirs.fx_const_folded_attrs_name is None
    assert ours.device_for_folded_attrs == theirs.device_for_folded_attrs


def test_a_failing_constant_subgraph_counts_as_run() -> None:
    def build(library):
        root, graph = _root(), library.Graph()
        x = graph.placeholder("x")
        bad = graph.call_function(torch.reshape, (graph.get_attr("w"), (3,)))
        graph.output(graph.call_function(operator.add, (x, bad)))
        return library.GraphModule(root, graph)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = oracle_const_fold.split_const_subgraphs(build(torch.fx))
    ours = split_const_subgraphs(build(fx))
    for module in (ours, theirs):
        with pytest.raises(RuntimeError, match="is invalid for input of size 4"):
            module.run_folding()
    assert ours.has_folding_been_run and theirs.has_folding_been_run


def test_folded_nodes_keep_the_meta_of_the_values_they_stand_for() -> None:
    from torch.fx.passes.shape_prop import ShapeProp as OracleShapeProp

    from fxkit.passes.shape_prop import ShapeProp

    model = TwoFolds()
    described = []
    for library, shape_prop, fold in (
        (fx, ShapeProp, split_const_subgraphs),
        (torch.fx, OracleShapeProp, oracle_const_fold.split_const_subgraphs),
    ):
        traced = library.symbolic_trace(copy.deepcopy(model))
        shape_prop(traced).propagate(torch.randn(3, 4))
        for node in traced.graph.nodes:
            node.meta["origin"] = node.name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            folded = fold(traced)
        described.append(
            [
                (node.name, node.meta.get("origin"), getattr(node.meta.get("tensor_meta"), "shape", None))
                for graph in (folded.graph, folded.const_subgraph_module.graph)
                for node in graph.nodes
            ]
        )
    assert described[0] == described[1]


def test_a_folded_value_that_is_no_tensor_or_number_is_named() -> None:
    def build(graph, x):
        return graph.call_method("view", (x, graph.call_method("size", (graph.get_attr("w"),))))

    BUILDERS["shape"] = build
    try:
        folded = split_const_subgraphs(_build(fx, "shape"))
    finally:
        del BUILDERS["shape"]
    with pytest.raises(TypeError, match="node 'size' is a Size"):
        folded.run_folding()
