"""Building blocks of the accelerator partitioner: devices, the partition of a graph's nodes
and its memory use, and latency estimates (one partition's critical path, communication between
partitions, the critical path of a partitioned graph).

Memory figures read ``node.size_bytes`` (set by
``fxkit.passes.graph_manipulation.get_size_of_all_nodes``).
"""

from __future__ import annotations

import collections
from enum import Enum
from typing import Dict, List, NamedTuple, Set

from fxkit import _foreign
from fxkit.node import Node, map_arg

__all__ = [
    "Partition", "Device", "NodeLatency", "PartitionLatency", "PartitionMode", "PartitionerConfig",
    "get_extra_size_of", "get_latency_of_one_partition", "get_partition_to_latency_mapping",
    "get_comm_latency_between", "get_latency_of_partitioned_graph",
]  # fmt: skip

# Nodes that hold no computation: a partition takes them along with their users.
_DATA_OPS = ("placeholder", "get_attr")


def _input_nodes(node: Node) -> Dict[Node, None]:
    """The distinct nodes ``node`` reads, in argument order."""
    found: Dict[Node, None] = {}
    map_arg((node.args, node.kwargs), lambda used: found.setdefault(used))
    return found


class Partition:
    """A set of nodes placed together, with the partitions it reads from (``parents``) and
    feeds (``children``), its memory use in bytes and the logical devices it runs on.
    Adding a node also adds the placeholders and attributes it reads; removing it drops those
    nothing else in the partition reads."""

    nodes: Set[Node]
    parents: Set["Partition"]
    children: Set["Partition"]

    def __init__(self, partition_id: int) -> None:
        self.partition_id = partition_id
        self.nodes, self.parents, self.children = set(), set(), set()
        self.logical_device_ids: List[int] = []
        self.used_mem_bytes, self.bfs_level = 0, -1  # bytes; -1: not placed in the BFS order yet

    def recalculate_mem_size(self) -> None:
        self.used_mem_bytes = sum(get_extra_size_of(node, self.nodes) for node in self.nodes)

    def add_node(self, node: Node) -> None:
        _foreign.reject(node, "Partition.add_node")
        for used in _input_nodes(node):
            if used.op in _DATA_OPS:
                self.nodes.add(used)
        self.nodes.add(node)
        self.recalculate_mem_size()

    def remove_node(self, node: Node) -> None:
        _foreign.reject(node, "Partition.remove_node")
        if node not in self.nodes:
            return
        self.nodes.remove(node)
        for used in _input_nodes(node):
            if used.op in _DATA_OPS and not any(user in self.nodes for user in used.users):
                self.nodes.discard(used)
        self.recalculate_mem_size()

    def __str__(self) -> str:
        return str(self.partition_id)


# The records' fields, in the order torch.fx users pass them positionally.
Device = NamedTuple("Device", [("name", str), ("available_mem_bytes", int), ("logical_id", int)])  # noqa: UP014
Device.__doc__ = "An accelerator: its name, memory in bytes and logical id."
NodeLatency = NamedTuple("NodeLatency", [("mem_latency_sec", float), ("computer_latency_sec", float)])  # noqa: UP014
NodeLatency.__doc__ = "Seconds one node spends moving memory and computing."
PartitionLatency = NamedTuple(  # noqa: UP014
    "PartitionLatency",
    [("mem_latency_sec", float), ("computer_latency_sec", float), ("overall_latency_sec", float)],
)
PartitionLatency.__doc__ = (
    "Latencies along a partition's critical path; ``overall`` counts, per node, the larger of its"
    " memory and compute latency."
)


# The modes and their values are torch.fx's (code compares and prints them).
PartitionMode = Enum("PartitionMode", [(name, value) for value, name in enumerate(
    "size_based sparse_nn cost_aware kl_based aot_based".split())], module=__name__)  # fmt: skip


_CONFIG_FIELDS = [
    ("devices", List[Device]), ("mode", PartitionMode),
    ("transfer_rate_bytes_per_sec", float), ("node_to_latency_mapping", Dict[Node, NodeLatency]),
    ("node_to_partition_mapping", Dict[Node, int]), ("partition_to_logical_device_mapping", Dict[int, List[int]]),
    ("saturate_host", bool),
]  # fmt: skip
# Everything but the devices has a default; the mapping defaults are shared dicts, as in torch.fx.
PartitionerConfig = collections.namedtuple(
    "PartitionerConfig",
    [name for name, _ in _CONFIG_FIELDS],
    defaults=(PartitionMode.size_based, 0.0, {}, {}, {}, False),
)
PartitionerConfig.__annotations__ = dict(_CONFIG_FIELDS)
PartitionerConfig.__doc__ = (
    "What the partitioner is given: the devices, the mode, and the mode's inputs (transfer rate and"
    " node latencies for cost-aware and KL modes, a ready-made node -> partition and partition ->"
    " devices mapping for AOT mode; ``saturate_host`` replicates partitions onto idle devices)."
)


def _size_bytes(node: Node) -> object:
    size = getattr(node, "size_bytes", None)
    if size is None:
        raise RuntimeError("node has no size_bytes attr")
    return size


def get_extra_size_of(node: Node, nodes: Set[Node]) -> int:
    """Bytes that placing ``node`` into a partition holding ``nodes`` costs: the node's own
    total size plus the outputs it reads from nodes outside the partition."""
    _foreign.reject(node, "get_extra_size_of")
    total: int = _size_bytes(node).total_size  # type: ignore[attr-defined]
    for used in _input_nodes(node):
        if used not in nodes:
            total += _size_bytes(used).output_size  # type: ignore[attr-defined]
    return total


def get_latency_of_one_partition(
    partition: Partition, node_to_latency_mapping: Dict[Node, NodeLatency]
) -> PartitionLatency:
    """The latency of the partition's critical path: over the chains of computing nodes inside
    the partition, the one whose sum of per-node ``max(memory, compute)`` latency is largest,
    with its memory and compute latencies summed along it."""

    def is_start(node: Node) -> bool:
        if node.op in _DATA_OPS:
            return False
        return not any(used in partition.nodes and used.op not in _DATA_OPS for used in _input_nodes(node))

    def longest_from(node: Node, so_far: PartitionLatency) -> PartitionLatency:
        # Summed from the start of the chain onwards (the order torch.fx adds in).
        own = node_to_latency_mapping[node]
        so_far = PartitionLatency(
            so_far.mem_latency_sec + own.mem_latency_sec,
            so_far.computer_latency_sec + own.computer_latency_sec,
            so_far.overall_latency_sec + max(own.mem_latency_sec, own.computer_latency_sec),
        )
        inside = [user for user in node.users if user in partition.nodes]
        if not inside:
            return so_far
        # Like torch.fx, the best chain must beat an all-zero one (matters only for latencies <= 0).
        best = PartitionLatency(0.0, 0.0, 0.0)
        for user in inside:
            candidate = longest_from(user, so_far)
            if candidate.overall_latency_sec > best.overall_latency_sec:
                best = candidate
        return best

    critical = PartitionLatency(0.0, 0.0, 0.0)
    for node in partition.nodes:
        if is_start(node):
            path = longest_from(node, PartitionLatency(0.0, 0.0, 0.0))
            if path.overall_latency_sec > critical.overall_latency_sec:
                critical = path
    return critical


def get_partition_to_latency_mapping(
    partitions: List[Partition], node_to_latency_mapping: Dict[Node, NodeLatency]
) -> Dict[Partition, PartitionLatency]:
    """``get_latency_of_one_partition`` of every partition."""
    return {
        partition: get_latency_of_one_partition(partition, node_to_latency_mapping)
        for partition in partitions
    }


def get_comm_latency_between(
    parent_partition: Partition, child_partition: Partition, transfer_rate_bytes_per_sec: float
) -> float:
    """Seconds to move the values ``child_partition`` reads from ``parent_partition``: their
    output bytes (each value once) over the transfer rate; 0 when both partitions sit on the
    same (non-empty) list of logical devices."""
    devices = parent_partition.logical_device_ids
    if devices and devices == child_partition.logical_device_ids:
        return 0.0
    sent: Dict[Node, None] = {}
    for node in child_partition.nodes:
        for used in _input_nodes(node):
            if used in parent_partition.nodes:
                sent.setdefault(used)
    size = sum(_size_bytes(node).output_size for node in sent)  # type: ignore[attr-defined]
    return size / transfer_rate_bytes_per_sec


def get_latency_of_partitioned_graph(
    partitions: List[Partition], partition_to_latency_mapping: Dict[Partition, PartitionLatency],
    transfer_rate_bytes_per_sec: float,
) -> float:  # fmt: skip
    """The latency of the slowest chain of partitions from one without parents to one without
    children: partition latencies plus the communication between consecutive partitions."""

    def longest_from(partition: Partition, so_far: float) -> float:
        # Summed from the start of the chain onwards (the order torch.fx adds in).
        so_far += partition_to_latency_mapping[partition].overall_latency_sec
        if not partition.children:
            return so_far
        # A chain only counts when it beats 0.0 (torch.fx starts its maxima there).
        return max(
            0.0,
            *(
                longest_from(
                    child, so_far + get_comm_latency_between(partition, child, transfer_rate_bytes_per_sec)
                )
                for child in partition.children
            ),
        )

    return max(0.0, *(longest_from(partition, 0.0) for partition in partitions if not partition.parents))
