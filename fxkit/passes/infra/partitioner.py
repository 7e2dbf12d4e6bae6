"""Group the nodes a backend supports into as few acyclic partitions as possible and fuse each
into a submodule (torch.fx's ``passes.infra.partitioner``)."""

from __future__ import annotations

import itertools
import operator
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from fxkit import _foreign
from fxkit.graph_module import GraphModule
from fxkit.node import Node
from fxkit.passes.operator_support import OperatorSupportBase
from fxkit.passes.tools_common import _get_qualified_name
from fxkit.passes.utils.fuser_utils import fuse_by_partitions, validate_partition

__all__ = ["CapabilityBasedPartitioner", "Partition"]


class Partition:
    """A set of nodes fused together; ``nodes`` maps each node to its position (counted from the
    end of the graph)."""

    def __init__(
        self,
        id: Optional[int] = None,
        nodes: Optional[Iterable[Node]] = None,
        node_orders: Optional[Iterable[int]] = None,
    ) -> None:
        self.id = id
        self.nodes: Dict[Node, Optional[int]] = {}
        if nodes is not None:
            if node_orders is None:
                self.nodes = dict.fromkeys(nodes, None)
            else:
                self.nodes = dict(zip(nodes, node_orders))

    def __repr__(self) -> str:
        return str(self.nodes)

    def size(self) -> int:
        return len(self.nodes)

    def add_node(self, node: Node, node_order: Optional[int] = None) -> None:
        _foreign.reject(node, "Partition.add_node")
        self.nodes[node] = node_order

    def remove_node(self, node: Node) -> None:
        _foreign.reject(node, "Partition.remove_node")
        self.nodes.pop(node)


class _DependencyViewer:
    """Every node's transitive users, computed once."""

    def __init__(self, graph_module: GraphModule) -> None:
        self.downstreams: Dict[Node, Set[Node]] = {}
        for node in reversed(graph_module.graph.nodes):
            below: Set[Node] = set()
            for user in node.users:
                below.add(user)
                below |= self.downstreams[user]
            self.downstreams[node] = below

    def downstreams_of(self, node: Node) -> Set[Node]:
        return self.downstreams[node]


class CapabilityBasedPartitioner:
    """Partitions ``graph_module`` by ``operator_support`` and fuses each partition into a
    ``fused_<i>`` submodule.

    Nodes are visited from the output backwards; a supported node starts a partition that is
    merged with its users' partitions (and, unless ``skip_horizontal_fusion``, with every other
    partition) whenever the merge keeps the partition graph acyclic. Single-node partitions are
    dropped unless ``allows_single_node_partition`` or the node's target is listed in
    ``allowed_single_node_partition_ops``; ``non_compute_ops`` (by qualified name) never form a
    partition on their own and are trimmed from partition borders.
    """

    # fmt: off
    def __init__(
        self, graph_module: GraphModule, operator_support: OperatorSupportBase,
        allows_single_node_partition: bool = False, non_compute_ops: Optional[Sequence[str]] = None,
        allowed_single_node_partition_ops: Optional[Sequence[str]] = None, skip_horizontal_fusion: bool = False,
    ) -> None:
        # fmt: on
        _foreign.reject(graph_module, "CapabilityBasedPartitioner")  # it fuses graph_module in place
        self.graph_module, self.operator_support = graph_module, operator_support
        self.dependency_viewer = _DependencyViewer(graph_module)
        self.allows_single_node_partition = allows_single_node_partition
        self.skip_horizontal_fusion = skip_horizontal_fusion
        self.non_compute_ops = list(non_compute_ops or [])
        self.allowed_single_node_partition_ops = list(allowed_single_node_partition_ops or [])

    def _is_node_supported(self, node: Node) -> bool:
        return self.operator_support.is_node_supported(dict(self.graph_module.named_modules()), node)

    def propose_partitions(self) -> List[Partition]:
        """The partitions, without changing the graph."""
        submodules = dict(self.graph_module.named_modules())
        assignment: Dict[Node, int] = {}
        partitions_by_id: Dict[int, Partition] = {}
        new_ids = itertools.count()
        nodes_reversed = list(reversed(self.graph_module.graph.nodes))
        order_of = {node: index for index, node in enumerate(nodes_reversed)}

        def maybe_merge(self_id: int, other_id: int) -> Tuple[bool, int]:
            mine, theirs = partitions_by_id[self_id], partitions_by_id[other_id]
            if not validate_partition([*mine.nodes, *theirs.nodes]):
                return False, self_id
            keep, drop = (other_id, self_id) if mine.size() < theirs.size() else (self_id, other_id)
            kept, dropped = partitions_by_id[keep], partitions_by_id.pop(drop)
            for node, order in dropped.nodes.items():
                kept.add_node(node, order)
                assignment[node] = keep
            return True, keep

        for node in nodes_reversed:
            if node in assignment:
                continue
            if not self.operator_support.is_node_supported(submodules, node):
                continue
            self_id = next(new_ids)
            partitions_by_id[self_id] = Partition(id=self_id, nodes=[node], node_orders=[order_of[node]])
            assignment[node] = self_id
            candidates: Dict[int, None] = {}
            if self.skip_horizontal_fusion:
                for user in node.users:
                    if user in assignment:
                        candidates[assignment[user]] = None
            else:
                # In order of first assignment of their nodes (a merged partition keeps the
                # places of the nodes it absorbed), as torch.fx tries them.
                candidates.update(dict.fromkeys(assignment.values()))
            candidates.pop(self_id, None)
            for other_id in candidates:
                if other_id in partitions_by_id and other_id != self_id:
                    _, self_id = maybe_merge(self_id, other_id)

        for partition in partitions_by_id.values():
            # Positions count from the end, so the largest comes first in the graph.
            partition.nodes = dict(sorted(partition.nodes.items(), key=lambda item: -item[1]))  # type: ignore[operator]
            for node in list(partition.nodes):
                if _is_getitem(node) and assignment.get(node.args[0]) != assignment[node]:
                    partition.remove_node(node)
                    del assignment[node]
        self._absorb_getitems(assignment, partitions_by_id)
        return [
            partition
            for partition in partitions_by_id.values()
            if partition.size() > 0 and self._worth_keeping(partition)
        ]

    def _absorb_getitems(self, assignment: Dict[Node, int], partitions_by_id: Dict[int, Partition]) -> None:
        """Put each ``getitem`` of a partitioned node into that node's partition (without a
        position), so multi-output nodes are never split from their items."""
        for partition_id, partition in partitions_by_id.items():
            members = list(partition.nodes)
            for node in members:
                for user in node.users:
                    if _is_getitem(user) and user not in assignment:
                        partition.add_node(user)
                        assignment[user] = partition_id
                        members.append(user)

    def _worth_keeping(self, partition: Partition) -> bool:
        """Whether a partition is kept: always with ``allows_single_node_partition``, else when it
        has two compute nodes (call_function nodes not in ``non_compute_ops``) or a node listed
        in ``allowed_single_node_partition_ops``."""
        if self.allows_single_node_partition:
            return True
        names = [_get_qualified_name(node.target) for node in partition.nodes if node.op == "call_function"]
        compute = sum(1 for name in names if name not in self.non_compute_ops and name != "_operator.getitem")
        return compute > 1 or any(name in self.allowed_single_node_partition_ops for name in names)

    def fuse_partitions(self, partitions: List[Partition], prefix: str = "fused_") -> GraphModule:
        """Fuse each partition into a ``<prefix><index>`` submodule; returns the edited module."""
        return fuse_by_partitions(
            self.graph_module, [dict(partition.nodes) for partition in partitions], prefix=prefix
        )

    def remove_bookend_non_compute_ops(self, partitions: List[Partition]) -> None:
        """Drop non-compute nodes at the start or end of each partition: those whose inputs (or
        users), through other non-compute nodes, all lie outside the partition."""
        non_compute = set(self.non_compute_ops)

        def is_non_compute(node: Node) -> bool:
            return node.op == "call_function" and _get_qualified_name(node.target) in non_compute

        for partition in partitions:
            for neighbours in (_inputs_of, _users_of):
                for node in _bookends(partition.nodes, neighbours, is_non_compute):
                    partition.remove_node(node)

    def partition_and_fuse(self, prefix: str = "fused_") -> GraphModule:
        return self.fuse_partitions(self.propose_partitions(), prefix=prefix)


def _is_getitem(node: Node) -> bool:
    return node.op == "call_function" and node.target is operator.getitem


def _inputs_of(node: Node) -> List[Node]:
    return node.all_input_nodes


def _users_of(node: Node) -> List[Node]:
    return list(node.users)


def _bookends(
    members: Dict[Node, Optional[int]],
    neighbours: Callable[[Node], List[Node]],
    is_non_compute: Callable[[Node], bool],
) -> List[Node]:
    """Non-compute members whose ``neighbours`` (inputs or users), through other such members,
    all lie outside the partition."""
    memo: Dict[Node, bool] = {}

    def only_outside(node: Node) -> bool:
        if node not in memo:
            memo[node] = False  # a cycle through non-compute nodes does not make a bookend
            memo[node] = all(
                other not in members or (is_non_compute(other) and only_outside(other))
                for other in neighbours(node)
            )
        return memo[node]

    return [node for node in members if is_non_compute(node) and only_outside(node)]
