"""GraphTransformObserver against torch.fx's: inactive by default, the same records and
``from_node`` provenance when active, and the before/after DOT files with a log_url."""

from __future__ import annotations

import copy
import re
from typing import Any, Dict, List

import pytest
import torch
import torch._inductor.config as inductor_config
import torch.fx
from torch.fx.passes.graph_transform_observer import GraphTransformObserver as OracleObserver

import fxkit as fx
from fxkit.passes.graph_transform_observer import GraphTransformObserver


def _program(x):
    return (x + 1).relu() * 2 + (x + 1) * 3


def _hook_counts(gm) -> List[int]:
    return [len(gm.__dict__[name]) for name in ("_create_node_hooks", "_erase_node_hooks", "_replace_hooks")]


def _inactive(library, observer_class) -> List[Any]:
    gm = library.symbolic_trace(_program)
    before = observer_class.get_current_pass_count()
    observer = observer_class(gm, "my_pass", subsystem="sub")
    seen = [sorted(vars(observer)), observer.active, observer._check_disable_pass()]
    with observer as entered:
        seen += [entered is observer, _hook_counts(gm)]
        x = next(iter(gm.graph.nodes))
        created = gm.graph.call_function(torch.neg, (x,))
        seen.append(dict(created.meta))
    seen += [
        observer.apply_gm_pass(lambda module: type(module).__name__),
        observer.apply_graph_pass(lambda graph: len(graph.nodes)),
        observer_class.get_current_pass_count() - before,
        sorted(vars(observer)),
    ]
    return seen


def test_inactive_without_log_url_as_torch_fx() -> None:
    assert _inactive(fx, GraphTransformObserver) == _inactive(torch.fx, OracleObserver)


def _sources(node) -> List[Any]:
    def describe(source) -> Any:
        return (
            source.name,
            source.pass_name,
            [a.value for a in source.action],
            [describe(s) for s in source.from_node],
        )

    return [describe(source) for source in node.meta.get("from_node", [])]


def _observed_edits(library, observer_class) -> List[Any]:
    gm = library.symbolic_trace(_program)
    nodes = {node.name: node for node in gm.graph.nodes}
    seen: List[Any] = []
    with observer_class(gm, "first") as observer:
        seen.append((sorted(observer.name_to_node), _hook_counts(gm)))
        nodes["relu"].replace_input_with(nodes["add"], nodes["x"])  # an existing node
        with gm.graph.inserting_after(nodes["x"]):
            neg = gm.graph.call_function(torch.neg, (nodes["x"],))
        seen.append(_sources(neg))  # the creation mark
        nodes["mul"].replace_all_uses_with(neg)
        nodes["add_1"].replace_all_uses_with(neg)
        with gm.graph.inserting_after(nodes["relu"]):
            copied = gm.graph.node_copy(nodes["relu"])
        nodes["relu"].replace_all_uses_with(copied)
        dropped = gm.graph.call_function(torch.sin, (nodes["x"],))
        gm.graph.erase_node(dropped)
        seen.append(
            (sorted(observer.created_nodes), sorted(observer.erased_nodes), sorted(observer.name_to_node))
        )
    seen.append(_hook_counts(gm))
    with observer_class(gm, "second") as observer:
        with gm.graph.inserting_after(neg):
            sin = gm.graph.call_function(torch.sin, (neg,))
        neg.replace_all_uses_with(sin, delete_user_cb=lambda user: user is not sin)
        seen.append((sorted(observer.created_nodes), observer.erased_nodes))
    seen.append([(node.name, _sources(node)) for node in gm.graph.nodes])
    with observer_class(gm, "third") as observer:
        twin = copy.deepcopy(gm)
        seen.append((len(observer.copied_gms), observer.copied_gms[0] is twin, _hook_counts(twin)))
    return seen


def test_records_and_provenance_as_torch_fx_when_active() -> None:
    # torch.fx turns its observer on with inductor's provenance tracking (or a log_url); fxkit
    # reads that setting when torch._inductor.config is loaded, and never imports it itself.
    with inductor_config.patch({"trace.provenance_tracking_level": 1}):
        ours = _observed_edits(fx, GraphTransformObserver)
        theirs = _observed_edits(torch.fx, OracleObserver)
    assert ours == theirs


def _colors(path) -> Dict[str, str]:
    text = path.read_text()
    return dict(re.findall(r'^\s*"([^"]+)" \[label=.*, fillcolor=(\w+)\];$', text, re.MULTILINE))


def test_log_url_writes_the_graph_before_and_after(tmp_path) -> None:
    gm = fx.symbolic_trace(_program)
    nodes = {node.name: node for node in gm.graph.nodes}
    start = GraphTransformObserver.get_current_pass_count()
    with GraphTransformObserver(gm, "rewire_only", log_url=str(tmp_path)):
        nodes["output"].replace_input_with(nodes["add_2"], nodes["mul_1"])  # no node made or erased
    assert list(tmp_path.iterdir()) == []
    observer = GraphTransformObserver(gm, "swap", log_url=str(tmp_path))
    assert GraphTransformObserver.get_current_pass_count() == start + 2
    with observer:
        with gm.graph.inserting_after(nodes["add"]):
            neg = gm.graph.call_function(torch.neg, (nodes["add"],))
        nodes["add_2"].replace_all_uses_with(neg)
        gm.graph.erase_node(nodes["add_2"])
    prefix = f"pass_{start + 2}_swap"
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        f"{prefix}_input_graph.dot",
        f"{prefix}_output_graph.dot",
    ]
    before, after = (
        _colors(tmp_path / f"{prefix}_input_graph.dot"),
        _colors(tmp_path / f"{prefix}_output_graph.dot"),
    )
    assert {name for name, color in before.items() if color == "yellow"} == observer.erased_nodes == {"add_2"}
    assert {name for name, color in after.items() if color == "yellow"} == observer.created_nodes == {"neg"}
    assert set(before.values()) | set(after.values()) == {"yellow", "grey"}
    assert set(after) == {node.name for node in gm.graph.nodes}
    assert _hook_counts(gm) == [0, 0, 0]
    with pytest.raises(FileNotFoundError):  # as torch.fx: the folder must exist
        with GraphTransformObserver(gm, "nowhere", log_url=str(tmp_path / "missing")):
            gm.graph.call_function(torch.neg, (nodes["x"],))


def test_disabled_by_torch_compiler_bisector_as_torch_fx(monkeypatch) -> None:
    from torch._inductor.compiler_bisector import CompilerBisector

    asked: List[Any] = []

    def disable_subsystem(backend, subsystem, debug_info=None):
        asked.append((backend, subsystem, debug_info and debug_info()))
        return True

    monkeypatch.setattr(CompilerBisector, "disable_subsystem", staticmethod(disable_subsystem))
    outcomes = []
    for library, observer_class in ((fx, GraphTransformObserver), (torch.fx, OracleObserver)):
        observer = observer_class(library.symbolic_trace(_program), "my_pass", subsystem="sub")
        ran: List[str] = []
        outcomes.append(
            (observer.apply_gm_pass(ran.append), observer.apply_graph_pass(ran.append), ran, asked[:])
        )
        assert observer_class(library.symbolic_trace(_program), "other")._check_disable_pass() is False
        asked.clear()
    assert outcomes[0] == outcomes[1]


class _Neg(torch.nn.Module):
    def forward(self, x):
        return torch.neg(x)


def _observe_exported(observer_class) -> List[Any]:
    """An inactive observer over a torch.export module, with a deepcopy inside: it touches nothing."""
    gm = torch.export.export(_Neg(), (torch.rand(4),), strict=True).module()
    with observer_class(gm, "test") as observer:
        copied = copy.deepcopy(gm)
    hooks = [
        len(module.__dict__[name])
        for module in (gm, copied)
        for name in ("_create_node_hooks", "_deepcopy_hooks")
    ]
    return [
        observer.active if hasattr(observer, "active") else False,
        hooks,
        [n.name for n in copied.graph.nodes],
    ]


def test_inactive_observer_takes_a_torch_fx_module_as_torch_fx_does():
    assert _observe_exported(GraphTransformObserver) == _observe_exported(OracleObserver)
