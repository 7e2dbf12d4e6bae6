"""Fuse groups of nodes into submodules (torch.fx's ``passes.utils.fuser_utils``)."""

from __future__ import annotations

import collections
import copy
import operator
from typing import Dict, Iterator, List, Optional, Tuple

from fxkit import _foreign
from fxkit.graph import Graph
from fxkit.graph_module import GraphModule
from fxkit.node import Node
from fxkit.passes.tools_common import NodeList, NodeSet, legalize_graph, stable_topological_sort  # noqa: F401
from fxkit.passes.utils.common import lift_subgraph_as_module  # noqa: F401  (torch.fx has the name here too)

__all__ = [
    "topo_sort",
    "validate_partition",
    "fuse_as_graphmodule",
    "insert_subgm",
    "erase_nodes",
    "fuse_by_partitions",
]


def topo_sort(nodes: NodeList) -> NodeList:
    """``nodes`` ordered so each comes after those of ``nodes`` it reads (dependencies outside
    ``nodes`` are ignored): reverse post-order of a depth-first walk along users, starting from
    and branching to the nodes latest in ``nodes`` first, which is the order torch.fx gives."""
    _foreign.reject_all(nodes, "topo_sort")
    position = {node: index for index, node in enumerate(nodes)}

    def later_first(node: Node) -> Iterator[Node]:
        return iter(
            sorted((user for user in node.users if user in position), key=position.__getitem__, reverse=True)
        )

    visited: NodeSet = set()
    finished: NodeList = []
    for start in reversed(nodes):
        if start in visited:
            continue
        visited.add(start)
        stack = [(start, later_first(start))]
        while stack:
            node, users = stack[-1]
            for user in users:
                if user not in visited:
                    visited.add(user)
                    stack.append((user, later_first(user)))
                    break
            else:
                finished.append(node)
                stack.pop()
    finished.reverse()
    return finished


def validate_partition(partition: NodeList) -> bool:
    """False when a path leaves ``partition`` and comes back into it (fusing it would make a cycle)."""
    _foreign.reject_all(partition, "validate_partition")
    members: NodeSet = set(partition)
    outside_users = [user for node in partition for user in node.users if user not in members]
    seen: NodeSet = set()
    stack = list(outside_users)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node in members:
            return False
        stack.extend(node.users)
    return True


def fuse_as_graphmodule(
    gm: GraphModule,
    nodes: NodeList,
    module_name: str,
    partition_lookup_table: Optional[Dict[Node, Optional[int]]] = None,
    *,
    always_return_tuple: bool = False,
) -> Tuple[GraphModule, Tuple[Node, ...], Tuple[Node, ...]]:
    """Copy ``nodes`` (in topological order, all of ``gm``) into a new GraphModule of class name
    ``module_name``; values read from outside become its placeholders, in order of first use.

    Returns ``(submodule, original input nodes, original output nodes)``; the outputs are the
    nodes read outside the group, in ``nodes`` order. A single output is returned bare unless
    ``always_return_tuple``.
    """
    _foreign.reject(gm, "fuse_as_graphmodule")  # it answers with nodes of gm
    members = partition_lookup_table if partition_lookup_table is not None else dict.fromkeys(nodes)
    for node in nodes:
        if node.graph is not gm.graph:
            raise AssertionError(f"{node} is not in the graph of the module being fused")
        if node.op == "placeholder":
            raise AssertionError(
                f"{node} is a placeholder; an input of the graph cannot be fused into a submodule "
                "(torch.fx would build a module that cannot be called). Leave placeholders out of "
                "the partition, e.g. make the operator support decline nodes whose op is not call_*"
            )
    subgraph = Graph()
    copies: Dict[Node, Node] = {}
    inputs: Dict[Node, None] = {}

    def remap(value: Node) -> Node:
        if value in members:
            if value not in copies:
                raise AssertionError(
                    f"{value.name} is used by a fused node before it is defined; pass the nodes "
                    "in topological order (see topo_sort)"
                )
            return copies[value]
        if value not in inputs:
            placeholder = subgraph.placeholder(value.name, type_expr=value.type)
            placeholder.meta = copy.copy(value.meta)
            inputs[value] = None
            copies[value] = placeholder
        return copies[value]

    for node in nodes:
        copies[node] = subgraph.node_copy(node, remap)

    outputs = [node for node in nodes if any(user not in members for user in node.users)]
    results = tuple(copies[node] for node in outputs)
    subgraph.output(results[0] if len(results) == 1 and not always_return_tuple else results)
    return GraphModule(gm, subgraph, class_name=module_name), tuple(inputs), tuple(outputs)


def insert_subgm(
    gm: GraphModule,
    sub_gm: GraphModule,
    orig_inputs: Tuple[Node, ...],
    orig_outputs: Tuple[Node, ...],
    insertion_point: Optional[Node] = None,
) -> GraphModule:
    """Add ``sub_gm`` to ``gm`` under its class name, call it on ``orig_inputs`` right after
    ``insertion_point`` (default: the last output) and make the users of ``orig_outputs`` read its
    results. The fused nodes stay in the graph (see ``erase_nodes``)."""
    _foreign.reject(gm, "insert_subgm")  # edits gm in place
    _foreign.reject(sub_gm, "insert_subgm")
    name = type(sub_gm).__name__
    gm.add_submodule(name, sub_gm)
    anchor = insertion_point if insertion_point is not None else orig_outputs[-1]
    returns_tuple = isinstance(sub_gm.graph.output_node().args[0], tuple)
    with gm.graph.inserting_after(anchor):
        call = gm.graph.call_module(name, args=tuple(orig_inputs))
    if returns_tuple:
        call.meta["val"] = tuple(original.meta.get("val", None) for original in orig_outputs)
        anchor = call
        for index, original in enumerate(orig_outputs):
            with gm.graph.inserting_after(anchor):
                item = gm.graph.call_function(operator.getitem, (call, index))
            item.meta = copy.copy(original.meta)
            original.replace_all_uses_with(item, propagate_meta=False)
            anchor = item
    else:
        call.meta = copy.copy(orig_outputs[0].meta)
        orig_outputs[0].replace_all_uses_with(call, propagate_meta=False)
    return gm


def erase_nodes(gm: GraphModule, nodes: NodeList) -> None:
    """Erase ``nodes`` (no longer used outside themselves) from ``gm``'s graph, last first."""
    _foreign.reject(gm, "erase_nodes")  # edits gm in place
    for node in reversed(nodes):
        gm.graph.erase_node(node)


def _check_partitions_acyclic(gm: GraphModule, partitions: List[NodeList]) -> None:
    """Refuse (before editing anything) partitions that would read from each other in a cycle
    once each is fused into one node."""
    group: Dict[Node, object] = {}
    for index, partition in enumerate(partitions):
        for node in partition:
            if node in group:
                raise AssertionError(
                    f"node {node.name} is in more than one partition; give each node one partition"
                )
            group[node] = index
    successors: Dict[object, Dict[object, None]] = collections.defaultdict(dict)
    for node in gm.graph.nodes:
        source = group.get(node, node)
        for user in node.users:
            target = group.get(user, user)
            if target != source:
                successors[source][target] = None
    state: Dict[object, int] = {}
    for start in list(successors):
        if start in state:
            continue
        stack = [(start, iter(successors[start]))]
        state[start] = 1
        while stack:
            current, pending = stack[-1]
            following = next(pending, None)
            if following is None:
                state[current] = 2
                stack.pop()
            elif state.get(following) == 1:
                raise AssertionError(
                    "Invalid partition, found dependency cycles: once fused, the partitions "
                    f"would read from each other in a cycle (through {following}); merge them or split differently"
                )
            elif following not in state:
                state[following] = 1
                stack.append((following, iter(successors.get(following, ()))))


def fuse_by_partitions(
    gm: GraphModule,
    partitions: List[Dict[Node, Optional[int]]],
    prefix: str = "fused_",
    always_return_tuple: bool = False,
) -> GraphModule:
    """Fuse each partition (a dict whose keys are nodes) into submodule ``<prefix><index>``;
    edits and returns ``gm``. A partition that a path leaves and re-enters is refused."""
    _foreign.reject(gm, "fuse_by_partitions")  # edits gm in place
    ordered_partitions = [topo_sort(list(partition)) for partition in partitions]
    for index, ordered in enumerate(ordered_partitions):
        if not validate_partition(ordered):
            raise AssertionError(
                f"Invalid partition, found dependency cycles: partition {index} "
                f"({[node.name for node in ordered]}) has a path that leaves it and comes back"
            )
    _check_partitions_acyclic(gm, ordered_partitions)
    for index, (partition, ordered) in enumerate(zip(partitions, ordered_partitions)):
        submodule, inputs, outputs = fuse_as_graphmodule(
            gm, ordered, f"{prefix}{index}", partition, always_return_tuple=always_return_tuple
        )
        insert_subgm(gm, submodule, inputs, outputs)
        erase_nodes(gm, ordered)
    stable_topological_sort(gm)
    gm.graph.lint()
    return gm
