"""Node API: arguments, users bookkeeping, list neighbours, rewiring, formatting and purity.

Where torch.fx defines the behaviour, the same operations run on both and the results are compared.
"""

from __future__ import annotations

import collections
import operator
import typing
from typing import Any, Dict, List

import pytest
import torch
import torch.fx

import fxkit
from fxkit.immutable_collections import immutable_dict, immutable_list
from fxkit.node import has_side_effect, map_aggregate, map_arg


def users_snapshot(graph: Any) -> Dict[str, List[str]]:
    return {node.name: [user.name for user in node.users] for node in graph.nodes}


def inputs_snapshot(graph: Any) -> Dict[str, List[str]]:
    return {node.name: [used.name for used in node.all_input_nodes] for node in graph.nodes}


def assert_users_exact(graph: Any) -> None:
    """users is exactly the set of nodes that read each node (recomputed from args/kwargs)."""
    expected: Dict[Any, Dict[Any, None]] = {node: {} for node in graph.nodes}
    for node in graph.nodes:
        found: List[Any] = []
        map_arg((node.args, node.kwargs), lambda used: found.append(used))
        for used in found:
            expected[used][node] = None
        assert set(node.all_input_nodes) == set(found)
    for node in graph.nodes:
        assert set(node.users) == set(expected[node]), node.name


def _small(fx: Any) -> Any:
    g = fx.Graph()
    x = g.placeholder("x")
    y = g.placeholder("y")
    add = g.call_function(operator.add, (x, [y, {"k": x}]), {"z": y})
    mul = g.call_function(operator.mul, (add, x))
    g.output((mul, add))
    return g


def _by_name(graph: Any) -> Dict[str, Any]:
    return {node.name: node for node in graph.nodes}


# ---------------------------------------------------------------------------------------------
# Arguments are immutable
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mutate",
    [
        lambda n: n.args[1].append(3),
        lambda n: n.args[1].__setitem__(0, 3),
        lambda n: n.args[1].extend([1]),
        lambda n: n.args[1].pop(),
        lambda n: n.args[1].clear(),
        lambda n: n.args[1][1].__setitem__("k", 1),
        lambda n: n.args[1][1].update(k=1),
        lambda n: n.kwargs.__setitem__("q", 1),
        lambda n: n.kwargs.pop("z"),
        lambda n: n.kwargs.__delitem__("z"),
    ],
)
def test_args_and_kwargs_refuse_mutation_with_a_clear_error(mutate: Any) -> None:
    theirs, ours = _by_name(_small(torch.fx))["add"], _by_name(_small(fxkit))["add"]
    with pytest.raises(TypeError) as their_error:
        mutate(theirs)
    with pytest.raises(TypeError, match="does not support mutation") as our_error:
        mutate(ours)
    assert "node.args" in str(our_error.value)
    assert type(our_error.value) is type(their_error.value)
    assert str(ours.args) == str(theirs.args) and str(ours.kwargs) == str(theirs.kwargs)


def test_containers_become_immutable_at_every_depth() -> None:
    node = _by_name(_small(fxkit))["add"]
    assert type(node.args) is tuple
    assert type(node.args[1]) is immutable_list
    assert type(node.args[1][1]) is immutable_dict
    assert type(node.kwargs) is immutable_dict


def test_assigning_args_updates_users_like_torch_fx() -> None:
    snapshots = []
    for fx in (torch.fx, fxkit):
        g = _small(fx)
        nodes = _by_name(g)
        nodes["add"].args = (nodes["y"], 2)
        nodes["mul"].kwargs = {"other": nodes["y"]}
        nodes["add"].kwargs = {}
        snapshots.append((users_snapshot(g), inputs_snapshot(g), str(g)))
        if fx is fxkit:
            assert_users_exact(g)
    assert snapshots[0] == snapshots[1]


def test_users_order_follows_first_use_like_torch_fx() -> None:
    results = []
    for fx in (torch.fx, fxkit):
        g = fx.Graph()
        x = g.placeholder("x")
        nodes = [g.call_function(torch.neg, (x,)) for _ in range(4)]
        nodes[1].args = (nodes[0],)
        nodes[1].args = (x,)
        third = g.call_function(torch.add, (nodes[2], x))
        g.output(third)
        results.append(users_snapshot(g))
    assert results[0] == results[1]


def test_all_input_nodes_is_distinct_and_ordered() -> None:
    for fx in (torch.fx, fxkit):
        g = fx.Graph()
        x, y, z = g.placeholder("x"), g.placeholder("y"), g.placeholder("z")
        node = g.call_function(torch.cat, ([z, x, z, (y, slice(x, None))],), {"out": x})
        assert [n.name for n in node.all_input_nodes] == ["z", "x", "y"]


def test_update_arg_update_kwarg_insert_arg_match_torch_fx() -> None:
    results = []
    for fx in (torch.fx, fxkit):
        g = _small(fx)
        nodes = _by_name(g)
        mul = nodes["mul"]
        mul.update_arg(1, nodes["y"])
        mul.insert_arg(0, nodes["x"])
        mul.insert_arg(3, 5)
        mul.update_kwarg("alpha", nodes["y"])
        mul.update_kwarg("alpha", 2)
        results.append((str(g), users_snapshot(g), mul.args, dict(mul.kwargs)))
        if fx is fxkit:
            assert_users_exact(g)
    assert str(results[0][0]) == str(results[1][0])
    assert results[0][1] == results[1][1]


def test_insert_arg_out_of_range_raises_and_changes_nothing() -> None:
    g = _small(fxkit)
    mul = _by_name(g)["mul"]
    before = str(g)
    with pytest.raises(IndexError, match="mul"):
        mul.insert_arg(7, 1)
    with pytest.raises(IndexError):
        mul.update_arg(5, 1)
    assert str(g) == before


# ---------------------------------------------------------------------------------------------
# Neighbours and moving nodes
# ---------------------------------------------------------------------------------------------


def test_prev_next_and_sentinel() -> None:
    for fx in (torch.fx, fxkit):
        g = _small(fx)
        names = [n.name for n in g.nodes]
        nodes = list(g.nodes)
        assert [n.next.name for n in nodes[:-1]] == names[1:]
        assert [n.prev.name for n in nodes[1:]] == names[:-1]
        assert nodes[-1].next is nodes[0].prev  # the root sentinel sits between last and first
        assert nodes[-1].next.op == "root"


def test_append_and_prepend_move_nodes_like_torch_fx() -> None:
    orders = []
    for fx in (torch.fx, fxkit):
        g = fx.Graph()
        x = g.placeholder("x")
        a, b, c = (g.call_function(fn, (x,)) for fn in (torch.sin, torch.cos, torch.tan))
        g.output((a, b, c))
        c.prepend(b)  # already there: no-op in effect
        a.prepend(c)
        a.append(b)
        x.append(b)
        orders.append([n.name for n in g.nodes])
    assert orders[0] == orders[1]


def test_moving_next_to_itself_is_a_no_op_and_across_graphs_is_refused() -> None:
    g, other = _small(fxkit), _small(fxkit)
    add = _by_name(g)["add"]
    before = str(g)
    add.prepend(add)
    add.append(add)
    add.next.prepend(add)
    add.prev.append(add)
    assert str(g) == before
    with pytest.raises(ValueError, match="different graphs"):
        add.prepend(_by_name(other)["mul"])
    assert str(g) == before
    g.lint()


# ---------------------------------------------------------------------------------------------
# Rewiring
# ---------------------------------------------------------------------------------------------


def test_replace_all_uses_with_returns_users_and_moves_them() -> None:
    results = []
    for fx in (torch.fx, fxkit):
        g = _small(fx)
        nodes = _by_name(g)
        with g.inserting_after(nodes["add"]):
            fresh = g.call_function(torch.relu, (nodes["add"],))
        changed = nodes["add"].replace_all_uses_with(fresh, delete_user_cb=lambda user: user is not fresh)
        results.append(([n.name for n in changed], str(g), users_snapshot(g)))
        if fx is fxkit:
            assert_users_exact(g)
            g.lint()
    assert results[0] == results[1]


def test_replace_all_uses_with_propagate_meta() -> None:
    g = _small(fxkit)
    nodes = _by_name(g)
    nodes["add"].meta["val"] = "payload"
    with g.inserting_after(nodes["add"]):
        fresh = g.call_function(torch.relu, (nodes["x"],))
    nodes["add"].replace_all_uses_with(fresh, propagate_meta=True)
    assert fresh.meta == {"val": "payload"}
    with g.inserting_after(fresh):
        other = g.call_function(torch.relu, (nodes["x"],))
    other.meta["val"] = "mine"
    with pytest.raises(ValueError, match="already has meta"):
        fresh.replace_all_uses_with(other, propagate_meta=True)
    assert other.meta == {"val": "mine"}
    assert [u.name for u in fresh.users] == ["mul", "output"]


def test_replace_input_with_like_torch_fx() -> None:
    results = []
    for fx in (torch.fx, fxkit):
        g = _small(fx)
        nodes = _by_name(g)
        nodes["add"].replace_input_with(nodes["x"], nodes["y"])
        results.append((str(g), users_snapshot(g)))
    assert results[0] == results[1]


# ---------------------------------------------------------------------------------------------
# Metadata, formatting, purity
# ---------------------------------------------------------------------------------------------


def test_stack_trace_lives_in_meta() -> None:
    node = _by_name(_small(fxkit))["add"]
    assert node.stack_trace is None
    node.stack_trace = 'File "a.py", line 1'
    assert node.meta["stack_trace"] == 'File "a.py", line 1'
    assert node.stack_trace == 'File "a.py", line 1'


def test_format_node_matches_torch_fx() -> None:
    def build(fx: Any) -> Any:
        g = fx.Graph()
        x = g.placeholder("x", type_expr=torch.Tensor)
        d = g.placeholder("d", default_value=3)
        w = g.get_attr("weight")
        n = g.call_function(torch.add, (x, (w, [d, None], slice(1, None))), {"alpha": 2.5, "out": None})
        m = g.call_method("view", (n, -1, (2,)))
        mod = g.call_module("sub.lin", (m,), {"flag": True})
        g.output({"a": mod, "b": [n]}, type_expr=torch.Tensor)
        return g

    theirs, ours = build(torch.fx), build(fxkit)
    for their_node, our_node in zip(theirs.nodes, ours.nodes):
        assert our_node.format_node() == their_node.format_node()
        their_type, our_type = [""], [""]
        assert our_node.format_node(None, our_type) == their_node.format_node(None, their_type)
        assert our_type == their_type
        assert repr(our_node) == repr(their_node)


def test_is_impure_matches_torch_fx() -> None:
    def build(fx: Any) -> Any:
        g = fx.Graph()
        x = g.placeholder("x")
        nodes = [
            g.call_function(torch.relu, (x,)),
            g.call_function(operator.setitem, (x, 0, 1.0)),
            g.call_function(torch._assert, (True, "msg")),
            g.call_function(torch.ops.aten.add_.Tensor, (x, 1.0)),
            g.call_function(torch.ops.aten.add.Tensor, (x, 1.0)),
            g.call_function(torch.ops.aten.rand.default, ([2],)),
            g.call_method("add_", (x, 1)),
            g.get_attr("w"),
        ]
        g.output(nodes[0])
        return g

    theirs, ours = build(torch.fx), build(fxkit)
    for their_node, our_node in zip(theirs.nodes, ours.nodes):
        assert our_node.is_impure() == their_node.is_impure(), our_node.name
        assert our_node.is_impure(impure_random=False) == their_node.is_impure(impure_random=False), (
            our_node.name
        )


def test_call_module_purity_follows_the_owning_module() -> None:
    class Impure(torch.nn.Module):
        _is_impure = True

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    root = torch.nn.Module()
    root.pure = torch.nn.ReLU()
    root.impure = Impure()
    g = fxkit.Graph()
    x = g.placeholder("x")
    g.call_module("pure", (x,))
    g.call_module("impure", (x,))
    g.output(x)
    module = fxkit.GraphModule(root, g)
    assert module.graph.eliminate_dead_code()
    assert [n.name for n in module.graph.nodes] == ["x", "impure", "output"]


def test_has_side_effect_keeps_calls_alive() -> None:
    def record(value: Any) -> None:
        return None

    has_side_effect(record)
    g = fxkit.Graph()
    x = g.placeholder("x")
    g.call_function(record, (x,))
    g.output(x)
    assert not g.eliminate_dead_code()
    assert [n.op for n in g.nodes] == ["placeholder", "call_function", "output"]


def test_node_rejects_bad_op_and_targets() -> None:
    g = fxkit.Graph()
    before = (len(g.nodes), str(g))
    with pytest.raises(ValueError, match="unknown opcode"):
        g.create_node("call_everything", torch.relu)
    with pytest.raises(ValueError, match="string target"):
        g.create_node("call_method", torch.relu)
    with pytest.raises(ValueError, match="callable target"):
        g.create_node("call_function", "relu")
    assert (len(g.nodes), str(g)) == before
    # the names tried above were given back
    assert g.call_function(torch.relu, ()).name == "relu"


# ---------------------------------------------------------------------------------------------
# map_arg / map_aggregate
# ---------------------------------------------------------------------------------------------


def test_map_arg_and_map_aggregate_match_torch_fx() -> None:
    for fx, fx_node in ((torch.fx, torch.fx.node), (fxkit, fxkit.node)):
        g = fx.Graph()
        x = g.placeholder("x")
        y = g.placeholder("y")
        structure = (x, [y, {"k": (x, 3)}], slice(y, None), "s", None)
        mapped = fx_node.map_arg(structure, lambda n: n.name.upper())
        assert mapped == ("X", ["Y", {"k": ("X", 3)}], slice("Y", None), "s", None)
        doubled = fx_node.map_aggregate((1, [2, {"a": 3}]), lambda v: v * 2 if isinstance(v, int) else v)
        assert doubled == (2, [4, {"a": 6}])
        assert type(doubled[1]).__name__ == "immutable_list"


def test_map_arg_is_importable_from_graph_and_needs_callable() -> None:
    from fxkit.graph import map_aggregate as graph_map_aggregate
    from fxkit.graph import map_arg as graph_map_arg

    assert graph_map_arg is map_arg and graph_map_aggregate is map_aggregate
    with pytest.raises(TypeError, match="callable"):
        map_arg((1,), 5)  # type: ignore[arg-type]


Pair = collections.namedtuple("Pair", "first second")


@pytest.mark.parametrize("value", [Pair(1, 2), torch.return_types.max((1, 2)), torch.Size([1, 2]), (1, 2)])
def test_map_aggregate_tuple_subclasses_like_torch_fx(value: Any) -> None:
    ours = map_aggregate(value, lambda v: v + 1)
    theirs = torch.fx.node.map_aggregate(value, lambda v: v + 1)
    assert type(ours) is type(theirs)
    assert tuple(ours) == tuple(theirs) == (value[0] + 1, value[1] + 1)


def test_all_input_nodes_in_order_whatever_mix_of_args_and_kwargs() -> None:
    import torch.fx

    def build(fx: Any) -> List[List[str]]:
        graph = fx.Graph()
        a, b, c = graph.placeholder("a"), graph.placeholder("b"), graph.placeholder("c")
        built = [
            graph.call_function(torch.add, (a, b)),
            graph.call_function(torch.add, (a, b), {"alpha": 2}),
            graph.call_function(torch.add, (a,), {"other": a}),
            graph.call_function(torch.add, (b,), {"other": a}),
            graph.call_function(torch.add, (a, a)),
            graph.call_function(torch.add, (b, 1.0), {"out": c}),
            graph.call_function(torch.cat, ([c, a],)),
        ]
        built[3].args = (c,)
        built[4].kwargs = {"alpha": b}
        graph.erase_node(built[0])
        return [[n.name for n in node.all_input_nodes] for node in built] + [list(map(str, built[0].args))]

    assert build(fxkit) == build(torch.fx)


def test_private_input_nodes_reads_like_torch_fx() -> None:
    import torch.fx

    def inputs(fx: Any) -> List[Any]:
        graph = fx.Graph()
        a, b = graph.placeholder("a"), graph.placeholder("b")
        flat = graph.call_function(operator.add, (a, b))
        mixed = graph.call_function(operator.add, (b, 1.0), {"alpha": a})
        return [
            (type(n._input_nodes).__name__, [i.name for i in n._input_nodes.keys()]) for n in (flat, mixed)
        ]

    assert inputs(fxkit) == inputs(torch.fx)


class _Pair(typing.NamedTuple):
    x: Any
    y: Any

    def _custom_fx_repr_fn(self) -> str:
        return f"Pair(x={self.x!r}, y={self.y!r})"


def test_arguments_with_a_custom_repr_print_it_like_torch_fx() -> None:
    def build(fx: Any) -> Any:
        g = fx.Graph()
        x = g.placeholder("x")
        g.output(g.call_function(print, (_Pair(x, 1.2), [_Pair(3, None)]), {"k": _Pair("a", x)}))
        return g

    theirs, ours = build(torch.fx), build(fxkit)
    assert [n.format_node() for n in ours.nodes] == [n.format_node() for n in theirs.nodes]
    from torch.fx.node import _format_arg as their_format

    from fxkit.node import _format_arg as our_format

    value = [_Pair(1, 2), {"a": (_Pair(3, 4),)}]
    assert our_format(value) == their_format(value)


# ---------------------------------------------------------------------------------------------
# format_node(include_tensor_metadata=) and keyword names of map_arg / map_aggregate
# ---------------------------------------------------------------------------------------------


def _metadata_lines(fx: Any) -> List[str]:
    graph = fx.Graph()
    x = graph.placeholder("x")
    typed = graph.placeholder("typed", type_expr=torch.Tensor)
    plain = graph.call_function(torch.relu, (x,))
    as_int = graph.call_function(torch.relu, (typed,), type_expr=int)
    strided = graph.call_method("t", (plain,))
    number = graph.call_function(operator.add, (x, 1))
    graph.output((as_int, strided, number))
    x.meta["val"] = typed.meta["val"] = torch.empty(2, 3)
    plain.meta["val"] = torch.empty(2, 3, dtype=torch.float16, device="meta")
    as_int.meta["val"] = torch.empty(2, 3, dtype=torch.int64)
    strided.meta["val"] = torch.empty(3, 2).t()
    number.meta["val"] = 3
    return [node.format_node(include_tensor_metadata=True) for node in graph.nodes] + [
        node.format_node([], [""], include_tensor_metadata=False) for node in graph.nodes
    ]


def test_format_node_include_tensor_metadata_matches_torch_fx() -> None:
    assert _metadata_lines(fxkit) == _metadata_lines(torch.fx)


def test_map_functions_take_torch_fx_keyword_names() -> None:
    for fx in (torch.fx, fxkit):
        graph = fx.Graph()
        x, y = graph.placeholder("x"), graph.placeholder("y")
        assert fx.map_arg(a=(x, [y], {"k": 1}), fn=lambda n: n.name) == ("x", ["y"], {"k": 1})
        assert fx.node.map_aggregate(a=(1, [2]), fn=lambda v: v * 2) == (2, [4])
        with pytest.raises(TypeError, match="unexpected keyword argument"):
            x.format_node(bogus=True)


def test_inputs_are_always_a_tuple_of_distinct_nodes_in_argument_order() -> None:
    graph = fxkit.Graph()
    a, b = graph.placeholder("a"), graph.placeholder("b")
    cases = {
        "flat": graph.call_function(operator.add, (a, b)),
        "scalar": graph.call_function(operator.add, (b, 1.0), {"alpha": a}),
        "repeated": graph.call_function(torch.cat, ([a, b, a],)),
        "kwargs only": graph.call_function(torch.add, (), {"input": b, "other": a}),
        "none": graph.call_function(torch.zeros, (2,)),
    }
    cases["edited"] = graph.call_function(operator.mul, (a, a))
    cases["edited"].args = (b, {"k": a})
    for node in cases.values():
        assert type(node._inputs) is tuple
        assert list(node._inputs) == node.all_input_nodes == list(dict.fromkeys(node.all_input_nodes))
    assert cases["flat"]._inputs is cases["flat"].args  # no second container when args are the inputs
    graph.erase_node(cases["edited"])
    assert cases["edited"]._inputs == ()


def test_scalar_arguments_are_kept_as_they_are_and_match_torch_fx() -> None:
    from fxkit._atoms import SCALAR_TYPES

    values = (
        1,
        2.5,
        True,
        1j,
        "s",
        None,
        ...,
        torch.float16,
        torch.device("cpu"),
        torch.channels_last,
        torch.strided,
    )
    assert {type(value) for value in values} == SCALAR_TYPES

    def stored(fx: Any) -> List[Any]:
        graph = fx.Graph()
        x = graph.placeholder("x")
        node = graph.call_function(operator.add, (x, *values), {"k": values})
        mapped = fx.node.map_arg(node.args, lambda n: n)
        return [node.args[1:], node.kwargs["k"], mapped[1:], node.all_input_nodes == [x]]

    ours, theirs = stored(fxkit), stored(torch.fx)
    assert ours == theirs
    assert all(a is b for a, b in zip(ours[0], values))
