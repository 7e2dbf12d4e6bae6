"""experimental.accelerator_partitioner against torch.fx's: the same graphs, devices and modes
give the same partitions, devices, submodule code and DAG (or the same error)."""

from __future__ import annotations

import contextlib
import io
import random

import pytest
import torch
import torch.fx
import torch.nn as nn
from torch.fx.experimental import accelerator_partitioner as oracle
from torch.fx.experimental import partitioner_utils as oracle_utils
from torch.fx.passes.graph_manipulation import get_size_of_all_nodes as oracle_sizes

import fxkit as fx
from fxkit.experimental import accelerator_partitioner as ours
from fxkit.experimental import partitioner_utils as our_utils
from fxkit.passes.graph_manipulation import get_size_of_all_nodes


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x, y):
        a = self.l1(x)
        c = self.l2(a.relu()) + y
        return self.l3(c) + a


class Chain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(4)])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x.relu().relu().relu().relu().relu()


MODELS = {"two_inputs": (TwoInputs, 2), "chain": (Chain, 1)}


def _setup(model, n_inputs, trace, sizes):
    gm = trace(model)
    sizes(gm, [torch.ones(2, 4)] * n_inputs)
    return gm, {node.name: node for node in gm.graph.nodes}


def _partition(side, model, n_inputs, mems, mode_name="size_based", **options):
    partitioner_module, utils, trace, sizes = side
    gm, nodes = _setup(model, n_inputs, trace, sizes)
    if "node_to_partition_mapping" in options:
        options["node_to_partition_mapping"] = {
            nodes[k]: v for k, v in options["node_to_partition_mapping"].items()
        }
    devices = [utils.Device(f"dev_{i}", mem, i) for i, mem in enumerate(mems)]
    config = utils.PartitionerConfig(devices, getattr(utils.PartitionMode, mode_name), **options)
    partitioner = partitioner_module.Partitioner()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # torch.fx prints device lists in saturate_host
            result = partitioner.partition_graph(gm, model, config)
    except Exception as error:  # noqa: BLE001  (the outcome compared is the error)
        return ("error", type(error).__name__, str(error).split("\n")[0])
    partitions = [
        (p.partition_id, sorted(n.name for n in p.nodes), p.used_mem_bytes, list(p.logical_device_ids), p.bfs_level,
         sorted(q.partition_id for q in p.parents), sorted(q.partition_id for q in p.children))
        for p in partitioner.partitions
    ]  # fmt: skip
    dag = [
        (str(n.submodule_node), [str(i) for i in n.input_nodes], [str(o) for o in n.output_nodes],
         list(n.logical_device_ids), n.size_bytes)
        for n in result.dag.nodes
    ]  # fmt: skip
    inputs = [torch.randn(2, 4) for _ in range(n_inputs)]
    torch.testing.assert_close(result.module_with_submodules(*inputs), model(*inputs))
    return partitions, result.module_with_submodules.code, dag


OURS = (ours, our_utils, fx.symbolic_trace, get_size_of_all_nodes)
ORACLE = (oracle, oracle_utils, torch.fx.symbolic_trace, oracle_sizes)

CONFIGS = [
    ([10000], {}), ([10000, 10000], {}), ([600, 700], {}), ([700, 600], {}), ([300, 300, 300], {}),
    ([200] * 4, {}), ([150] * 8, {}), ([170] * 6, {}), ([176] * 6, {}), ([210] * 4, {}), ([240] * 4, {}),
    ([300, 200, 100], {}), ([100, 300, 300], {}), ([300, 300, 100], {}), ([200, 300], {}), ([300, 250], {}),
    ([200] * 3, {}), ([200, 200], {}), ([50] * 4, {}), ([], {}),
    ([10000, 10000], {"saturate_host": True}), ([300] * 4, {"saturate_host": True}),
    ([300] * 6, {"saturate_host": True}), ([300, 300, 250, 400, 300], {"saturate_host": True}),
    ([600, 600, 700], {"saturate_host": True}), ([200] * 6, {"saturate_host": True}),
]  # fmt: skip


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("mems,options", CONFIGS, ids=[f"{m}-{sorted(o)}" for m, o in CONFIGS])
def test_size_based_matches_torch_fx(model_name, mems, options) -> None:
    make, n_inputs = MODELS[model_name]
    model = make()
    assert _partition(OURS, model, n_inputs, mems, **options) == _partition(
        ORACLE, model, n_inputs, mems, **options
    )


def test_random_device_sets_match_torch_fx() -> None:
    rng = random.Random(0)
    for _ in range(30):
        mems = [rng.choice([100, 150, 180, 200, 250, 300, 400]) for _ in range(rng.randint(1, 7))]
        for model_name, (make, n_inputs) in MODELS.items():
            model = make()
            assert _partition(OURS, model, n_inputs, mems) == _partition(ORACLE, model, n_inputs, mems), (
                model_name,
                mems,
            )


@pytest.mark.parametrize("devices_of_1", [[1], [1, 0]])
def test_aot_based_matches_torch_fx(devices_of_1) -> None:
    mapping = {"l1": 0, "relu": 0, "l2": 1, "add": 1, "l3": 1, "add_1": 1}
    options = {
        "node_to_partition_mapping": mapping,
        "partition_to_logical_device_mapping": {0: [0], 1: devices_of_1},
    }
    model = TwoInputs()
    expected = _partition(ORACLE, model, 2, [1000, 1000], "aot_based", **options)
    assert _partition(OURS, model, 2, [1000, 1000], "aot_based", **options) == expected
    cyclic = {**options, "node_to_partition_mapping": {**mapping, "l3": 0}}
    assert _partition(OURS, model, 2, [1000, 1000], "aot_based", **cyclic)[0] == "error"


def test_other_modes_say_they_are_missing() -> None:
    with pytest.raises(NotImplementedError, match="cost_aware is not available in fxkit"):
        gm, _ = _setup(TwoInputs(), 2, fx.symbolic_trace, get_size_of_all_nodes)
        ours.Partitioner().partition_graph(
            gm,
            TwoInputs(),
            our_utils.PartitionerConfig(
                [our_utils.Device("d", 300, 0)] * 2, our_utils.PartitionMode.cost_aware
            ),
        )


def _helper_results(side):
    partitioner_module, utils, trace, sizes = side
    _, nodes = _setup(TwoInputs(), 2, trace, sizes)

    def make(groups):
        partitions = []
        for index, names in enumerate(groups):
            partition = utils.Partition(index)
            for name in names:
                partition.add_node(nodes[name])
            partitions.append(partition)
        return partitions

    def show(partitions):
        return [(p.partition_id, sorted(n.name for n in p.nodes), p.used_mem_bytes, sorted(q.partition_id for q in p.parents),
                 sorted(q.partition_id for q in p.children), p.bfs_level, list(p.logical_device_ids)) for p in partitions]  # fmt: skip

    out = []
    groups = [["l1", "relu"], ["l2", "add"], ["l3"], ["add_1"]]
    partitions = make(groups)
    partitioner_module.set_parents_and_children(partitions)
    partitioner_module.get_bfs_level_partition(partitions)
    out.append(show(partitions))
    out.append(
        sorted((n.name, i) for n, i in partitioner_module.get_node_to_partition_mapping(partitions).items())
    )
    devices = [utils.Device("a", 300, 0), utils.Device("b", 200, 1), utils.Device("c", 150, 2)]
    out.append({k: tuple(v) for k, v in partitioner_module.get_logical_id_to_device(devices).items()})
    for partition in partitions:
        partition.logical_device_ids = [partition.partition_id % 2]
    on, left, homeless = partitioner_module.get_device_partition_stats(partitions, devices)
    out.append(
        (
            [(d.name, [p.partition_id for p in v]) for d, v in on.items()],
            [(d.name, v) for d, v in left.items()],
            homeless,
        )
    )
    partitioner_module.reset_partition_device(partitions)
    out.append((partitioner_module.get_device_to_partitions_mapping(partitions, devices), show(partitions)))
    out.append([partitioner_module.check_dependency(p) for p in partitions])
    merged = make(groups)
    partitioner_module.set_parents_and_children(merged)
    partitioner_module.combine_two_partitions(merged[0], merged[2], merged)
    out.append((show(merged), [partitioner_module.check_dependency(p) for p in merged]))
    reordered = make(groups)
    partitioner_module.reorganize_partitions(reordered[::-1])
    out.append(show(reordered))
    return out


def test_helpers_match_torch_fx() -> None:
    assert _helper_results(OURS) == _helper_results(ORACLE)
