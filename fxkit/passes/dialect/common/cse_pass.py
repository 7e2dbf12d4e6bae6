"""Common subexpression elimination as a ``PassBase`` (torch.fx's
``passes.dialect.common.cse_pass.CSEPass``)."""

from __future__ import annotations

from typing import Any, Dict, Optional, Set, Tuple

import torch

from fxkit import _foreign
from fxkit.graph import Graph
from fxkit.graph_module import GraphModule
from fxkit.node import Node, map_arg
from fxkit.passes.infra.pass_base import PassBase, PassResult

__all__ = ["CSEPass", "get_CSE_banned_ops"]

aten = torch.ops.aten

_UNHASHABLE = object()


def get_CSE_banned_ops() -> Set[Any]:
    """ATen operator packets whose calls are never merged: random and in-place operators."""
    return {
        aten._fused_dropout,
        aten._standard_gamma,
        aten.bernoulli,
        aten.binomial,
        aten.dropout,
        aten.native_dropout,
        aten.normal,
        aten.poisson,
        aten.multinomial,
        aten.rand,
        aten.rand_like,
        aten.randn,
        aten.randint,
        aten.randperm,
        aten.rrelu,
        aten.add_,
        aten.div_,
        aten.lerp_,
        aten.mul_,
        aten.pow_,
        aten.relu_,
        aten.sigmoid_,
        aten.sub_,
        aten.tanh_,
    }


def _key(value: Any) -> Any:
    """A hashable stand-in for an argument structure, or _UNHASHABLE."""
    if isinstance(value, (list, tuple)):
        items = tuple(_key(item) for item in value)
        return _UNHASHABLE if _UNHASHABLE in items else (type(value).__name__, items)
    if isinstance(value, dict):
        items = tuple((key, _key(item)) for key, item in value.items())
        return _UNHASHABLE if any(item is _UNHASHABLE for _, item in items) else ("dict", items)
    if isinstance(value, slice):
        return ("slice", _key(value.start), _key(value.stop), _key(value.step))
    try:
        hash(value)
    except TypeError:
        return _UNHASHABLE
    return (type(value), value)


class CSEPass(PassBase):
    """Replace each call that repeats an earlier one (same op, target and arguments) by the
    earlier call's value; returns a new module.

    Calls of ``banned_ops`` (OpOverloadPackets, or their overloads) are never merged; the default
    is ``get_CSE_banned_ops()``. Unlike torch.fx, fxkit also never merges impure calls (random
    or mutating operators, in-place methods such as ``x.add_(1)``), since merging them changes
    the result.
    """

    _converts_torch_fx = True  # call only reads: the result is a new module

    def __init__(self, banned_ops: Optional[Set[Any]] = None) -> None:
        self.banned_ops: Set[Any] = get_CSE_banned_ops() if banned_ops is None else set(banned_ops)
        super().__init__()

    def _mergeable(self, node: Node) -> bool:
        if node.op not in ("call_function", "call_method", "call_module") or node.is_impure():
            return False
        target = node.target
        if node.op == "call_method":
            return not str(target).endswith("_")
        if node.op == "call_function":
            packet = getattr(target, "overloadpacket", None)
            if target in self.banned_ops or (packet is not None and packet in self.banned_ops):
                return False
            return not getattr(target, "__name__", "").endswith("_")
        return True

    def call(self, graph_module: GraphModule) -> PassResult:
        graph_module = _foreign.convert(graph_module)  # only read: the result is a new module
        new_graph = Graph()
        copies: Dict[Node, Node] = {}
        seen: Dict[Tuple[Any, ...], Node] = {}
        modified = False
        for node in graph_module.graph.nodes:
            if not self._mergeable(node):
                copies[node] = new_graph.node_copy(node, copies.__getitem__)
                continue
            args = map_arg(node.args, copies.__getitem__)
            kwargs = map_arg(node.kwargs, copies.__getitem__)
            signature = (node.op, _key(node.target), _key(args), _key(kwargs))
            if _UNHASHABLE in signature:
                copies[node] = new_graph.node_copy(node, copies.__getitem__)
                continue
            earlier = seen.get(signature)
            if earlier is not None:
                copies[node] = earlier
                modified = True
                continue
            copies[node] = seen[signature] = new_graph.node_copy(node, copies.__getitem__)
        return PassResult(
            GraphModule(graph_module, new_graph, class_name=type(graph_module).__name__), modified
        )
