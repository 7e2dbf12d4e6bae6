"""passes.net_min_base against torch.fx's: the same minimizer subclass (run_b adds 1 after every
torch.sin) searched with each traversal; culprits, reports, results and hook calls compared."""

from __future__ import annotations

import contextlib
import io
import re
from typing import Any, Dict, List, Tuple

import pytest
import torch
import torch.fx
import torch.fx.passes.net_min_base as oracle

import fxkit
import fxkit.passes.net_min_base as ours

BOTH = [(torch.fx, oracle), (fxkit, ours)]


class Chain(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(x)
        d = torch.cos(torch.sin(a) * 2)
        return torch.tanh(d + a)


def _minimizer_class(fx: Any, net_min_base: Any, calls: List[Any], fail_run: bool) -> Any:
    class BrokenSin(fx.Transformer):
        def call_function(self, target: Any, args: Any, kwargs: Any) -> Any:
            out = super().call_function(target, args, kwargs)
            return out + 1 if target is torch.sin else out

    class Minimizer(net_min_base._MinimizerBase):
        def run_a(self, mod: Any, inputs: Any, report_idx: int = -1) -> Any:
            calls.append(("a", [n.name for n in mod.graph.nodes if n.op != "output"], len(inputs)))
            return mod(*inputs)

        def run_b(self, mod: Any, inputs: Any, report_idx: int = -1) -> Any:
            if fail_run and any(n.target is torch.sin for n in mod.graph.nodes):
                raise ValueError("backend has no sin")
            return BrokenSin(mod).transform()(*inputs)

    return Minimizer


def _compare(a: Any, b: Any, names: List[str]) -> Tuple[float, bool]:
    pairs = zip(a, b) if isinstance(a, (tuple, list)) else [(a, b)]
    diff = max((x - y).abs().max().item() for x, y in pairs)
    return diff, diff < 1e-4


def _run(libs: Any, settings: Dict[str, Any], fail_run: bool = False, **minimize: Any) -> Dict[str, Any]:
    fx, net_min_base = libs
    calls: List[Any] = []
    exclusions: List[Any] = []
    exported: List[Any] = []
    minimizer = _minimizer_class(fx, net_min_base, calls, fail_run)(
        fx.symbolic_trace(Chain()), (torch.linspace(-1, 1, 6).reshape(2, 3),), _compare,
        net_min_base._MinimizerSettingBase(**settings),
        module_exporter=lambda inputs, mod, name: exported.append(name),
        exclusion_fn=lambda nodes, start, end: exclusions.append(([n.name for n in nodes], start, end)),
    )  # fmt: skip
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        culprits = minimizer.minimize(**minimize)
    return {
        "culprits": sorted(node.name for node in culprits),
        "reports": minimizer.reports,
        "results": {key: round(value, 5) for key, value in minimizer.results.items()},
        "printed": printed.getvalue(),
        "calls": calls,
        "exclusions": exclusions,
        "exported": exported,
        "outputs": sorted(minimizer.a_outputs),
    }


CASES = [
    {"traverse_method": "sequential"},
    {"traverse_method": "sequential", "find_all": True},
    {"traverse_method": "sequential", "accumulate_error": True},
    {"traverse_method": "sequential", "all_outputs": True},
    {"traverse_method": "accumulate"},
    {"traverse_method": "binary"},
    {"traverse_method": "binary", "all_outputs": True},
]


@pytest.mark.parametrize("settings", CASES, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_minimize_matches_torch_fx(settings: Dict[str, Any]) -> None:
    assert _run(BOTH[1], settings) == _run(BOTH[0], settings)


@pytest.mark.parametrize("method", ["sequential", "binary"])
def test_run_errors_are_culprits_like_torch_fx(method: str) -> None:
    ours_run, theirs = (
        _run(BOTH[1], {"traverse_method": method}, True),
        _run(BOTH[0], {"traverse_method": method}, True),
    )
    assert ours_run["culprits"] == theirs["culprits"] == ["sin"]
    if method == "sequential":
        assert ours_run == theirs


class Clean(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cos(torch.relu(x)) + 1


@pytest.mark.parametrize("find_last_node", [None, True])
def test_block_search_matches_torch_fx(find_last_node: Any) -> None:
    settings = {"traverse_method": "block"}
    ours_run = _run(BOTH[1], settings, find_last_node=find_last_node)
    assert ours_run == _run(BOTH[0], settings, find_last_node=find_last_node)
    assert ours_run["culprits"] == (["relu", "sin"] if find_last_node else ["sin"])


def test_block_search_without_culprits_matches_torch_fx() -> None:
    def run(libs: Any) -> Tuple[List[str], Any]:
        fx, net_min_base = libs
        minimizer = _minimizer_class(fx, net_min_base, [], False)(
            fx.symbolic_trace(Clean()), (torch.ones(2, 3),), _compare,
            net_min_base._MinimizerSettingBase(traverse_method="block"),
        )  # fmt: skip
        with contextlib.redirect_stdout(io.StringIO()):
            return sorted(n.name for n in minimizer.minimize()), minimizer.reports

    assert run(BOTH[1]) == run(BOTH[0])


def _sorted_sets(text: Any) -> Any:
    """Report text with each ``{a, b}`` node set written in sorted order (set order varies)."""
    if isinstance(text, list):
        return [_sorted_sets(item) for item in text]
    return re.sub(r"\{([^{}:']*)\}", lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}", text)


@pytest.mark.parametrize("skip_nodes", [["cos"], ["mul"], ["relu", "tanh"]], ids=str)
def test_skip_search_reports_match_torch_fx(skip_nodes: List[str]) -> None:
    settings = {"traverse_method": "skip"}
    ours_run = _run(BOTH[1], settings, skip_nodes=skip_nodes)
    theirs = _run(BOTH[0], settings, skip_nodes=skip_nodes)
    for key in ("reports", "printed"):
        ours_run[key], theirs[key] = _sorted_sets(ours_run[key]), _sorted_sets(theirs[key])
    # torch.fx 2.13 lets the last stretch's result replace the culprits found before it; fxkit
    # returns the culprits of every failing stretch.
    assert ours_run.pop("culprits") == {"cos": ["mul", "relu", "sin"], "mul": ["relu", "sin"]}.get(
        skip_nodes[0], ["add", "cos", "mul", "sin"]
    )
    theirs.pop("culprits")
    assert ours_run == theirs


def test_defined_checks_the_requested_stretch() -> None:
    defined = _run(BOTH[1], {"traverse_method": "defined"}, start="sin", end="mul")
    assert defined["culprits"] == ["mul", "sin"] and "Defined graph from sin to mul" in defined["printed"]


def test_settings_errors_and_defaults_match_torch_fx() -> None:
    assert str(ours._MinimizerSettingBase()) == str(oracle._MinimizerSettingBase())
    assert vars(ours._MinimizerSettingBase()) == vars(oracle._MinimizerSettingBase())
    for fx, net_min_base in BOTH:
        minimizer = net_min_base._MinimizerBase(
            fx.symbolic_trace(Chain()), (torch.ones(2, 3),), _compare,
            net_min_base._MinimizerSettingBase(traverse_method="bogus"),
        )  # fmt: skip
        with (
            contextlib.redirect_stdout(io.StringIO()),
            pytest.raises(RuntimeError, match="Unknown traverse method bogus!"),
        ):
            minimizer.minimize()
        with pytest.raises(RuntimeError, match=r"run_a\(\) is not implemented"):
            minimizer.run_a(minimizer.module, (torch.ones(2, 3),))
