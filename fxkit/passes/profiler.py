"""A profiling Interpreter: how long each node, and each kind of operation, takes in a run.

profiler = ProfilingInterpreter(traced)
for _ in range(10):
    profiler.run(x)
print(profiler.summary(should_sort=True))
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Dict, List, Sequence

import torch

from fxkit.interpreter import Interpreter
from fxkit.node import Node

__all__ = ["ProfilingInterpreter", "format_table"]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Plain-text table: columns padded to their widest cell, a dashed rule under the header."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max([len(header)] + [len(row[index]) for row in cells]) for index, header in enumerate(headers)]
    lines = ["  ".join(header.ljust(width) for header, width in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * width for width in widths))
    lines.extend("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells)
    return "\n".join(lines)


def _op_kind(module: torch.nn.Module, node: Node) -> str:
    """A name for the kind of operation: module class, function or method name."""
    if node.op == "call_module":
        try:
            return f"{type(module.get_submodule(node.target)).__name__} (module)"
        except AttributeError:
            return f"{node.target} (module)"
    if node.op == "call_function":
        return getattr(node.target, "__name__", str(node.target))
    if node.op == "call_method":
        return f".{node.target}()"
    return node.op


class ProfilingInterpreter(Interpreter):
    """Runs the module like Interpreter and records wall-clock time per run and per node.

    Times accumulate over every ``run``; ``summary()`` reports averages.
    """

    def __init__(self, mod: torch.nn.Module) -> None:
        super().__init__(mod)
        self.total_runtime_sec: List[float] = []
        self.runtimes_sec: Dict[Node, List[float]] = {}

    def run(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = super().run(*args, **kwargs)
        self.total_runtime_sec.append(time.perf_counter() - start)
        return result

    def run_node(self, n: Node) -> Any:
        start = time.perf_counter()
        result = super().run_node(n)
        self.runtimes_sec.setdefault(n, []).append(time.perf_counter() - start)
        return result

    def summary(self, should_sort: bool = False) -> str:
        """Two tables: per node, then per kind of operation, with mean seconds and the share of
        the mean total run time. ``should_sort`` lists the slowest first."""
        if not self.total_runtime_sec:
            raise RuntimeError("ProfilingInterpreter.summary: call run(...) at least once first")
        mean_total = statistics.mean(self.total_runtime_sec)
        per_node = []
        per_kind: Dict[str, List[float]] = {}
        counts: Dict[str, int] = {}
        for node, times in self.runtimes_sec.items():
            mean = statistics.mean(times)
            kind = _op_kind(self.module, node)
            per_node.append((node.name, node.op, kind, mean))
            per_kind.setdefault(kind, []).append(mean)
            counts[kind] = counts.get(kind, 0) + 1
        if should_sort:
            per_node.sort(key=lambda row: row[3], reverse=True)
        node_rows = [
            (name, op, kind, f"{mean:.6f}", f"{100 * mean / mean_total:.2f}%")
            for name, op, kind, mean in per_node
        ]
        kind_totals = [(kind, counts[kind], sum(means)) for kind, means in per_kind.items()]
        if should_sort:
            kind_totals.sort(key=lambda row: row[2], reverse=True)
        kind_rows = [
            (kind, count, f"{total:.6f}", f"{100 * total / mean_total:.2f}%")
            for kind, count, total in kind_totals
        ]
        return "\n".join(
            [
                f"Mean total run time: {mean_total:.6f} s over {len(self.total_runtime_sec)} run(s)",
                "",
                format_table(
                    ["Node", "Op code", "Operation", "Mean runtime (s)", "Pct total runtime"], node_rows
                ),
                "",
                format_table(["Operation", "Nodes", "Mean runtime (s)", "Pct total runtime"], kind_rows),
            ]
        )
