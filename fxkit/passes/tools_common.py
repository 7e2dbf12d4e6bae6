"""Small helpers shared by the splitting and lowering passes (torch.fx's ``passes.tools_common``):
naming a node's target, telling tensor-valued nodes apart, and putting a graph back in
dependency order."""

from __future__ import annotations

import builtins
import collections
import heapq
import operator
import types
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Set, Tuple, Union

import torch

from fxkit import _foreign
from fxkit.graph_module import GraphModule
from fxkit.node import Node, _qualified_name

__all__ = (
    "get_acc_ops_name get_node_target is_node_output_tensor FxNetAccFusionsFinder legalize_graph"
    " stable_topological_sort"
).split()

CALLABLE_NODE_OPS = {"call_module", "call_function", "call_method"}
NodeList = List[Node]
NodeSet = Set[Node]
Names = List[str]
Tensors = Union[Tuple[torch.Tensor], List[torch.Tensor]]
TensorOrTensors = Union[torch.Tensor, Tensors]

# Scalar (shape arithmetic) operators that legalize_graph schedules as early as possible.
_PRIORITIZED_OPS = tuple(
    getattr(operator, name) for name in "add sub mul floordiv truediv mod le lt ge gt eq ne".split()
)


def _get_qualified_name(func: Any) -> str:
    """``module.name`` of a callable as torch.fx's tools print it (``_operator.add``, ``torch.relu``,
    ``torch.ops.aten.add.Tensor``; builtins bare)."""
    name = func.__name__
    if getattr(builtins, name, None) is func:
        return name
    if name == "<lambda>":
        raise RuntimeError(f"Unable to represent lambda {func!r} by a qualified name; use a named function")
    if isinstance(func, (types.MethodDescriptorType, types.WrapperDescriptorType)):
        return _qualified_name(func)
    module = (func.__module__ or "").replace("torch._ops", "torch.ops")
    return f"{module}.{name}" if module else name


def get_acc_ops_name(k: Union[str, type]) -> str:
    """A printable name for a call target: strings as they are, callables as ``module.name``."""
    if isinstance(k, str):
        return k
    module = k.__module__
    if module and "acc_ops" in module:
        return f"acc_ops.{k.__name__}"
    module = module.replace("torch._ops", "torch.ops")
    return f"{module if module else ''}.{k.__name__}"


def get_node_target(submodules: Mapping[str, torch.nn.Module], node: Node) -> str:
    """The name of what ``node`` calls: the module's type name, the function's qualified name or
    the method name."""
    _foreign.reject(node, "get_node_target")
    if node.op not in CALLABLE_NODE_OPS:
        raise AssertionError(
            "Expect op types of " + ", ".join(sorted(CALLABLE_NODE_OPS)) + f", but found {node.op}"
        )
    if node.op == "call_module":
        if node.target not in submodules:
            raise AssertionError(f"{node.target} not found in submodules")
        return torch.typename(submodules[node.target])
    if node.op == "call_function":
        target: Any = node.target
        if getattr(target, "__module__", None) and "acc_ops" in target.__module__:
            return f"acc_ops.{target.__name__}"
        return _get_qualified_name(target)
    return node.target  # type: ignore[return-value]


def is_node_output_tensor(node: Node) -> bool:
    """Whether ``node.meta['type']`` (set by ShapeProp) says the node produces a tensor."""
    _foreign.reject(node, "is_node_output_tensor")
    kind = node.meta.get("type", None)
    return kind is not None and isinstance(kind, type) and issubclass(kind, torch.Tensor)


class FxNetAccFusionsFinder:
    """Finds groups of nodes that must run on the same side of an acc/non-acc split: an acc node
    whose value flows through non-acc nodes back into acc nodes is fused with everything on those
    paths. Returns ``{node: its fusion group}`` for the acc nodes of a group with more than one node.
    """

    def __init__(self, module: GraphModule, acc_nodes: NodeSet) -> None:
        _foreign.reject(module, "FxNetAccFusionsFinder")  # its groups are nodes of module
        self.module, self.acc_nodes = module, acc_nodes
        self.nodes = list(module.graph.nodes)

    # fmt: off
    @dataclass
    class FusionGroup:
        top_node_idx: int; nodes: NodeSet; inputs: NodeSet; nodes_need_process: NodeSet  # noqa: E702
        # fmt: on

        def add_node(self, node: Node) -> None:
            if node not in self.nodes:
                self._take(node)

        def _take(self, node: Node) -> None:
            self.nodes.add(node)
            self.nodes_need_process.add(node)
            self.inputs.discard(node)
            self.inputs.update(
                used
                for used in node.all_input_nodes
                if used.op in CALLABLE_NODE_OPS and used not in self.nodes
            )

    def recursive_add_node(
        self,
        fusion_group: "FxNetAccFusionsFinder.FusionGroup",
        inputs: Union[NodeSet, NodeList],
        visited: Union[NodeSet, None] = None,
    ) -> bool:
        """Add to ``fusion_group`` every node on a path from ``inputs`` up to the group; True when
        one of ``inputs`` reaches the group."""
        reaches = False
        for candidate in inputs:
            seen_before = visited is not None and candidate in visited
            if visited is not None:
                visited.add(candidate)
            below_group = self.nodes.index(candidate) < fusion_group.top_node_idx
            if seen_before or candidate.op not in CALLABLE_NODE_OPS or below_group:
                continue
            if candidate in fusion_group.nodes:
                return True
            joins = self.recursive_add_node(fusion_group, candidate.all_input_nodes, visited)
            if joins:
                fusion_group.add_node(candidate)
            reaches = reaches or joins
        return reaches

    def __call__(self) -> Dict[Node, NodeSet]:
        result: Dict[Node, NodeSet] = {}
        for node in [node for node in self.nodes if node in self.acc_nodes]:
            if node in result or node.op not in CALLABLE_NODE_OPS or "tensor_meta" in node.meta:
                continue
            group = self.FusionGroup(
                top_node_idx=self.nodes.index(node),
                nodes={node},
                inputs=set(node.all_input_nodes),
                nodes_need_process={node},
            )
            while group.nodes_need_process:
                current = group.nodes_need_process.pop()
                self.recursive_add_node(group, group.inputs, visited=set())
                if "tensor_meta" not in current.meta:
                    for user in current.users:
                        if user.op in CALLABLE_NODE_OPS and user not in group.nodes:
                            group.add_node(user)
                for used in current.all_input_nodes:
                    if used.op in CALLABLE_NODE_OPS and used not in group.nodes:
                        if "tensor_meta" not in used.meta:
                            group.add_node(used)
            if not (group.nodes <= self.acc_nodes):
                self.acc_nodes -= group.nodes
            else:
                for member in group.nodes:
                    result[member] = group.nodes
        return result


def _copy_order_into(gm: GraphModule, order: List[Node]) -> GraphModule:
    """Move the graph's nodes into ``order`` (every node exactly once) and recompile."""
    graph = gm.graph
    anchor = graph._root  # type: ignore[attr-defined]
    for node in order:
        if anchor._next is not node:
            anchor.append(node)
        anchor = node
    gm.recompile()
    return gm


def _cycle_message(graph: Any, placed: Set[Node]) -> str:
    remaining = [node for node in graph.nodes if node not in placed]
    return f"Input graph has cycles, unable to add {remaining}"


def legalize_graph(gm: GraphModule) -> GraphModule:
    """Reorder the graph topologically (Kahn's algorithm), scheduling shape arithmetic early.

    Nodes that become ready are taken in order, except that scalar arithmetic and comparisons
    (``operator.add``, ``operator.eq``, ...) jump the queue.
    """
    _foreign.reject(gm, "legalize_graph")  # reorders gm in place
    nodes = list(gm.graph.nodes)
    waiting = collections.Counter(user for node in nodes for user in node.users)
    ready = collections.deque(node for node in nodes if not waiting[node])
    order: List[Node] = []
    while ready:
        node = ready.popleft()
        order.append(node)
        for user in node.users:
            waiting[user] -= 1
            if waiting[user]:
                continue
            jumps_queue = user.op == "call_function" and user.target in _PRIORITIZED_OPS
            (ready.appendleft if jumps_queue else ready.append)(user)
    if len(order) < len(nodes):
        raise RuntimeError(_cycle_message(gm.graph, set(order)))
    return _copy_order_into(gm, order)


def stable_topological_sort(gm: GraphModule) -> GraphModule:
    """Reorder the graph so every node comes after its inputs, moving as few nodes as possible:
    at each step the ready node that comes first in the current order is placed next."""
    _foreign.reject(gm, "stable_topological_sort")  # reorders gm in place
    nodes = list(gm.graph.nodes)
    position = {node: index for index, node in enumerate(nodes)}
    waiting = {node: len(node.all_input_nodes) for node in nodes}
    ready = [position[node] for node in nodes if waiting[node] == 0]
    heapq.heapify(ready)
    order: List[Node] = []
    while ready:
        node = nodes[heapq.heappop(ready)]
        order.append(node)
        for user in node.users:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, position[user])
    if len(order) < len(nodes):
        raise AssertionError(_cycle_message(gm.graph, set(order)))
    return _copy_order_into(gm, order)
