"""fxkit.traceback against torch.fx.traceback: the current meta, its context managers, and the
provenance a Transformer carries from old nodes to the nodes it traces."""

from __future__ import annotations

import copy
import importlib
from typing import Any, Dict, List, Tuple

import pytest
import torch
import torch.fx

import fxkit
import fxkit.traceback

BOTH = [torch.fx, fxkit]


def _tb(fx: Any) -> Any:
    return importlib.import_module(fx.__name__ + ".traceback")


def _state_walk(fx: Any) -> List[Any]:
    """Every observable step of the current-meta state machine."""
    tb, seen = _tb(fx), []
    seen.append((tb.has_preserved_node_meta(), dict(tb.get_current_meta())))
    tb.set_stack_trace(["ignored\n"])  # not preserving: no effect
    tb.set_grad_fn_seq_nr(3)
    seen.append(dict(tb.get_current_meta()))
    with tb.preserve_node_meta():
        seen.append((tb.has_preserved_node_meta(), tb.format_stack()))
        tb.set_stack_trace(['File "a.py", line 1, in f\n', "    x = 1\n"])
        seen.append((dict(tb.get_current_meta()), tb.format_stack()))
        for seq_nr in (3, 5):
            tb.set_grad_fn_seq_nr(seq_nr)
            seen.append(dict(tb.get_current_meta()))
        for _ in range(2):
            tb.reset_grad_fn_seq_nr()
            seen.append(dict(tb.get_current_meta()))
        with tb.preserve_node_meta(False):
            seen.append((tb.has_preserved_node_meta(), dict(tb.get_current_meta())))
        with tb.annotate({"k": 1}):
            with tb.annotate({"j": 2, "k": 3}):
                seen.append(dict(tb.get_current_meta()))
            seen.append(dict(tb.get_current_meta()))
    seen.append((tb.has_preserved_node_meta(), dict(tb.get_current_meta())))
    return seen


def test_current_meta_state_matches_torch_fx() -> None:
    assert _state_walk(fxkit) == _state_walk(torch.fx)


def _meta_view(meta: Dict[str, Any]) -> Dict[str, Any]:
    """A node's meta with ``from_node`` reduced to what does not depend on object ids."""
    view = {key: copy.deepcopy(value) for key, value in meta.items() if key != "from_node"}
    if "from_node" in meta:
        view["from_node"] = meta["from_node"]
    if "from_node" in view:
        view["from_node"] = [_source_view(source) for source in view["from_node"]]
    return view


def _source_view(source: Any) -> Tuple[Any, ...]:
    return (
        source.name,
        source.pass_name,
        [a.value for a in source.action],
        [_source_view(s) for s in source.from_node],
    )


def _set_current_meta_run(fx: Any) -> List[Any]:
    tb = _tb(fx)
    graph = fx.Graph()
    x = graph.placeholder("x")
    relu = graph.call_function(torch.relu, (x,))
    relu.meta.update(stack_trace="S", custom={"c": 1}, other=2)
    seen = []
    with tb.set_current_meta(relu, "P"):  # not preserving: nothing changes
        seen.append(dict(tb.get_current_meta()))
    with tb.preserve_node_meta():
        with tb.set_current_meta(x):  # a node without meta leaves the current meta alone
            seen.append(dict(tb.get_current_meta()))
        with tb.set_current_meta(relu, "P"):
            seen.append(_meta_view(tb.get_current_meta()))
            seen.append(tb.format_stack())
            # A tracer copies provenance (not arbitrary keys) onto the nodes it creates.
            new_graph = fx.Graph()
            tracer = fx.proxy.GraphAppendingTracer(new_graph)
            with tb.annotate({"extra": True}):
                made = tracer.create_proxy("call_function", torch.neg, (), {}).node
            seen.append(sorted(_meta_view(made.meta).items(), key=str))
    return seen


def test_set_current_meta_and_tracer_copy_match_torch_fx() -> None:
    assert _set_current_meta_run(fxkit) == _set_current_meta_run(torch.fx)


class _Model(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) + 1


def _transformed_meta(fx: Any, preserve: bool) -> List[Any]:
    tb = _tb(fx)
    gm = fx.symbolic_trace(_Model())
    for node in gm.graph.nodes:
        node.meta.update(stack_trace=f"trace of {node.name}", custom={"who": node.name}, unrelated=1)
        node.meta["nn_module_stack"] = {"m": ("m", "Model")}

    class Doubler(fx.Transformer):
        def call_function(self, target: Any, args: Any, kwargs: Any) -> Any:
            seen.append(sorted(tb.get_current_meta()))
            return super().call_function(target, args, kwargs) * 2

    seen: List[Any] = []
    if preserve:
        with tb.preserve_node_meta():
            out = Doubler(gm).transform()
    else:
        out = Doubler(gm).transform()
    again = fx.Transformer(out).transform()  # from_node grows a history
    for graph_module in (out, again):
        seen.append(
            [(n.op, n.name, sorted(_meta_view(n.meta).items(), key=str)) for n in graph_module.graph.nodes]
        )
    seen.append(sorted(tb.get_graph_provenance_json(again.graph)))
    return seen


@pytest.mark.parametrize("preserve", [False, True])
def test_transformer_carries_node_meta_like_torch_fx(preserve: bool) -> None:
    assert _transformed_meta(fxkit, preserve) == _transformed_meta(torch.fx, preserve)


def test_node_source_records_match_torch_fx() -> None:
    def records(fx: Any) -> List[Any]:
        tb = _tb(fx)
        graph = fx.Graph()
        relu = graph.call_function(torch.relu, (graph.placeholder("x"),))
        relu.meta["from_node"] = [tb.NodeSource(relu, "first", tb.NodeSourceAction.CREATE)]
        source = tb.NodeSource(relu, "p", [tb.NodeSourceAction.REPLACE, tb.NodeSourceAction.CREATE])
        empty = tb.NodeSource(None)
        text = repr(source).replace(str(id(graph)), "ID")
        found = {**source.to_dict(), "graph_id": None}
        found["from_node"] = [{**d, "graph_id": None} for d in found["from_node"]]
        return [text, found, empty.to_dict(), source == tb.NodeSource(relu, "p", source.action)]

    assert records(fxkit) == records(torch.fx)


def test_annotate_fn_and_replay_node() -> None:
    tb = fxkit.traceback
    calls = []

    @tb.annotate_fn({"stage": 1})
    def body() -> None:
        calls.append(dict(tb.get_current_meta()))

    body()
    assert calls == [{"custom": {"stage": 1}}] and tb.get_current_meta() == {}
    graph = fxkit.Graph()
    node = graph.placeholder("x")
    with tb.set_current_replay_node(node):
        assert tb.get_current_replay_node() is node
    assert tb.get_current_replay_node() is None


def test_annotate_while_tracing_matches_torch_fx() -> None:
    def traced(fx: Any) -> List[Any]:
        tb = _tb(fx)

        def f(x: torch.Tensor) -> torch.Tensor:
            with tb.annotate({"region": "a"}):
                y = x + 1
            return y * 2

        out = []
        for preserve in (False, True):
            with tb.preserve_node_meta(preserve):
                gm = fx.symbolic_trace(f)
            out.append([(n.name, n.meta.get("custom"), "seq_nr" in n.meta) for n in gm.graph.nodes])
        return out

    assert traced(fxkit) == traced(torch.fx)


def _switches_walk(fx: Any) -> List[Any]:
    tb = _tb(fx)
    seen: List[Any] = [
        tb.GRADIENT_ACC_SPECIAL_STACK,
        tb.MEMORY_BUDGET_ANNOTATION_KEY,
        tb._is_preserving_node_seq_nr(),
    ]
    with tb._preserve_node_seq_nr():
        seen.append(tb._is_preserving_node_seq_nr())
    with tb._set_autograd_backward():
        seen.append(dict(tb.get_current_meta()))
    with tb.preserve_node_meta():
        with tb._set_autograd_backward():
            seen.append(dict(tb.get_current_meta()))
        seen.append(dict(tb.get_current_meta()))
        tb._mark_autograd_backward()
        with tb._set_autograd_backward(False):
            seen.append(dict(tb.get_current_meta()))
        tb._reset_autograd_backward()
        with tb._set_regional_inductor_subgraph_name("region"):
            seen.append((tb._get_regional_inductor_subgraph_name(), dict(tb.get_current_meta())))
    seen.append(tb._get_regional_inductor_subgraph_name())
    return seen


def test_private_switches_match_torch_fx() -> None:
    assert _switches_walk(fxkit) == _switches_walk(torch.fx)
