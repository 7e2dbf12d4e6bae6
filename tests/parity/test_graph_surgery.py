"""Graph surgery: inserting, copying, erasing and querying nodes, lint and dead code.

Run once with torch.fx (the oracle) and once with fxkit; results must be equal. Each snippet takes
the library module as ``fx`` and returns plain data; helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import copy
import operator

import torch
import torch.fx
from torch import nn

from .models import AddRelu, SmallNet
from .oracle import (
    error_of,
    error_type_of,
    is_fxkit,
    parity_test,
    snippet,
    summary,
)


@snippet
def inserting_before_and_after(fx):
    gm = fx.symbolic_trace(AddRelu())
    graph = gm.graph
    relu = next(node for node in graph.nodes if node.target is torch.relu)
    with graph.inserting_before(relu):
        doubled = graph.call_function(torch.mul, (relu.args[0], 2))
    relu.replace_input_with(relu.args[0], doubled)
    with graph.inserting_after(relu):
        negated = graph.call_function(torch.neg, (relu,))
    relu.replace_all_uses_with(negated, delete_user_cb=lambda user: user is not negated)
    gm.recompile()
    return gm.code, summary(graph), gm(torch.ones(2), torch.ones(2))


@snippet
def replace_all_uses_with_returns_users(fx):
    gm = fx.symbolic_trace(lambda x: (x + 1) * (x + 1) + x)
    graph = gm.graph
    x = next(iter(graph.nodes))
    with graph.inserting_after(x):
        y = graph.call_function(torch.abs, (x,))
    replaced = x.replace_all_uses_with(y, delete_user_cb=lambda user: user is not y)
    gm.recompile()
    return [node.name for node in replaced], gm.code, [user.name for user in y.users]


@snippet
def node_copy_into_new_graph(fx):
    gm = fx.symbolic_trace(SmallNet())
    new_graph = fx.Graph()
    env = {}
    for node in gm.graph.nodes:
        env[node] = new_graph.node_copy(node, lambda n: env[n])
    return str(new_graph), summary(new_graph)


@snippet
def graph_copy_with_val_map(fx):
    gm = fx.symbolic_trace(AddRelu())
    new_graph = fx.Graph()
    a = new_graph.placeholder("a")
    b = new_graph.placeholder("b")
    old_placeholders = [node for node in gm.graph.nodes if node.op == "placeholder"]
    val_map = {old_placeholders[0]: a, old_placeholders[1]: b}
    returned = new_graph.graph_copy(gm.graph, val_map)
    new_graph.output(new_graph.call_function(torch.neg, (returned,)))
    new_gm = fx.GraphModule(gm, new_graph)
    return (
        repr(returned),
        sorted(node.name for node in val_map),
        new_gm.code,
        new_gm(torch.ones(2), torch.ones(2)),
    )


@snippet
def graph_copy_return_output_node(fx):
    gm = fx.symbolic_trace(AddRelu())
    new_graph = fx.Graph()
    val_map = {}
    output_value = new_graph.graph_copy(gm.graph, val_map, return_output_node=True)
    return repr(output_value), len(val_map)


@snippet
def erase_node_and_erase_with_users(fx):
    gm = fx.symbolic_trace(lambda x: torch.relu(x).neg() + x)
    graph = gm.graph
    relu = next(node for node in graph.nodes if node.target is torch.relu)
    failure = error_of(lambda: graph.erase_node(relu))
    neg = next(iter(relu.users))
    neg.replace_all_uses_with(relu)
    graph.erase_node(neg)
    gm.recompile()
    return failure[0], "users" in failure[1], gm.code, gm(torch.tensor([-1.0, 2.0]))


@snippet
def eliminate_dead_code(fx):
    def fn(x):
        unused = x * 3
        torch.manual_seed(0)
        also_unused = unused + 1
        return x + 1

    gm = fx.symbolic_trace(fn)
    changed = gm.graph.eliminate_dead_code()
    gm.recompile()
    return changed, gm.code


@snippet
def eliminate_dead_code_custom_impure(fx):
    def fn(x):
        kept = x * 3
        dropped = x - 1
        return x + 1

    gm = fx.symbolic_trace(fn)
    changed = gm.graph.eliminate_dead_code(is_impure_node=lambda node: node.name == "mul")
    gm.recompile()
    return changed, gm.code


@snippet
def find_nodes_queries(fx):
    gm = fx.symbolic_trace(SmallNet())
    graph = gm.graph
    return (
        [n.name for n in graph.find_nodes(op="placeholder")],
        [n.name for n in graph.find_nodes(op="call_function", target=operator.mul)],
        [n.name for n in graph.find_nodes(op="get_attr")],
        [n.name for n in graph.find_nodes(op="call_module", target="linear")],
        [n.name for n in graph.find_nodes(op="call_function", target=torch.relu)],
    )


@snippet
def create_node_with_explicit_names(fx):
    graph = fx.Graph()
    x = graph.create_node("placeholder", "x")
    first = graph.create_node("call_function", torch.add, (x, 1), name="step")
    second = graph.create_node("call_function", torch.add, (first, 1), name="step")
    third = graph.create_node("call_method", "mul", (second, 2), {}, name="foo_1")
    fourth = graph.create_node("call_method", "mul", (third, 2), {}, name="foo")
    fifth = graph.call_function(operator.add, (fourth, 1))
    graph.create_node("output", "output", (fifth,))
    return summary(graph), graph.python_code("self").src


@snippet
def output_node_and_graph_navigation(fx):
    gm = fx.symbolic_trace(AddRelu())
    graph = gm.graph
    out = graph.output_node()
    nodes = list(graph.nodes)
    return (
        out.name,
        out.op,
        repr(out.args),
        out.prev.name,
        nodes[0].next.name,
        len(graph.nodes),
        [n.name for n in reversed(graph.nodes)],
        [n.name for n in nodes[2].all_input_nodes],
        list(nodes[0].users) == [nodes[2]],
        repr(nodes[2]),
        nodes[2].format_node(),
        out.format_node(),
    )


@snippet
def graph_deepcopy(fx):
    gm = fx.symbolic_trace(SmallNet())
    copied = copy.deepcopy(gm.graph)
    original_nodes = set(gm.graph.nodes)
    return (
        str(copied),
        summary(copied),
        any(node in original_nodes for node in copied.nodes),
        copied.owning_module is None,
    )


@snippet
def node_argument_editing(fx):
    gm = fx.symbolic_trace(lambda x, y: torch.add(x, y, alpha=2))
    graph = gm.graph
    x, y, add, _ = graph.nodes
    add.update_arg(1, x)
    add.update_kwarg("alpha", 3)
    add.args = (y, x)
    add.kwargs = {"alpha": 4}
    gm.recompile()
    return (
        gm.code,
        [user.name for user in x.users],
        [user.name for user in y.users],
        gm(torch.ones(1), torch.ones(1)),
    )


@snippet
def node_append_prepend(fx):
    gm = fx.symbolic_trace(lambda x: (x + 1, x * 2, x - 3))
    graph = gm.graph
    add, mul, sub = [node for node in graph.nodes if node.op == "call_function"]
    sub.prepend(mul)
    add.append(sub)
    gm.recompile()
    return gm.code, [n.name for n in graph.nodes]


@snippet
def manual_graph_with_all_ops(fx):
    root = nn.Module()
    root.lin = nn.Linear(2, 2)
    root.register_buffer("bias", torch.ones(2))
    graph = fx.Graph()
    x = graph.placeholder("x", type_expr=torch.Tensor)
    scale = graph.placeholder("scale", default_value=2.0)
    h = graph.call_module("lin", (x,))
    b = graph.get_attr("bias")
    s = graph.call_method("sum", (h,), {"dim": -1, "keepdim": True})
    out = graph.call_function(operator.mul, (graph.call_function(operator.add, (s, b)), scale))
    graph.output(out, type_expr=torch.Tensor)
    gm = fx.GraphModule(root, graph)
    graph.lint()
    return gm.code, str(graph), gm(torch.ones(1, 2)), gm(torch.ones(1, 2), 3.0)


@snippet
def node_names_colliding_with_builtins_and_keywords(fx):
    graph = fx.Graph()
    x = graph.placeholder("input")
    a = graph.call_function(operator.add, (x, 1), name="list")
    b = graph.call_function(operator.add, (a, 1), name="for")
    c = graph.call_function(operator.add, (b, 1), name="torch")
    d = graph.create_node("call_method", "view", (c, -1), name="x.y")
    graph.output(d)
    return [n.name for n in graph.nodes], graph.python_code("self").src


@snippet
def reserved_self_name_is_renamed(fx):
    graph = fx.Graph()
    x = graph.placeholder("x")
    node = graph.call_function(operator.add, (x, 1), name="self")
    graph.output(node)
    if is_fxkit(fx):
        # Documented difference: a node never takes the name `self`.
        assert node.name != "self"
        return "self"
    return node.name


@snippet
def lint_detects_use_before_definition(fx):
    graph = fx.Graph()
    x = graph.placeholder("x")
    a = graph.call_function(operator.add, (x, 1))
    b = graph.call_function(operator.mul, (a, 2))
    graph.output(b)
    a.args = (b, 1)
    return error_type_of(graph.lint)


@snippet
def graph_python_code_and_on_generate_code(fx):
    graph = fx.symbolic_trace(AddRelu()).graph
    code = graph.python_code(root_module="self")
    return code.src, sorted(code.globals), type(code).__name__


@snippet
def is_impure_and_side_effects(fx):
    def fn(x):
        x.add_(1)
        torch.manual_seed(3)
        return x.neg()

    gm = fx.symbolic_trace(fn)
    return [(node.name, node.is_impure()) for node in gm.graph.nodes]


@snippet
def map_arg_and_map_aggregate(fx):
    gm = fx.symbolic_trace(lambda x, y: torch.cat([x, y]) + y)
    cat = next(node for node in gm.graph.nodes if node.target is torch.cat)
    names = fx.node.map_arg(cat.args, lambda n: n.name)
    doubled = fx.node.map_aggregate({"a": (1, [2, 3]), "b": 4}, lambda v: v * 2)
    return names, doubled, type(fx.map_arg(cat.args, lambda n: n.name)[0]).__name__


test_fxkit_matches_torch_fx = parity_test(__name__)
