"""Capture workloads (issue 6): fxkit.capture against torch.fx.symbolic_trace.

Capture runs every recorded operation on the example values beside the symbols, so it does more
work than symbolic tracing; the target (issue 11) is to stay within 1.5x of torch.fx's trace time on
the models both can trace (the bundled zoo models and a deep MLP; torch.fx traces none of the transformers
models). ``python3 -m benchmarks.bench_capture`` prints the coverage table of the capture zoo
(tests/models): torch.fx's result and fxkit's, model by model, with the time of each.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any, Callable, Tuple

import torch

from benchmarks.harness import Workload

#: capture may take at most 1.5x torch.fx's symbolic_trace time (speed-up >= 1 / 1.5).
CAPTURE_TARGET = 1 / 1.5


def _state(build: Callable[[], Tuple[torch.nn.Module, Tuple[Any, ...]]]) -> Callable[[ModuleType], Any]:
    def setup(library: ModuleType) -> Any:
        return build()

    return setup


def _zoo(name: str) -> Callable[[], Tuple[torch.nn.Module, Tuple[Any, ...]]]:
    def build() -> Tuple[torch.nn.Module, Tuple[Any, ...]]:
        from fxkit import zoo

        return zoo.get_model(name), zoo.example_inputs(name)

    return build


def _deep(n_layers: int) -> Callable[[], Tuple[torch.nn.Module, Tuple[Any, ...]]]:
    def build() -> Tuple[torch.nn.Module, Tuple[Any, ...]]:
        from fxkit import zoo

        model = zoo.deep_mlp(n_layers)
        return model, (torch.randn(2, 4),)

    return build


def _capture(state: Tuple[torch.nn.Module, Tuple[Any, ...]]) -> object:
    import fxkit

    model, inputs = state
    return fxkit.capture(model, inputs)


def _symbolic_trace(state: Tuple[torch.nn.Module, Tuple[Any, ...]]) -> object:
    import torch.fx

    return torch.fx.symbolic_trace(state[0])


def _workload(
    name: str, build: Callable[[], Tuple[torch.nn.Module, Tuple[Any, ...]]], number: int = 1
) -> Workload:
    return Workload(
        name=name,
        fxkit=_capture,
        baseline=_symbolic_trace,
        setup=_state(build),
        target=CAPTURE_TARGET,
        number=number,
        description=f"fxkit.capture vs torch.fx.symbolic_trace on {name.removeprefix('capture-')}",
    )


def workloads() -> list[Workload]:
    return [
        _workload("capture-mlp", _zoo("mlp"), number=20),
        _workload("capture-resnet", _zoo("resnet"), number=5),
        _workload("capture-transformer", _zoo("transformer"), number=5),
        _workload("capture-deep-1k", _deep(1000)),
    ]


def main() -> int:
    """Print the coverage table of the capture zoo."""
    from tests.models import all_entries, coverage_table, run_entry
    from tests.models.hf_zoo import extended_hf_entries

    results = []
    for entry in all_entries() + extended_hf_entries():
        result = run_entry(entry)
        results.append(result)
        fx_time = f"{result.fx_seconds:.3f}s" if result.fx_seconds is not None else "-"
        capture_time = f"{result.capture_seconds:.3f}s" if result.capture_seconds is not None else "-"
        print(
            f"{entry.name:20s} torch.fx {result.fx_status:12s} {fx_time:>8s}   capture {result.capture_status:12s} {capture_time:>8s}",
            file=sys.stderr,
        )
    print(coverage_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
