"""Split a GraphModule into submodules that fit the memory of a set of devices.

``Partitioner().partition_graph(gm, module, PartitionerConfig(devices, mode))`` groups the
graph's nodes into ``Partition`` objects, places each on logical devices, turns every partition
into a submodule (``submod_<id>``) with ``split_module`` and returns the new module together with
a ``DAG`` of the submodules. Nodes need ``size_bytes`` first
(``fxkit.passes.graph_manipulation.get_size_of_all_nodes``).

Modes: the whole graph on the largest device when it fits; ``size_based`` (greedy, in graph
order); ``aot_based`` (a given node -> partition and partition -> devices mapping);
``sparse_nn`` (embedding partitions one per device, dense partitions beside each of them);
``cost_aware`` (merge single-node partitions while the estimated latency does not grow);
``kl_based`` (``size_based``, then Kernighan-Lin style node moves and swaps that lower the
latency). ``saturate_host`` copies the partitions onto idle devices. The results, quirks
included, are torch.fx's.
"""

from __future__ import annotations

import operator
from collections import deque
from typing import Dict, List, NamedTuple, Optional, Set, Tuple

import torch

from fxkit import _foreign
from fxkit.experimental.partitioner_utils import (
    Device,
    NodeLatency,
    Partition,
    PartitionerConfig,
    PartitionMode,
    get_extra_size_of,
    get_latency_of_partitioned_graph,
    get_partition_to_latency_mapping,
)
from fxkit.graph_module import GraphModule
from fxkit.node import Node, map_arg
from fxkit.passes.graph_manipulation import get_size_of_all_nodes  # noqa: F401  (torch.fx code imports it from here)
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
    """Link partitions: B is a child of A when a node of B reads a node of A that B does not
    hold itself (so partitions sharing a placeholder are not linked through it)."""
    for partition in partitions:
        partition.parents, partition.children = set(), set()
    for partition in partitions:
        for node in partition.nodes:
            for user in node.users:
                for other in partitions:
                    if other is not partition and user in other.nodes and node not in other.nodes:
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
        if all(node.op in ("placeholder", "get_attr", "output") for node in fx_module.graph.nodes):
            raise RuntimeError("No Partition since no operations in the module")
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
        elif mode == PartitionMode.sparse_nn:
            same_size = self.devices[0].available_mem_bytes
            if any(device.available_mem_bytes != same_size for device in self.devices):
                raise RuntimeError("All devices must have same memory size!")
            self.sparse_nn_partition(same_size)
        elif mode == PartitionMode.cost_aware:
            self.cost_aware_partition(
                partitioner_config.transfer_rate_bytes_per_sec, partitioner_config.node_to_latency_mapping
            )
        elif mode == PartitionMode.kl_based:
            self.kl_based_partition(
                partitioner_config.transfer_rate_bytes_per_sec, partitioner_config.node_to_latency_mapping
            )
        else:
            self.size_based_partition()
        if partitioner_config.saturate_host:
            self.saturate_host()
        module_with_submodules = self.do_partition()
        return PartitionResult(self.dump_dag(module_with_submodules), module_with_submodules)

    def find_single_partition(self, total_size_of_graph: int, logical_device_id: int = 0) -> None:
        """Everything in one partition, on the given device."""
        partition = self.create_partition()
        partition.nodes.update(node for node in self.graph_module.graph.nodes if node.op != "output")
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

    def _is_embedding_node(self, node: Node) -> bool:
        """A ``call_module`` node whose module, or a module on the path to it, prints with
        "Embedding" in its text (torch.fx's test, kept so that the same nodes count)."""
        if node.op != "call_module":
            return False
        module = self.graph_module
        for name in str(node.target).split("."):
            if not hasattr(module, name):
                raise RuntimeError(f"Module {module} has no attribute {name}")
            module = getattr(module, name)
            if "Embedding" in str(module):
                return True
        return False

    def sparse_nn_partition(self, available_mem_bytes: int) -> None:
        """Partition a sparse model on devices that all have ``available_mem_bytes``.

        Nodes are packed in graph order, and a partition never mixes embedding nodes with dense
        ones: crossing between the two kinds starts a new partition, as does running out of
        room. Then partitions of the same kind are merged while they fit. Each embedding
        partition gets a device of its own (in device order); the dense partitions go along on
        all of those devices, so each device must hold one embedding partition plus all dense
        ones."""
        kinds: Dict[bool, List[Partition]] = {True: [], False: []}  # is embedding -> partitions
        embedding_region = False
        partition = self.create_partition()
        for node in self.graph_module.graph.nodes:
            if node.op not in _COMPUTING_OPS:
                continue
            if self._is_embedding_node(node) != embedding_region:
                if partition.used_mem_bytes:
                    kinds[embedding_region].append(partition)
                    partition = self.create_partition()
                embedding_region = not embedding_region
            if get_extra_size_of(node, partition.nodes) + partition.used_mem_bytes > available_mem_bytes:
                kinds[embedding_region].append(partition)
                partition = self.create_partition()
                if get_extra_size_of(node, partition.nodes) > available_mem_bytes:
                    # torch.fx's message; a function target makes this a TypeError there too
                    raise RuntimeError(node.target + " is too large to fit into a device")
            partition.add_node(node)
        kinds[embedding_region].append(partition)
        set_parents_and_children(self.partitions)
        dense, embedding = kinds[False], kinds[True]
        self._merge_while_fitting(dense, available_mem_bytes)
        self._merge_while_fitting(embedding, available_mem_bytes)
        if len(embedding) > len(self.devices):
            raise RuntimeError(f"Need {len(embedding)} devices, but only {len(self.devices)} provided")
        dense_bytes = sum(partition.used_mem_bytes for partition in dense)
        # One list shared by all dense partitions (as in torch.fx, so saturate_host extends it
        # once per dense partition).
        used_ids: List[int] = []
        for device, partition in zip(self.devices, embedding):
            if dense_bytes + partition.used_mem_bytes > available_mem_bytes:
                raise RuntimeError(
                    f"partition_{partition.partition_id}(embedding partition) and non embedding partitions"
                    " can not fit into one device"
                )
            partition.logical_device_ids = [device.logical_id]
            used_ids.append(device.logical_id)
        for partition in dense:
            partition.logical_device_ids = used_ids
        self.node_to_partition = get_node_to_partition_mapping(self.partitions)

    def _merge_while_fitting(self, group: List[Partition], available_mem_bytes: int) -> None:
        """Repeatedly merge the smallest partition of ``group`` into the largest one (by used
        bytes) that is at most one BFS level away and still fits ``available_mem_bytes``
        together with it; ``group`` is updated in place."""
        while True:
            by_size = sorted(group, key=lambda partition: partition.used_mem_bytes)
            get_bfs_level_partition(self.partitions)
            smallest = by_size.pop(0)  # an empty group: IndexError, as torch.fx raises
            for other in reversed(by_size):
                if abs(smallest.bfs_level - other.bfs_level) > 1:
                    continue
                together = other.nodes | smallest.nodes
                if sum(get_extra_size_of(node, together) for node in together) > available_mem_bytes:
                    continue
                combine_two_partitions(other, smallest, self.partitions)
                group.remove(smallest)
                group.remove(other)
                group.append(self.partitions[-1])
                break
            else:
                return

    def _latency(self, partitions: List[Partition], rate: float, latencies: Dict[Node, NodeLatency]) -> float:
        return get_latency_of_partitioned_graph(
            partitions, get_partition_to_latency_mapping(partitions, latencies), rate
        )

    def cost_aware_partition(
        self, transfer_rate_bytes_per_sec: float, node_to_latency_mapping: Dict[Node, NodeLatency]
    ) -> None:
        """Start with one partition per computing node, then keep merging the pair of partitions
        that gives the lowest latency of the partitioned graph (ties: the later pair) as long as
        it is no worse than before. A pair may merge when its BFS levels differ by at most one
        or one feeds the other, the merge makes no cycle and the result still fits the
        devices."""
        for node in self.graph_module.graph.nodes:
            if node.op in _COMPUTING_OPS:
                self.create_single_node_partition(node)
        set_parents_and_children(self.partitions)
        get_bfs_level_partition(self.partitions)
        while self._merge_best_pair(transfer_rate_bytes_per_sec, node_to_latency_mapping):
            pass
        reorganize_partitions(self.partitions)
        self.node_to_partition = get_node_to_partition_mapping(self.partitions)

    def _cost_after_merging(
        self, first: Partition, second: Partition, rate: float, latencies: Dict[Node, NodeLatency]
    ) -> float:
        """Latency of the graph with ``first`` and ``second`` merged (inf when they may not be);
        the caller relinks ``self.partitions`` afterwards."""
        related = first in second.parents or first in second.children
        if abs(first.bfs_level - second.bfs_level) > 1 and not related:
            return float("inf")
        trial = list(self.partitions)
        combine_two_partitions(first, second, trial)
        if check_dependency(trial[-1]):
            return float("inf")
        reset_partition_device(trial)
        if not get_device_to_partitions_mapping(trial, self.devices):
            return float("inf")
        return self._latency(trial, rate, latencies)

    def _merge_best_pair(self, rate: float, latencies: Dict[Node, NodeLatency]) -> bool:
        """One round of ``cost_aware_partition``; False when no pair was merged."""
        best_cost = self._latency(self.partitions, rate, latencies)
        if len(self.partitions) == 1:
            return False
        best_pair = None
        count = len(self.partitions)
        for i in range(count - 1):
            for j in range(i + 1, count):
                cost = self._cost_after_merging(self.partitions[i], self.partitions[j], rate, latencies)
                if cost <= best_cost:
                    best_pair, best_cost = (i, j), cost
                reorganize_partitions(self.partitions)  # undo the trial's renumbering and links
        if best_pair is not None:
            combine_two_partitions(
                self.partitions[best_pair[0]], self.partitions[best_pair[1]], self.partitions
            )
        get_bfs_level_partition(self.partitions)
        reset_partition_device(self.partitions)
        get_device_to_partitions_mapping(self.partitions, self.devices)
        return best_pair is not None

    def kl_based_partition(
        self, transfer_rate_bytes_per_sec: float, node_to_latency_mapping: Dict[Node, NodeLatency]
    ) -> None:
        """Kernighan-Lin style refinement of ``size_based_partition``.

        For every computing node in graph order, and every other partition, try moving the
        node there alone or in exchange for one of that partition's computing nodes. The
        partition each node is looked up in is the one ``size_based_partition`` gave it (the
        node -> partition mapping is not refreshed while swapping, as in torch.fx). A partition
        is a candidate when moving the node there alone beats the best cost so far; the swap
        made is then the best exchange with that partition. The last chosen swap is (re)applied
        after each node; see ``_try_exchanges`` for ties. As in torch.fx, only ``self.partitions`` (and so the DAG's devices and
        sizes) shows the moves: ``node_to_partition``, and with it the submodules, keeps the
        ``size_based`` grouping."""
        rate, latencies = transfer_rate_bytes_per_sec, node_to_latency_mapping
        self.size_based_partition()
        cost = self._latency(self.partitions, rate, latencies)
        chosen: Tuple = ()  # (node, node or None, its partition, the other partition)
        for node in [n for n in self.graph_module.graph.nodes if n.op in _COMPUTING_OPS]:
            home_index = self.node_to_partition[node]
            home = self.partitions[home_index]
            for index, other in enumerate(self.partitions):
                if index == home_index:
                    continue
                move_cost, best_partner = self._try_exchanges(node, home, other, rate, latencies)
                if move_cost < cost:
                    cost = move_cost
                    chosen = (*best_partner, home, other) if best_partner else ()
            if chosen:
                _exchange(*chosen)
                reorganize_partitions(self.partitions)
                get_device_to_partitions_mapping(self.partitions, self.devices)
        reorganize_partitions(self.partitions)
        get_device_to_partitions_mapping(self.partitions, self.devices)

    def _try_exchanges(
        self, node: Node, home: Partition, other: Partition, rate: float, latencies: Dict[Node, NodeLatency]
    ) -> Tuple[float, Tuple]:
        """Cost of every exchange of ``node`` with a computing node of ``other`` and of moving
        it alone (tried last). Returns the cost of the move alone and the cheapest
        ``(node, partner)`` pair (empty when none had a finite cost); among equally cheap
        partners the first in graph order wins. (torch.fx walks the partition's set of nodes,
        so its pick among equal costs depends on memory addresses and varies from run to run.)"""
        best, best_pair = float("inf"), ()
        cost = best
        partners = [n for n in self.graph_module.graph.nodes if n in other.nodes and n.op in _COMPUTING_OPS]
        for partner in [*partners, None]:
            cost = self._cost_of_exchange(node, partner, home, other, rate, latencies)
            if cost < best:
                best, best_pair = cost, (node, partner)
        return cost, best_pair

    def _cost_of_exchange(
        self, node: Node, partner: Optional[Node], home: Partition, other: Partition, rate: float,
        latencies: Dict[Node, NodeLatency],
    ) -> float:  # fmt: skip
        """Latency after exchanging ``node`` (in ``home``) with ``partner`` (in ``other``, or None
        to move ``node`` alone); inf when that makes a cycle or no longer fits the devices. The
        exchange is undone and devices reassigned before returning."""
        _exchange(node, partner, home, other)
        reorganize_partitions(self.partitions)
        cost = float("inf")
        if not check_dependency(home) and not check_dependency(other):
            reset_partition_device(self.partitions)
            per_partition = get_partition_to_latency_mapping(self.partitions, latencies)
            if get_device_to_partitions_mapping(self.partitions, self.devices):
                cost = get_latency_of_partitioned_graph(self.partitions, per_partition, rate)
        _exchange(partner, node, home, other)
        reorganize_partitions(self.partitions)
        reset_partition_device(self.partitions)
        get_device_to_partitions_mapping(self.partitions, self.devices)
        return cost


def _exchange(leaving, arriving, home: Partition, other: Partition) -> None:
    """Move ``leaving`` from ``home`` to ``other`` and ``arriving`` the other way (either may
    be None)."""
    for node, source, target in ((leaving, home, other), (arriving, other, home)):
        if node is not None:
            source.remove_node(node)
            target.add_node(node)
