"""The capture zoo: real transformers models called as users call them, and our own models.

:func:`run_entry` puts one model through torch.fx's ``symbolic_trace`` and through
``fxkit.capture``, then runs eager and the captured graph side by side on the example, on more
inputs of the same structure and on inputs that take other paths, comparing everything that comes
out (every tensor, every type, every plain value, and the inputs the model updates in place, such
as a cache); :func:`coverage_table` prints the results side by side.
"""

from __future__ import annotations

import dataclasses
import re
import time
import types
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from .control_flow_zoo import control_flow_entries
from .hf_zoo import hf_entries
from .zoo_entry import Inputs, ZooEntry

__all__ = ["ZooEntry", "ZooResult", "all_entries", "coverage_table", "difference", "flatten", "run_entry"]

# A guard's error names the user's file:line.
GUARD_MESSAGE = re.compile(r"\S+\.py:\d+")


def all_entries() -> List[ZooEntry]:
    return hf_entries() + control_flow_entries()


# --------------------------------------------------------------------------- comparing outputs

_PLAIN = (int, float, bool, str, type(None), torch.dtype, torch.device, torch.Size)


def flatten(value: Any, path: str = "out") -> List[Tuple[str, Any]]:
    """Every part of ``value`` with its path: the type of each container, each tensor, each plain value.

    Containers are tuples, lists, dicts (``ModelOutput`` included) and objects holding their data in
    attributes (cache objects and their layers), so two values with equal ``flatten`` are equal
    all the way down.
    """
    found: List[Tuple[str, Any]] = []
    _flatten_into(value, path, found, set())
    return found


def _flatten_into(value: Any, path: str, found: List[Tuple[str, Any]], seen: set) -> None:
    if isinstance(value, (torch.Tensor, type, types.FunctionType)) or isinstance(value, _PLAIN):
        # A class or function held by an object (a cache's layer class) is compared as a value:
        # walking into it would walk a module's worth of shared objects on every path.
        found.append((path, value))
        return
    found.append((path, type(value)))
    if isinstance(value, nn.Module) or id(value) in seen:
        return
    seen = seen | {id(value)}
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, (tuple, list)):
        items = list(enumerate(value))
    else:
        items = sorted(vars(value).items()) if hasattr(value, "__dict__") else []
    for key, item in items:
        _flatten_into(item, f"{path}.{key}", found, seen)


def difference(expected: Any, actual: Any) -> Optional[str]:
    """Where ``actual`` differs from ``expected`` (paths, types, tensors, plain values), or None."""
    left, right = flatten(expected), flatten(actual)
    if [path for path, _ in left] != [path for path, _ in right]:
        missing = sorted({path for path, _ in left} ^ {path for path, _ in right})
        return f"different structure: {missing[:5] if missing else 'another order'}"
    for (path, a), (_, b) in zip(left, right):
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
            if a.shape != b.shape or a.dtype != b.dtype:
                return f"{path}: {tuple(a.shape)} {a.dtype} != {tuple(b.shape)} {b.dtype}"
            if not torch.allclose(a, b, rtol=1e-4, atol=1e-5, equal_nan=True):
                return f"{path}: values differ (max {float((a - b).abs().max()):.3g})"
        elif type(a) is not type(b) and not (isinstance(a, type) and isinstance(b, type)):
            return f"{path}: {type(a).__name__} != {type(b).__name__}"
        elif a != b:
            return f"{path}: {a!r} != {b!r}"
    return None


# --------------------------------------------------------------------------- running one entry


@dataclasses.dataclass
class ZooResult:
    name: str
    category: str
    fx_status: str = "-"
    capture_status: str = "-"
    differences: List[str] = dataclasses.field(default_factory=list)  # one per input of the same structure
    other_paths: List[str] = dataclasses.field(
        default_factory=list
    )  # "guard", "same", "error", "MISMATCH ..."
    guard_message: Optional[str] = None
    guards: int = 0
    leaves: List[str] = dataclasses.field(default_factory=list)
    fx_seconds: Optional[float] = None
    capture_seconds: Optional[float] = None
    capture_error: Optional[str] = None

    @property
    def same_as_eager(self) -> bool:
        """Equal to eager on the example and on every input of the same structure."""
        return bool(self.differences) and all(not diff for diff in self.differences)

    @property
    def captured(self) -> bool:
        return self.capture_status == "ok" and self.same_as_eager

    @property
    def guard_fired(self) -> bool:
        return "guard" in self.other_paths


def _call(model: Any, inputs: Dict[str, Any]) -> Any:
    with torch.no_grad():
        return model(**inputs)


def _compare(model: nn.Module, graph_module: Any, make: Inputs) -> Optional[str]:
    """Eager and the graph on equal copies of one input: the outputs and the inputs afterwards."""
    eager_inputs, graph_inputs = make(model), make(model)
    expected = _call(model, eager_inputs)
    actual = _call(graph_module, graph_inputs)
    return difference(expected, actual) or difference(eager_inputs, graph_inputs)


def _torch_fx_status(model: nn.Module, result: ZooResult) -> None:
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
    start = time.perf_counter()
    try:
        captured = fxkit.capture(model, entry.example(model))
    except Exception as error:
        result.capture_status = type(error).__name__
        result.capture_error = f"{type(error).__name__}: {error}"
        return result
    result.capture_seconds = time.perf_counter() - start
    left = _traced_values_left_in(model)
    if left:
        result.capture_status = "TracedValuesLeft"
        result.capture_error = f"the capture left traced values in the model: {left}"
        return result
    result.capture_status = "ok"
    result.guards = len(captured.guards)
    result.leaves = [leaf.name for leaf in captured.leaves]
    graph_module = captured.graph_module
    for make in (entry.example, *entry.more):
        result.differences.append(_compare(model, graph_module, make) or "")
    for make in entry.other_paths:
        result.other_paths.append(_other_path_outcome(model, graph_module, make, result))
    return result


def _traced_values_left_in(model: nn.Module) -> List[str]:
    """Attributes, buffers and parameters of the model that hold capture's values (a capture must
    leave the model as it found it)."""
    from fxkit.proxy import Proxy

    left = []
    for name, module in model.named_modules():
        state = dict(vars(module), **module._buffers, **module._parameters)
        left += [f"{name}.{key}".lstrip(".") for key, value in state.items() if isinstance(value, Proxy)]
    return left


def _other_path_outcome(model: nn.Module, graph_module: Any, make: Inputs, result: ZooResult) -> str:
    from fxkit.guards import GuardError

    eager_inputs, graph_inputs = make(model), make(model)
    try:
        actual = _call(graph_module, graph_inputs)
    except GuardError as error:
        if result.guard_message is None:
            result.guard_message = str(error)
        return "guard"
    except Exception as error:
        actual = error
    try:
        expected = _call(model, eager_inputs)
    except Exception as error:
        expected = error
    if isinstance(actual, Exception) or isinstance(expected, Exception):
        both = isinstance(actual, Exception) and isinstance(expected, Exception)
        return (
            "error" if both else f"MISMATCH (eager {type(expected).__name__}, graph {type(actual).__name__})"
        )
    diff = difference(expected, actual) or difference(eager_inputs, graph_inputs)
    return f"MISMATCH ({diff})" if diff else "same"


def coverage_table(results: List[ZooResult]) -> str:
    """One line per model: torch.fx, capture, numerics, other paths; totals at the end."""
    header = ("model", "kind", "torch.fx", "capture", "=eager", "other paths", "guards", "leaves")
    rows = [header]
    for r in results:
        same = f"{sum(not d for d in r.differences)}/{len(r.differences)}" if r.differences else "-"
        paths = ",".join(outcome.split(" ")[0] for outcome in r.other_paths) or "-"
        rows.append(
            (
                r.name,
                r.category,
                r.fx_status,
                r.capture_status,
                same,
                paths,
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
