"""ProfilingInterpreter: same results as eager, one timing per node per run, coherent tables."""

from __future__ import annotations

import pytest
import torch

import fxkit as fx
from fxkit import zoo
from fxkit.passes.profiler import ProfilingInterpreter, format_table


def test_profiles_every_node_and_keeps_results() -> None:
    model = zoo.get_model("resnet").eval()
    inputs = zoo.example_inputs("resnet")
    traced = fx.symbolic_trace(model)
    profiler = ProfilingInterpreter(traced)
    with torch.no_grad():
        for _ in range(3):
            torch.testing.assert_close(profiler.run(*inputs), model(*inputs))
    assert len(profiler.total_runtime_sec) == 3
    assert [node.name for node in profiler.runtimes_sec] == [node.name for node in traced.graph.nodes]
    assert all(len(times) == 3 for times in profiler.runtimes_sec.values())
    assert sum(sum(times) for times in profiler.runtimes_sec.values()) <= sum(profiler.total_runtime_sec)


def test_summary_tables() -> None:
    traced = fx.symbolic_trace(zoo.get_model("mlp"))
    profiler = ProfilingInterpreter(traced)
    profiler.run(*zoo.example_inputs("mlp"))
    text = profiler.summary(should_sort=True)
    lines = text.splitlines()
    assert lines[0].startswith("Mean total run time:")
    node_table = lines[2 : 4 + len(traced.graph.nodes)]
    assert node_table[0].split()[:3] == ["Node", "Op", "code"]
    seconds = [float(line.split()[-2]) for line in node_table[2:]]
    assert seconds == sorted(seconds, reverse=True)
    assert "Linear (module)" in text and "relu" in text
    linear_row = next(
        line for line in lines[5 + len(traced.graph.nodes) :] if line.startswith("Linear (module)")
    )
    linear_count = sum(1 for node in traced.graph.nodes if node.op == "call_module")
    assert linear_row.split()[2] == str(linear_count)


def test_summary_before_run_says_why() -> None:
    with pytest.raises(RuntimeError, match="run"):
        ProfilingInterpreter(fx.symbolic_trace(lambda x: x + 1)).summary()


def test_format_table_aligns_columns() -> None:
    table = format_table(["a", "long header"], [(1, "x"), ("wider cell", "y")])
    lines = table.splitlines()
    assert lines[1] == "----------  -----------"
    assert lines[3].index("y") == lines[0].index("long header")
