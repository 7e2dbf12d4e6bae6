"""experimental.partitioner_utils against torch.fx's, on the same graphs and partitions."""

from __future__ import annotations

import pytest
import torch
import torch.fx
import torch.nn as nn
from torch.fx.experimental import partitioner_utils as oracle
from torch.fx.passes.graph_manipulation import get_size_of_all_nodes as oracle_sizes

import fxkit as fx
from fxkit.experimental import partitioner_utils as ours
from fxkit.passes.graph_manipulation import get_size_of_all_nodes


class Diamond(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(2, 4))
        self.lin = nn.Linear(4, 4)

    def forward(self, x, y):
        a = x.relu()
        b = x.sigmoid()
        c = self.lin(a) + y
        d = b * c
        e = (d + self.w).neg()
        return a - e


PARTITIONS = [["relu", "sigmoid"], ["lin", "add", "mul"], ["add_1", "neg", "sub"]]
LATENCIES = {
    "x": (0.5, 0.5), "y": (0.0, 0.0), "w": (9.0, 9.0), "relu": (1.0, 2.0), "sigmoid": (3.0, 1.0), "lin": (1.5, 0.5),
    "add": (0.1, 0.2), "mul": (2.0, 4.3), "add_1": (0.7, 0.3), "neg": (1.1, 1.0), "sub": (0.5, 3.3),
}  # fmt: skip


def _setup(module, trace, sizes, utils):
    gm = trace(module)
    x = torch.randn(2, 4)
    sizes(gm, [x, x])
    nodes = {node.name: node for node in gm.graph.nodes}
    partitions = []
    for index, names in enumerate(PARTITIONS):
        partition = utils.Partition(index)
        for name in names:
            partition.add_node(nodes[name])
        partitions.append(partition)
    first, second, third = partitions
    first.children, second.parents, second.children, third.parents = (
        {second, third},
        {first},
        {third},
        {first, second},
    )
    latencies = {nodes[name]: utils.NodeLatency(*value) for name, value in LATENCIES.items()}
    return nodes, partitions, latencies


@pytest.fixture(scope="module")
def both():
    model = Diamond()
    return (
        _setup(model, fx.symbolic_trace, get_size_of_all_nodes, ours),
        _setup(model, torch.fx.symbolic_trace, oracle_sizes, oracle),
    )


def _names(partition):
    return sorted(node.name for node in partition.nodes)


def test_partitions_and_memory_match(both) -> None:
    (_, mine, _), (_, theirs, _) = both
    assert [(_names(p), p.used_mem_bytes, str(p)) for p in mine] == [
        (_names(p), p.used_mem_bytes, str(p)) for p in theirs
    ]
    assert "x" in _names(mine[0]) and "w" in _names(mine[2])  # inputs and attributes come along


def test_add_and_remove_nodes_match() -> None:
    model = Diamond()
    results = []
    for trace, sizes, utils in (
        (fx.symbolic_trace, get_size_of_all_nodes, ours),
        (torch.fx.symbolic_trace, oracle_sizes, oracle),
    ):
        gm = trace(model)
        sizes(gm, [torch.randn(2, 4), torch.randn(2, 4)])
        nodes = {node.name: node for node in gm.graph.nodes}
        partition, steps = utils.Partition(7), []
        for action, name in [("add", "relu"), ("add", "sigmoid"), ("add", "relu"), ("remove", "relu"), ("add", "add_1"),
                             ("remove", "sigmoid"), ("remove", "mul"), ("add", "lin"), ("remove", "add_1")]:  # fmt: skip
            getattr(partition, f"{action}_node")(nodes[name])
            steps.append((_names(partition), partition.used_mem_bytes))
        partition.recalculate_mem_size()
        sizes_of = [
            utils.get_extra_size_of(nodes[name], {nodes[member] for member in members})
            for name in ("lin", "add", "sub", "x")
            for members in ([], ["relu"], ["relu", "lin"], ["x", "y"])
        ]
        results.append((steps, partition.used_mem_bytes, vars(partition).keys(), sizes_of))
    assert results[0] == results[1]


def test_latencies_match(both) -> None:
    (_, mine, my_latencies), (_, theirs, their_latencies) = both
    for partition, oracle_partition in zip(mine, theirs):
        assert ours.get_latency_of_one_partition(partition, my_latencies) == tuple(
            oracle.get_latency_of_one_partition(oracle_partition, their_latencies)
        )
    mapping = ours.get_partition_to_latency_mapping(mine, my_latencies)
    oracle_mapping = oracle.get_partition_to_latency_mapping(theirs, their_latencies)
    assert [tuple(mapping[p]) for p in mine] == [tuple(oracle_mapping[p]) for p in theirs]
    for rate in (1.0, 16.0, 1e9):
        assert [ours.get_comm_latency_between(a, b, rate) for a in mine for b in mine] == [
            oracle.get_comm_latency_between(a, b, rate) for a in theirs for b in theirs
        ]
        assert ours.get_latency_of_partitioned_graph(
            mine, mapping, rate
        ) == oracle.get_latency_of_partitioned_graph(theirs, oracle_mapping, rate)
    with pytest.raises(ZeroDivisionError):
        ours.get_comm_latency_between(mine[0], mine[1], 0.0)


def _device_latencies(trace, sizes, utils, devices, scale):
    """Latencies of the Diamond partitions placed on ``devices``, with every node latency
    multiplied by ``scale`` (0 and negative scales probe the all-zero starting points)."""
    nodes, partitions, latencies = _setup(Diamond(), trace, sizes, utils)
    latencies = {node: utils.NodeLatency(m * scale, c * scale) for node, (m, c) in latencies.items()}
    for partition, ids in zip(partitions, devices):
        partition.logical_device_ids = list(ids)
    mapping = utils.get_partition_to_latency_mapping(partitions, latencies)
    return (
        [tuple(mapping[p]) for p in partitions],
        [utils.get_comm_latency_between(a, b, 8.0) for a in partitions for b in partitions],
        utils.get_latency_of_partitioned_graph(partitions, mapping, 8.0),
    )


@pytest.mark.parametrize("devices", [([0], [0], [1]), ([0, 1], [0, 1], [0, 1]), ([], [], []), ([1], [], [1])])
@pytest.mark.parametrize("scale", [1.0, 0.0, -1.0])
def test_latencies_with_devices_match(devices, scale) -> None:
    """Partitions on the same devices talk for free; sums start from zero."""
    assert _device_latencies(fx.symbolic_trace, get_size_of_all_nodes, ours, devices, scale) == (
        _device_latencies(torch.fx.symbolic_trace, oracle_sizes, oracle, devices, scale)
    )


def test_missing_sizes_are_reported() -> None:
    gm = fx.symbolic_trace(Diamond())
    node = next(iter(gm.graph.nodes))
    with pytest.raises(RuntimeError, match="size_bytes"):
        ours.get_extra_size_of(node, set())


def test_records_and_modes_match() -> None:
    for name in ("Device", "NodeLatency", "PartitionLatency", "PartitionerConfig"):
        assert getattr(ours, name)._fields == getattr(oracle, name)._fields
    assert [(m.name, m.value) for m in ours.PartitionMode] == [
        (m.name, m.value) for m in oracle.PartitionMode
    ]
    config = ours.PartitionerConfig([ours.Device("d0", 100, 0)])
    oracle_config = oracle.PartitionerConfig([oracle.Device("d0", 100, 0)])
    assert [getattr(v, "name", v) for v in config[1:]] == [getattr(v, "name", v) for v in oracle_config[1:]]
