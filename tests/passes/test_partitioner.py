"""CapabilityBasedPartitioner against torch.fx's: the same partitions (ids, nodes, node orders)
on many random graphs and supports, and the same fused code and outputs."""

from __future__ import annotations

import operator
import random

import pytest
import torch
import torch.fx
from torch.fx.passes.infra import partitioner as oracle
from torch.fx.passes.operator_support import create_op_support as oracle_create_op_support

import fxkit as fx
from fxkit.passes.infra import partitioner
from fxkit.passes.operator_support import create_op_support


def _random_program(tracing, seed):
    """A random DAG of unary/binary/concat ops over two inputs; node names are n0, n1, ..."""
    rng = random.Random(seed)
    graph = tracing.Graph()
    values = [graph.placeholder("x"), graph.placeholder("y")]
    for index in range(rng.randint(3, 14)):
        kind = rng.random()
        window = values[-6:]
        if kind < 0.4:
            node = graph.call_function(torch.relu, (rng.choice(window),), name=f"n{index}")
        elif kind < 0.8:
            node = graph.call_function(
                operator.add, (rng.choice(window), rng.choice(window)), name=f"n{index}"
            )
        elif kind < 0.9:
            pieces = graph.call_function(torch.chunk, (rng.choice(window), 1), name=f"c{index}")
            node = graph.call_function(operator.getitem, (pieces, 0), name=f"n{index}")
        else:
            parts = [rng.choice(window) for _ in range(3)]
            node = graph.call_function(torch.stack, (parts,), name=f"n{index}")
            node = graph.call_function(torch.sum, (node, 0), name=f"s{index}")
        values.append(node)
    graph.output(tuple(v for v in values[2:] if not v.users) or values[-1])
    return tracing.GraphModule(torch.nn.Module(), graph)


def _partitions(parts):
    return [(part.id, [(node.name, order) for node, order in part.nodes.items()]) for part in parts]


OPTIONS = [
    {},
    {"allows_single_node_partition": True},
    {"skip_horizontal_fusion": True},
    {"allows_single_node_partition": True, "skip_horizontal_fusion": True},
    {"allowed_single_node_partition_ops": ["torch.relu"]},
    {"non_compute_ops": ["torch.relu"], "allows_single_node_partition": True},
    {"non_compute_ops": ["torch.relu", "_operator.add"]},
    {"non_compute_ops": ["_operator.getitem"], "allowed_single_node_partition_ops": ["torch.chunk"]},
]


@pytest.mark.parametrize("options", range(len(OPTIONS)))
def test_random_graphs_partition_like_torch_fx(options):
    kwargs = OPTIONS[options]
    for seed in range(40):
        rng = random.Random(1000 + seed)
        ours, theirs = _random_program(fx, seed), _random_program(torch.fx, seed)
        names = [node.name for node in theirs.graph.nodes if node.op == "call_function"]
        supported = {name for name in names if rng.random() < 0.65}

        def is_supported(submodules, node, supported=supported):
            return node.name in supported

        got = partitioner.CapabilityBasedPartitioner(ours, create_op_support(is_supported), **kwargs)
        expected = oracle.CapabilityBasedPartitioner(theirs, oracle_create_op_support(is_supported), **kwargs)
        got_parts, expected_parts = got.propose_partitions(), expected.propose_partitions()
        assert _partitions(got_parts) == _partitions(expected_parts), (seed, sorted(supported))
        fused, reference = got.fuse_partitions(got_parts), expected.fuse_partitions(expected_parts)
        assert fused.code == reference.code, seed
        x, y = torch.randn(3), torch.randn(3)
        torch.testing.assert_close(fused(x, y), reference(x, y))


def test_remove_bookend_non_compute_ops_matches():
    for seed in range(30):
        ours, theirs = _random_program(fx, seed), _random_program(torch.fx, seed)

        def is_supported(submodules, node):
            return node.op == "call_function"

        kwargs = {
            "non_compute_ops": ["torch.relu", "_operator.getitem"],
            "allows_single_node_partition": True,
        }
        got = partitioner.CapabilityBasedPartitioner(ours, create_op_support(is_supported), **kwargs)
        expected = oracle.CapabilityBasedPartitioner(theirs, oracle_create_op_support(is_supported), **kwargs)
        got_parts, expected_parts = got.propose_partitions(), expected.propose_partitions()
        got.remove_bookend_non_compute_ops(got_parts)
        expected.remove_bookend_non_compute_ops(expected_parts)
        assert _partitions(got_parts) == _partitions(expected_parts), seed


class Pipeline(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)

    def forward(self, x):
        return torch.sigmoid(self.linear(torch.relu(x))).neg() + x


@pytest.mark.parametrize("support_everything", [False, True])
def test_partition_and_fuse_module_like_torch_fx(support_everything):
    from torch.fx.passes.operator_support import OperatorSupport as OracleOperatorSupport

    from fxkit.passes.operator_support import OperatorSupport

    table = {"torch.relu": None, "torch.sigmoid": None, "torch.nn.modules.linear.Linear": None}
    if support_everything:
        table.update({"neg": None, "_operator.add": None})
    model = Pipeline()
    ours = partitioner.CapabilityBasedPartitioner(fx.symbolic_trace(model), OperatorSupport(table))
    theirs = oracle.CapabilityBasedPartitioner(torch.fx.symbolic_trace(model), OracleOperatorSupport(table))
    # OperatorSupport accepts placeholders and outputs, so torch.fx puts them in partitions too.
    assert _partitions(ours.propose_partitions()) == _partitions(theirs.propose_partitions())
    # torch.fx then fuses the placeholder too and returns a forward() without inputs; fxkit refuses.
    with pytest.raises(AssertionError, match="x is a placeholder"):
        ours.partition_and_fuse()
    assert "def forward(self):" in theirs.partition_and_fuse().code


def test_partition_and_fuse_calls_only_like_torch_fx():
    from torch.fx.passes.operator_support import OperatorSupport as OracleOperatorSupport

    from fxkit.passes.operator_support import OperatorSupport, chain, create_op_support

    table = {"torch.relu": None, "torch.sigmoid": None, "torch.nn.modules.linear.Linear": None}
    model = Pipeline()

    def calls_only(submodules, node):
        return node.op.startswith("call")

    ours = partitioner.CapabilityBasedPartitioner(
        fx.symbolic_trace(model), chain(OperatorSupport(table), create_op_support(calls_only))
    )
    theirs = oracle.CapabilityBasedPartitioner(
        torch.fx.symbolic_trace(model),
        oracle_create_op_support(
            lambda submodules, node: (
                calls_only(submodules, node)
                and OracleOperatorSupport(table).is_node_supported(submodules, node)
            )
        ),
    )
    fused, reference = ours.partition_and_fuse(prefix="acc_"), theirs.partition_and_fuse(prefix="acc_")
    assert fused.code == reference.code
    assert fused.acc_0.code == reference.acc_0.code
    assert type(fused.acc_0).__name__ == "acc_0"
    x = torch.randn(2, 4)
    torch.testing.assert_close(fused(x), model(x))


def test_partition_object_like_torch_fx():
    graph = fx.Graph()
    x = graph.placeholder("x")
    relu = graph.call_function(torch.relu, (x,))
    part = partitioner.Partition(id=3, nodes=[x, relu], node_orders=[2, 1])
    assert (part.id, part.size(), repr(part)) == (3, 2, "{x: 2, relu: 1}")
    part.remove_node(x)
    part.add_node(x, 7)
    assert part.nodes == {relu: 1, x: 7}
    assert partitioner.Partition().nodes == {} and partitioner.Partition(nodes=[x]).nodes == {x: None}
