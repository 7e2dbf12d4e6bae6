"""GraphModule node hooks (create / erase / replace / deepcopy) against torch.fx's, event by event."""

from __future__ import annotations

import copy
import pickle
from typing import Any, List

import pytest
import torch
import torch.fx

import fxkit as fx


def _ignore(node) -> None:
    pass


def _program(x):
    return (x + 1).relu() * 2 + (x + 1)


def _edit_with_hooks(library) -> List[Any]:
    """The same edits in either library, recording what each hook saw."""
    gm = library.symbolic_trace(_program)
    events: List[Any] = []

    def on_create(node):
        events.append(("create", node.name, node.op, node in list(node.graph.nodes)))

    def on_erase(node):
        events.append(("erase", node.name, node in list(node.graph.nodes), len(node.users)))

    def on_replace(old, new, user):
        reads = [getattr(arg, "name", arg) for arg in user.args]
        events.append(("replace", old.name, new, user.name, reads))

    def on_deepcopy(module):
        events.append(("deepcopy", module is gm, len(module._create_node_hooks)))

    gm._register_create_node_hook(on_create)
    gm._register_erase_node_hook(on_erase)
    gm._register_replace_node_hook(on_replace)
    gm._register_deepcopy_hook(on_deepcopy)
    graph = gm.graph
    nodes = {node.name: node for node in graph.nodes}
    with graph.inserting_after(nodes["add"]):
        neg = graph.call_function(torch.neg, (nodes["add"],))
    nodes["relu"].replace_input_with(nodes["add"], neg)
    neg.replace_all_uses_with(nodes["add"])
    nodes["relu"].replace_input_with(nodes["add"], neg)
    neg.replace_all_uses_with(nodes["add"], delete_user_cb=lambda user: False)
    events.append(("args set, no hook",))
    nodes["relu"].args = (nodes["add"],)
    graph.erase_node(neg)
    graph.erase_node(graph.node_copy(nodes["add"]))
    nodes["relu"].name = "renamed"
    nodes["renamed"] = nodes["relu"]
    nodes["add_2"].name = "fresh"
    with graph.inserting_before(nodes["mul"]):
        graph.placeholder("y")
    graph.call_function(torch.sin, (nodes["x"],))
    graph.eliminate_dead_code()
    copied = copy.deepcopy(gm)
    lists = ("_create_node_hooks", "_erase_node_hooks", "_replace_hooks", "_deepcopy_hooks")
    events.append(("copy keeps hooks", [len(getattr(copied, name)) for name in lists]))
    seen: List[Any] = []
    with gm._set_replace_hook(lambda old, new, user: seen.append((old.name, new, user.name))):
        nodes["output"].replace_input_with(nodes["add_1"], nodes["add"])
    events.append(("set_replace_hook", seen, len(gm._replace_hooks)))
    gm._unregister_create_node_hook(on_create)
    graph.call_function(torch.cos, (nodes["x"],))
    with pytest.raises(ValueError):
        gm._unregister_create_node_hook(on_create)
    for kind in ("create_node", "erase_node", "replace_node", "deepcopy"):
        with pytest.raises(AssertionError, match=f"^{kind}" if kind != "replace_node" else None):
            getattr(gm, f"_register_{kind}_hook")(None)
    gm._unregister_erase_node_hook(on_erase)
    gm._unregister_replace_node_hook(on_replace)
    gm._unregister_deepcopy_hook(on_deepcopy)
    copied._unregister_create_node_hook(on_create)
    copied._unregister_erase_node_hook(on_erase)
    copied._unregister_replace_node_hook(on_replace)
    copied._unregister_deepcopy_hook(on_deepcopy)
    return events


def test_hooks_fire_as_torch_fx_fires_them() -> None:
    assert _edit_with_hooks(fx) == _edit_with_hooks(torch.fx)


def test_hooks_follow_the_graph_owner_and_not_pickles() -> None:
    for library in (fx, torch.fx):
        gm = library.symbolic_trace(_program)
        created: List[str] = []
        gm._register_create_node_hook(lambda node: created.append(node.name))
        library.Graph().placeholder("alone")  # a graph nobody owns runs no hooks
        gm.graph = library.symbolic_trace(lambda z: z * 3).graph  # hooks stay with the module
        z = next(iter(gm.graph.nodes))
        gm.graph.call_function(torch.neg, (z,))
        other = library.GraphModule(gm, gm.graph)  # a new owner has no hooks
        other.graph.call_function(torch.neg, (z,))
        assert created == ["neg"]
        assert other._create_node_hooks == []
        gm._unregister_create_node_hook(gm._create_node_hooks[0])
        gm._register_create_node_hook(_ignore)  # torch.fx pickles hooks (a lambda fails) but drops them
        assert pickle.loads(pickle.dumps(gm))._create_node_hooks == []
        gm._unregister_create_node_hook(_ignore)


def test_a_failing_create_hook_leaves_the_graph_as_it_was() -> None:
    gm = fx.symbolic_trace(_program)

    def refuse(node):
        raise KeyError(node.name)

    gm._register_create_node_hook(refuse)
    x = next(iter(gm.graph.nodes))
    before = (gm.code, list(x.users))
    with pytest.raises(KeyError):
        gm.graph.call_function(torch.neg, (x,))
    gm._unregister_create_node_hook(refuse)
    gm.graph.lint()
    assert (gm.code, list(x.users)) == before
    assert gm.graph.call_function(torch.neg, (x,)).name == "neg"  # the name was given back


def test_a_failing_replace_hook_leaves_every_user_as_it_was() -> None:
    gm = fx.symbolic_trace(_program)
    seen: List[str] = []

    def refuse_second(old, new, user):
        seen.append(user.name)
        if len(seen) == 2:
            raise RuntimeError("no")

    gm._register_replace_node_hook(refuse_second)
    nodes = {node.name: node for node in gm.graph.nodes}
    users = list(nodes["x"].users)
    with pytest.raises(RuntimeError):
        nodes["x"].replace_all_uses_with(nodes["add"])
    gm._unregister_replace_node_hook(refuse_second)
    assert list(nodes["x"].users) == users
    gm.graph.lint()
