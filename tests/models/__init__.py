"""The capture zoo: real transformers models and our own data-dependent models.

:func:`run_entry` puts one model through torch.fx's ``symbolic_trace`` and through
``fxkit.capture``, compares the captured graph with eager execution, and feeds it inputs that take
other paths; :func:`coverage_table` prints the results side by side.
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any, Dict, List, Optional

import torch

from .control_flow_zoo import control_flow_entries
from .hf_zoo import hf_entries
from .zoo_entry import ZooEntry

__all__ = ["ZooEntry", "ZooResult", "all_entries", "coverage_table", "run_entry", "tensors_of"]

# A guard's error names the guard and the user's file:line.
GUARD_MESSAGE = re.compile(r"Guard guard_\d+ failed at .+:\d+")


def all_entries() -> List[ZooEntry]:
    return hf_entries() + control_flow_entries()


def tensors_of(value: Any) -> List[torch.Tensor]:
    """The tensors of a model output (tensors, tuples, lists, dicts and ModelOutputs), in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for item in value.values() for t in tensors_of(item)]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in tensors_of(item)]
    return []


def same_outputs(expected: Any, actual: Any) -> bool:
    left, right = tensors_of(expected), tensors_of(actual)
    return len(left) == len(right) and all(
        a.shape == b.shape and a.dtype == b.dtype and torch.allclose(a, b, rtol=1e-4, atol=1e-5)
        for a, b in zip(left, right)
    )


@dataclasses.dataclass
class ZooResult:
    name: str
    category: str
    fx_status: str = "-"
    capture_status: str = "-"
    same_on_example: bool = False
    same_on_second: bool = False
    other_paths: List[str] = dataclasses.field(default_factory=list)  # "guard", "same", "MISMATCH", "error"
    guard_message: Optional[str] = None
    guards: int = 0
    leaves: List[str] = dataclasses.field(default_factory=list)
    fx_seconds: Optional[float] = None
    capture_seconds: Optional[float] = None
    capture_error: Optional[str] = None

    @property
    def captured(self) -> bool:
        """Captured, and equal to eager on both inputs of the example's shapes."""
        return self.capture_status == "ok" and self.same_on_example and self.same_on_second

    @property
    def guard_fired(self) -> bool:
        return "guard" in self.other_paths


def _eager(model: torch.nn.Module, inputs: Dict[str, Any]) -> Any:
    with torch.no_grad():
        return model(**inputs)


def _torch_fx_status(model: torch.nn.Module, result: ZooResult) -> None:
    import torch.fx

    start = time.perf_counter()
    try:
        torch.fx.symbolic_trace(model)
    except Exception as error:  # the class of error is what the table shows
        result.fx_status = type(error).__name__
        return
    result.fx_seconds = time.perf_counter() - start
    result.fx_status = "ok"


def run_entry(entry: ZooEntry, with_torch_fx: bool = True) -> ZooResult:
    """Capture one zoo model and check it against eager on all of its inputs."""
    import fxkit

    result = ZooResult(entry.name, entry.category)
    torch.manual_seed(0)
    model = entry.build().eval()
    if with_torch_fx:
        _torch_fx_status(model, result)
    example = entry.example()
    expected = _eager(model, example)
    start = time.perf_counter()
    try:
        captured = fxkit.capture(model, entry.example())
    except Exception as error:
        result.capture_status = type(error).__name__
        result.capture_error = f"{type(error).__name__}: {error}"
        return result
    result.capture_seconds = time.perf_counter() - start
    result.capture_status = "ok"
    result.guards = len(captured.guards)
    result.leaves = [leaf.name for leaf in captured.leaves]
    graph_module = captured.graph_module
    with torch.no_grad():
        result.same_on_example = same_outputs(expected, graph_module(**example))
        second = entry.second()
        result.same_on_second = same_outputs(_eager(model, second), graph_module(**second))
        for inputs in entry.other_paths():
            result.other_paths.append(_other_path_outcome(model, graph_module, inputs, result))
    return result


def _other_path_outcome(
    model: torch.nn.Module, graph_module: Any, inputs: Dict[str, Any], result: ZooResult
) -> str:
    from fxkit.guards import GuardError

    try:
        actual = graph_module(**inputs)
    except GuardError as error:
        if result.guard_message is None:
            result.guard_message = str(error)
        return "guard"
    except Exception:
        actual = _RAISED
    try:
        expected = _eager(model, inputs)
    except Exception:
        expected = _RAISED
    if actual is _RAISED or expected is _RAISED:
        return "error" if actual is expected else "MISMATCH"
    return "same" if same_outputs(expected, actual) else "MISMATCH"


_RAISED = object()


def coverage_table(results: List[ZooResult]) -> str:
    """One line per model: torch.fx, capture, numerics, other paths; totals at the end."""
    header = (
        "model",
        "kind",
        "torch.fx",
        "capture",
        "=eager",
        "=eager 2nd",
        "other paths",
        "guards",
        "leaves",
    )
    rows = [header]
    for r in results:
        rows.append(
            (
                r.name,
                r.category,
                r.fx_status,
                r.capture_status,
                _yes(r.same_on_example),
                _yes(r.same_on_second),
                ",".join(r.other_paths) or "-",
                str(r.guards),
                str(len(r.leaves)),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    total = len(results)
    fx_ok = sum(r.fx_status == "ok" for r in results)
    captured = sum(r.captured for r in results)
    fired = sum(r.guard_fired for r in results)
    lines.append(
        f"torch.fx symbolic_trace: {fx_ok}/{total}   fxkit capture (equal to eager): {captured}/{total}"
        f" ({100.0 * captured / max(total, 1):.0f}%)   guard fired on another path: {fired}/{total}"
    )
    return "\n".join(lines)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
