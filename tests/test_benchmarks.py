"""The benchmark harness: discovery, interleaved timing, failure reporting, JSON. No timing assertions."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.fx

from benchmarks import __main__ as cli
from benchmarks import bench_graph, harness
from fxkit import zoo


def test_discovery_finds_graph_workloads_with_unique_prefixed_names() -> None:
    workloads, broken = harness.discover()
    assert broken == [], [result.error for result in broken]
    names = [workload.name for workload in workloads]
    assert len(names) == len(set(names))
    assert {"graph/build-10k", "graph/python_code-10k", "graph/pickle-10k"} <= set(names)
    assert all(name.count("/") == 1 for name in names)


def test_select_matches_regex_anywhere_in_the_name() -> None:
    workloads, _ = harness.discover()
    selected = harness.select(workloads, r"build-1\d*k$")
    assert [w.name for w in selected] == ["graph/build-1k", "graph/build-10k", "graph/build-100k"]
    assert harness.select(workloads, None) == workloads


def test_sides_run_interleaved_with_their_own_library() -> None:
    calls: list[str] = []

    def setup(library: ModuleType) -> str:
        return library.__name__

    workload = harness.Workload(
        "order",
        fxkit=lambda state: calls.append(f"fxkit:{state}"),
        baseline=lambda state: calls.append(f"baseline:{state}"),
        setup=setup,
    )
    result = harness.run_workload(workload, harness.Settings(repeats=3, warmup=False))
    assert result.error is None
    assert calls == [
        "fxkit:fxkit",
        "baseline:torch.fx",
        "baseline:torch.fx",
        "fxkit:fxkit",
        "fxkit:fxkit",
        "baseline:torch.fx",
    ]
    assert len(result.fxkit_seconds) == len(result.baseline_seconds) == 3
    assert result.speedup is not None and result.speedup > 0


def test_a_failing_side_is_reported_and_the_other_still_timed() -> None:
    def broken(state: object) -> None:
        raise RuntimeError("no such thing\nsecond line")

    workload = harness.Workload("broken", fxkit=broken, baseline=lambda state: None, target=2.0)
    result = harness.run_workload(workload, harness.Settings(repeats=2))
    assert result.error == "fxkit side: RuntimeError: no such thing"
    assert "Traceback" in (result.error_traceback or "")
    assert result.fxkit_seconds == [] and len(result.baseline_seconds) == 2
    assert result.speedup is None and result.target_met is None
    table = harness.format_table([result])
    assert "FAILED broken: fxkit side: RuntimeError: no such thing" in table


def test_memory_is_measured_per_side() -> None:
    workload = harness.Workload(
        "alloc",
        fxkit=lambda state: [0] * 1000,
        baseline=lambda state: [0] * 100_000,
        track_memory=True,
    )
    result = harness.run_workload(workload, harness.Settings.for_quick_run())
    assert result.fxkit_peak_bytes is not None and result.baseline_peak_bytes is not None
    assert result.baseline_peak_bytes > result.fxkit_peak_bytes > 0
    assert "fxkit peak" in harness.format_table([result])


def test_target_and_speedup_arithmetic() -> None:
    result = harness.Result("r", target=1.5, fxkit_seconds=[1.0, 3.0, 2.0], baseline_seconds=[4.0, 5.0, 6.0])
    assert result.fxkit_median == 2.0 and result.baseline_median == 5.0
    assert result.speedup == pytest.approx(2.5)
    assert result.target_met is True
    assert json.loads(json.dumps(result.to_json()))["speedup"] == pytest.approx(2.5)


def test_build_chain_has_exact_size_and_runs_like_its_own_interpretation() -> None:
    graph = bench_graph.build_chain(torch.fx, 23)
    assert len(graph.nodes) == 23
    module = torch.fx.GraphModule(torch.nn.Module(), graph)
    x = torch.linspace(-2.0, 2.0, 8)
    expected = torch.fx.Interpreter(module).run(x)
    torch.testing.assert_close(module(x), expected)
    with pytest.raises(ValueError, match="at least 3"):
        bench_graph.build_chain(torch.fx, 2)


def test_hand_built_mlp_graph_is_what_tracing_gives() -> None:
    module, model, inputs = bench_graph.mlp_module(torch.fx)
    traced = torch.fx.symbolic_trace(zoo.get_model("mlp"))

    def summary(graph: torch.fx.Graph) -> list[tuple[str, str, object, str, object]]:
        return [(n.op, n.name, n.target, str(n.args), n.type) for n in graph.nodes]

    assert summary(module.graph) == summary(traced.graph)
    torch.testing.assert_close(module(*inputs), model(*inputs))


def test_command_runs_one_quick_workload_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.json"
    threads_before = torch.get_num_threads()
    exit_code = cli.main(
        ["--compare", "torch.fx", "--only", "graph/build-1k$", "--quick", "--json", str(out)]
    )
    assert torch.get_num_threads() == threads_before
    printed = capsys.readouterr().out
    assert "graph/build-1k" in printed
    document = json.loads(out.read_text())
    assert document["compare"] == "torch.fx"
    assert document["settings"]["quick"] is True
    (entry,) = document["results"]
    assert entry["name"] == "graph/build-1k"
    assert len(entry["baseline_seconds"]) == 1
    # fxkit's side either ran or failed with a message; the exit code says which.
    assert (exit_code == 0) == (entry["error"] is None)


def test_unknown_pattern_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--only", "no-such-workload", "--quick"]) == 2
    assert "no workload matches" in capsys.readouterr().err


def test_skip_leaves_out_matching_workloads(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--list", "--only", "graph/build", "--skip", "100k|10k"]) == 0
    assert capsys.readouterr().out.split() == ["graph/build-1k"]
