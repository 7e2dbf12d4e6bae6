"""Split a GraphModule into submodules that fit the memory of a set of devices.

``Partitioner().partition_graph(gm, module, PartitionerConfig(devices, mode))`` groups the
graph's nodes into ``Partition`` objects, places each on logical devices, turns every partition
into a submodule (``submod_<id>``) with ``split_module`` and returns the new module together with
a ``DAG`` of the submodules. Nodes need ``size_bytes`` first
(``fxkit.passes.graph_manipulation.get_size_of_all_nodes``).

Modes: the whole graph on the largest device when it fits; ``size_based`` (greedy, in graph
order); ``aot_based`` (a given node -> partition and partition -> devices mapping).
``saturate_host`` copies the partitions onto idle devices. The ``sparse_nn``, ``cost_aware``
and ``kl_based`` modes are not available in fxkit (NotImplementedError).
"""

from __future__ import annotations

import operator
from collections import deque
from typing import Dict, List, NamedTuple, Set, Tuple

import torch

from fxkit import _foreign
from fxkit.experimental.partitioner_utils import (
    Device,
    NodeLatency,
    Partition,
    PartitionerConfig,
    PartitionMode,
    get_extra_size_of,
)
from fxkit.graph_module import GraphModule
from fxkit.node import Node, map_arg
from fxkit.passes.split_module import split_module

__all__ = [
    "DAGNode", "DAG", "PartitionResult", "reset_partition_device", "combine_two_partitions",
    "set_parents_and_children", "reorganize_partitions", "get_bfs_level_partition",
    "get_node_to_partition_mapping", "get_logical_id_to_device", "get_device_partition_stats",
    "get_device_to_partitions_mapping", "check_dependency", "Partitioner",
]  # fmt: skip

_COMPUTING_OPS = ("call_module", "call_method", "call_function")


class DAGNode:
    """One submodule of the partitioned module: its call node, the nodes it reads and the
    nodes that carry its results, its devices and its size in bytes."""

    def __init__(
        self, submodule_node: Node, input_nodes: List[Node], output_nodes: List[Node],
        logical_device_ids: List[int], size_bytes: int,
    ) -> None:  # fmt: skip
        self.submodule_node = submodule_node
        self.input_nodes = input_nodes
        self.output_nodes = output_nodes
        self.logical_device_ids = logical_device_ids
        self.size_bytes = size_bytes

    def __str__(self) -> str:
        return str(self.submodule_node)


class DAG:
    """The submodules of a partitioned module, in call order."""

    def __init__(self) -> None:
        self.nodes: List[DAGNode] = []

    def create_node(
        self, submodule_node: Node, input_nodes: List[Node], output_nodes: List[Node],
        logical_devices: List[int], size_bytes: int,
    ) -> None:  # fmt: skip
        self.nodes.append(DAGNode(submodule_node, input_nodes, output_nodes, logical_devices, size_bytes))


class PartitionResult(NamedTuple):
    """What ``partition_graph`` returns: the DAG and the module made of submodules."""

    dag: DAG
    module_with_submodules: GraphModule


def reset_partition_device(partitions: List[Partition]) -> None:
    for partition in partitions:
        partition.logical_device_ids = []


def combine_two_partitions(
    partition_0: Partition, partition_1: Partition, partitions: List[Partition]
) -> None:
    """Replace the two partitions in ``partitions`` by one holding the nodes of both (appended
    last), then renumber and relink all of them."""
    merged = Partition(len(partitions))
    merged.nodes = partition_0.nodes | partition_1.nodes
    merged.recalculate_mem_size()
    partitions.append(merged)
    partitions.remove(partition_0)
    partitions.remove(partition_1)
    reorganize_partitions(partitions)


def set_parents_and_children(partitions: List[Partition]) -> None:
    """Link partitions: B is a child of A when a node of B reads a node of A."""
    for partition in partitions:
        partition.parents, partition.children = set(), set()
    owner = {node: partition for partition in partitions for node in partition.nodes}
    for partition in partitions:
        for node in partition.nodes:
            for user in node.users:
                other = owner.get(user)
                if other is not None and other is not partition and user.op != "output":
                    partition.children.add(other)
                    other.parents.add(partition)


def reorganize_partitions(partitions: List[Partition]) -> None:
    """Number the partitions by their position in the list and relink them."""
    for index, partition in enumerate(partitions):
        partition.partition_id = index
    set_parents_and_children(partitions)


def get_bfs_level_partition(partitions: List[Partition]) -> None:
    """Set ``bfs_level``: 0 for partitions without parents, otherwise the length of the longest
    chain of parents above (a partition reached again further down takes the deeper level)."""
    current = {partition for partition in partitions if not partition.parents}
    level = 0
    while current and level <= len(partitions):  # the bound only matters for cyclic links
        for partition in current:
            partition.bfs_level = level
        current = {child for partition in current for child in partition.children}
        level += 1


def get_node_to_partition_mapping(partitions: List[Partition]) -> Dict[Node, int]:
    return {node: partition.partition_id for partition in partitions for node in partition.nodes}


def get_logical_id_to_device(devices: List[Device]) -> Dict[int, Device]:
    return {device.logical_id: device for device in devices}


def get_device_partition_stats(
    partitions: List[Partition], devices: List[Device]
) -> Tuple[Dict[Device, List[Partition]], Dict[Device, int], List[Partition]]:
    """Per device its partitions and its memory left; and the partitions without a device."""
    by_id = get_logical_id_to_device(devices)
    on_device: Dict[Device, List[Partition]] = {device: [] for device in devices}
    left: Dict[Device, int] = {device: device.available_mem_bytes for device in devices}
    homeless = []
    for partition in partitions:
        if not partition.logical_device_ids:
            homeless.append(partition)
            continue
        for logical_id in partition.logical_device_ids:
            device = by_id[logical_id]
            on_device[device].append(partition)
            left[device] -= partition.used_mem_bytes
    return on_device, left, homeless


def _extra_bytes_on(partition: Partition, residents: List[Partition]) -> int:
    """Bytes ``partition`` adds to a device already holding ``residents`` (shared inputs count once)."""
    present: Set[Node] = set().union(*(resident.nodes for resident in residents))
    if not present:
        return partition.used_mem_bytes
    present |= partition.nodes
    return sum(get_extra_size_of(node, present) for node in partition.nodes)


def get_device_to_partitions_mapping(partitions: List[Partition], devices: List[Device]) -> bool:
    """Give every partition without a device the device with the least memory left that still
    has room for it (strictly more than it needs). False when one does not fit anywhere (the
    partitions before it keep their new devices)."""
    on_device, left, homeless = get_device_partition_stats(partitions, devices)
    for partition in homeless:
        fitting = [
            device for device in sorted(left, key=left.__getitem__)
            if _extra_bytes_on(partition, on_device[device]) < left[device]
        ]  # fmt: skip
        if not fitting:
            return False
        device = fitting[0]
        left[device] -= _extra_bytes_on(partition, on_device[device])
        on_device[device].append(partition)
        partition.logical_device_ids.append(device.logical_id)
    return True


def check_dependency(partition: Partition) -> bool:
    """Whether a path of children leads from ``partition`` back to itself."""
    pending = deque([partition])
    seen = {partition}
    while pending:
        for child in pending.popleft().children:
            if child is partition:
                return True
            if child not in seen:
                seen.add(child)
                pending.append(child)
    return False


class Partitioner:
    """Partitions a GraphModule across devices; see the module docstring."""

    def __init__(self) -> None:
        self.partitions: List[Partition] = []
        self.node_to_partition: Dict[Node, int] = {}
        self.devices: List[Device] = []

    def partition_graph(
        self, fx_module: GraphModule, torch_module: torch.nn.Module, partitioner_config: PartitionerConfig
    ) -> PartitionResult:
        _foreign.reject(fx_module, "Partitioner.partition_graph")  # partitions are nodes of fx_module
        self.graph_module = fx_module
        self.torch_module = torch_module
        self.devices = partitioner_config.devices
        if not self.devices:
            raise RuntimeError("No devices")
        total_size = 0
        for node in self.graph_module.graph.nodes:
            if node.op == "output":
                break
            total_size += node.size_bytes.total_size
        largest = max(self.devices, key=lambda device: device.available_mem_bytes)
        mode = partitioner_config.mode
        if mode == PartitionMode.aot_based:
            self.aot_based_partition(
                partitioner_config.node_to_partition_mapping,
                partitioner_config.partition_to_logical_device_mapping,
            )
        elif total_size <= largest.available_mem_bytes:
            self.find_single_partition(total_size, largest.logical_id)
        elif total_size > sum(device.available_mem_bytes for device in self.devices):
            raise RuntimeError("Devices do not have enough memory for the module")
        elif mode == PartitionMode.size_based:
            self.size_based_partition()
        else:
            raise NotImplementedError(
                f"Partitioner: mode {mode.name} is not available in fxkit (size_based and aot_based are); "
                "use torch.fx.experimental.accelerator_partitioner for it"
            )
        if partitioner_config.saturate_host:
            self.saturate_host()
        module_with_submodules = self.do_partition()
        return PartitionResult(self.dump_dag(module_with_submodules), module_with_submodules)

    def find_single_partition(self, total_size_of_graph: int, logical_device_id: int = 0) -> None:
        """Everything in one partition, on the given device."""
        partition = self.create_partition()
        for node in self.graph_module.graph.nodes:
            if node.op == "output":
                break
            partition.nodes.add(node)
        partition.used_mem_bytes = total_size_of_graph
        partition.logical_device_ids = [logical_device_id]
        self.node_to_partition = get_node_to_partition_mapping(self.partitions)

    def size_based_partition(self) -> None:
        """Fill partitions in graph order. A new partition takes the first unused device with
        room for the node that opens it; once every device is in use, each remaining node gets a
        partition of its own, and all of those are then placed where they fit."""
        occupied: List[Device] = []
        room: Dict[Partition, int] = {}

        def open_partition(node: Node) -> Partition:
            need = get_extra_size_of(node, set())
            device = next(
                (d for d in self.devices if d not in occupied and d.available_mem_bytes >= need), None
            )
            if device is None:
                raise RuntimeError(f"{node} is too large to fit any device")
            occupied.append(device)
            partition = self.create_partition()
            partition.logical_device_ids.append(device.logical_id)
            room[partition] = device.available_mem_bytes
            return partition

        partition = None
        out_of_devices = False
        for node in self.graph_module.graph.nodes:
            if node.op not in _COMPUTING_OPS:
                continue
            if out_of_devices:
                self.create_single_node_partition(node)
                continue
            extra = get_extra_size_of(node, partition.nodes) if partition is not None else 0
            if partition is None or room[partition] < extra:
                if partition is not None and len(occupied) == len(self.devices):
                    out_of_devices = True
                    self.create_single_node_partition(node)
                    continue
                partition = open_partition(node)
                extra = get_extra_size_of(node, partition.nodes)
            partition.add_node(node)
            room[partition] -= extra
        reorganize_partitions(self.partitions)
        self.node_to_partition = get_node_to_partition_mapping(self.partitions)
        if not get_device_to_partitions_mapping(self.partitions, self.devices):
            raise RuntimeError("Cannot Get a Valid Partition to Logical Device Mapping")

    def saturate_host(self) -> None:
        """Copy the partitions of the used devices onto idle devices, one full copy at a time
        while enough idle devices remain; each used device goes to the smallest idle device
        that can hold what it holds."""
        on_device, left, homeless = get_device_partition_stats(self.partitions, self.devices)
        assert not homeless, f"Expect no_device_partitions has 0 device, but get {len(homeless)}"
        used = [device for device in self.devices if on_device[device]]
        copies: Dict[Device, Device] = {}
        while len(used) * 2 + len(copies) <= len(self.devices):
            idle = [device for device in self.devices if device not in used and device not in copies]
            round_copies: Dict[Device, Device] = {}
            for device in used:
                needed = device.available_mem_bytes - left[device]
                candidates = [d for d in idle if d.available_mem_bytes >= needed]
                if not candidates:
                    break
                target = min(candidates, key=lambda d: d.available_mem_bytes)
                idle.remove(target)
                round_copies[target] = device
            else:
                copies.update(round_copies)
                continue
            break
        for copy_device, original in copies.items():
            for partition in on_device[original]:
                partition.logical_device_ids.append(copy_device.logical_id)

    def do_partition(self) -> GraphModule:
        """The module made of one submodule per partition."""
        return split_module(self.graph_module, self.torch_module, lambda node: self.node_to_partition[node])

    def dump_dag(self, module_with_submodules: GraphModule) -> DAG:
        """The DAG of the submodule calls of ``module_with_submodules``."""
        _foreign.reject(module_with_submodules, "Partitioner.dump_dag")  # the DAG holds its nodes
        dag = DAG()
        for node in module_with_submodules.graph.nodes:
            if node.op == "output":
                break
            if node.op in ("placeholder", "get_attr") or node.target is operator.getitem:
                continue
            inputs: Dict[Node, None] = {}
            map_arg((node.args, node.kwargs), inputs.setdefault)
            outputs = list(node.users) if len(node.users) > 1 else [node]
            partition = self.partitions[int(node.name.rsplit("_", 1)[-1])]
            dag.create_node(
                node, list(inputs), outputs, partition.logical_device_ids, partition.used_mem_bytes
            )
        return dag

    def create_partition(self) -> Partition:
        partition = Partition(len(self.partitions))
        self.partitions.append(partition)
        return partition

    def create_single_node_partition(self, node: Node) -> None:
        _foreign.reject(node, "Partitioner.create_single_node_partition")
        self.create_partition().add_node(node)

    def aot_based_partition(
        self,
        node_to_partition_mapping: Dict[Node, int],
        partition_to_logical_device_mapping: Dict[int, List[int]],
    ) -> None:
        """Partitions and devices as given (parents and children are left unset, as in torch.fx)."""
        self.node_to_partition = node_to_partition_mapping
        by_id: Dict[int, Partition] = {}
        for node, partition_id in self.node_to_partition.items():
            if partition_id not in by_id:
                partition = by_id[partition_id] = Partition(partition_id)
                self.partitions.append(partition)
                partition.logical_device_ids = list(partition_to_logical_device_mapping[partition_id])
            by_id[partition_id].add_node(node)

    def sparse_nn_partition(self, available_mem_bytes: int) -> None:
        raise NotImplementedError("Partitioner.sparse_nn_partition is not available in fxkit")

    def cost_aware_partition(
        self, transfer_rate_bytes_per_sec: float, node_to_latency_mapping: Dict[Node, NodeLatency]
    ) -> None:
        raise NotImplementedError("Partitioner.cost_aware_partition is not available in fxkit")

    def kl_based_partition(
        self, transfer_rate_bytes_per_sec: float, node_to_latency_mapping: Dict[Node, NodeLatency]
    ) -> None:
        raise NotImplementedError("Partitioner.kl_based_partition is not available in fxkit")
