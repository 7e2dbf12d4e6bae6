"""Common subexpression elimination: later nodes that repeat an earlier computation are removed.

Two nodes are the same computation when they have the same op, target, args and kwargs (after
earlier duplicates were replaced). Placeholders, get_attr, output and impure nodes (side effects,
random ops, in-place methods) are never merged, and constants only match constants of the same
type, so ``x + 1``, ``x + 1.0`` and ``x + True`` stay distinct.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Hashable, Iterable, Optional

import torch

from fxkit import _foreign
from fxkit.graph_module import GraphModule
from fxkit.node import Node
from fxkit.passes.infra.pass_base import PassBase, PassResult

__all__ = ["PassResult", "CSEPass", "eliminate_common_subexpressions"]


def _key(value: Any) -> Hashable:
    """A hashable stand-in for an argument, equal only for interchangeable arguments."""
    if isinstance(value, Node):
        return ("node", value)
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_key(item) for item in value))
    if isinstance(value, dict):
        return ("dict", tuple((key, _key(item)) for key, item in value.items()))
    if isinstance(value, slice):
        return ("slice", _key(value.start), _key(value.stop), _key(value.step))
    if isinstance(value, torch.Tensor):
        return ("tensor", id(value))  # the same constant object, not equal contents
    try:
        hash(value)
    except TypeError:
        return ("object", id(value))
    return (type(value), value)


def _is_mutating_method(node: Node) -> bool:
    target = node.target
    return (
        node.op == "call_method"
        and isinstance(target, str)
        and target.endswith("_")
        and not target.endswith("__")
    )


def eliminate_common_subexpressions(gm: GraphModule, banned_ops: Optional[Iterable[Any]] = None) -> bool:
    """Merge repeated computations in ``gm.graph`` in place; recompile and return True if any
    node was removed. Targets in ``banned_ops`` are never merged."""
    _foreign.reject(gm, "eliminate_common_subexpressions")  # edits gm in place
    banned = list(banned_ops or ())
    seen: Dict[Hashable, Node] = {}
    removed = False
    graph = gm.graph
    for node in list(graph.nodes):
        if node.op in ("placeholder", "get_attr", "output") or node.is_impure() or _is_mutating_method(node):
            continue
        if any(node.target is op or node.target == op for op in banned):
            continue
        key = (
            node.op,
            _key(node.target) if isinstance(node.target, str) else ("target", node.target),
            _key(node.args),
            _key(node.kwargs),
        )
        try:
            earlier = seen.get(key)
        except TypeError:
            continue  # a target that cannot be hashed: leave the node alone
        if earlier is None:
            seen[key] = node
            continue
        node.replace_all_uses_with(earlier)
        graph.erase_node(node)
        removed = True
    if removed:
        gm.recompile()
    return removed


class CSEPass(PassBase):
    """A pass (torch.fx's ``CSEPass`` shape): ``CSEPass()(gm)`` returns a PassResult holding a
    new GraphModule with duplicates removed; ``gm`` is not changed."""

    _converts_torch_fx = True  # call only reads: the result is a new module

    def __init__(self, banned_ops: Optional[Iterable[Any]] = None) -> None:
        self.banned_ops = set(banned_ops or ())

    def call(self, graph_module: GraphModule) -> PassResult:
        graph_module = _foreign.convert(graph_module)  # only read: the result is a new module
        copy_module = GraphModule(graph_module, copy.deepcopy(graph_module.graph))
        modified = eliminate_common_subexpressions(copy_module, self.banned_ops)
        return PassResult(copy_module, modified)
