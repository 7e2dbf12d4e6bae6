"""Times fxkit against a baseline (torch.fx, or eager PyTorch) in one process, interleaved.

A benchmark module ``benchmarks/bench_<group>.py`` exposes ``workloads() -> list[Workload]``.
The harness discovers those modules, runs every workload's two sides alternately for a number
of repeats, and reports medians and the speed-up (baseline time / fxkit time). See README.md
beside this file.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib
import json
import pkgutil
import platform
import re
import statistics
import subprocess
import sys
import time
import traceback
import tracemalloc
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Sequence

FXKIT = "fxkit"
TORCH_FX = "torch.fx"


def _no_setup(library: ModuleType) -> None:
    return None


@dataclass(frozen=True)
class Workload:
    """One thing to time, on the fxkit side and on the baseline side.

    ``setup(library)`` runs untimed before every sample, once per side, and its return value is
    what that side's callable receives. ``library`` is the ``fxkit`` module for the fxkit side and
    the ``torch.fx`` module for the baseline side, so one setup usually serves both.
    """

    name: str
    fxkit: Callable[[Any], object]
    baseline: Callable[[Any], object]
    setup: Callable[[ModuleType], Any] = _no_setup
    baseline_name: str = TORCH_FX
    #: the speed-up (baseline time / fxkit time) fxkit should reach; 0.95 means "within 5%".
    target: float | None = None
    #: calls per timed sample, for workloads too short to time one call at a time.
    number: int = 1
    #: at least this many samples per side (unless --quick): short, noise-prone workloads interleave more.
    min_repeats: int = 1
    #: also measure the peak Python heap of one call per side (tracemalloc; a separate untimed run).
    track_memory: bool = False
    description: str = ""


def mirrored(
    name: str,
    run: Callable[[ModuleType, Any], object],
    setup: Callable[[ModuleType], Any] = _no_setup,
    **options: Any,
) -> Workload:
    """A workload whose two sides are the same code: ``run(fx, setup(fx))`` with ``fx`` being
    ``fxkit`` on one side and ``torch.fx`` on the other (fxkit has torch.fx's API)."""

    def setup_with_library(library: ModuleType) -> tuple[ModuleType, Any]:
        return library, setup(library)

    def run_with_library(state: tuple[ModuleType, Any]) -> object:
        return run(*state)

    return Workload(name, run_with_library, run_with_library, setup_with_library, **options)


@dataclass
class Result:
    """Samples (seconds per call) and the outcome of one workload."""

    name: str
    baseline_name: str = TORCH_FX
    target: float | None = None
    description: str = ""
    fxkit_seconds: list[float] = field(default_factory=list)
    baseline_seconds: list[float] = field(default_factory=list)
    fxkit_peak_bytes: int | None = None
    baseline_peak_bytes: int | None = None
    error: str | None = None
    error_traceback: str | None = None

    @property
    def fxkit_median(self) -> float | None:
        return statistics.median(self.fxkit_seconds) if self.fxkit_seconds else None

    @property
    def baseline_median(self) -> float | None:
        return statistics.median(self.baseline_seconds) if self.baseline_seconds else None

    @property
    def speedup(self) -> float | None:
        if self.error is not None or not self.fxkit_median or self.baseline_median is None:
            return None
        return self.baseline_median / self.fxkit_median

    @property
    def target_met(self) -> bool | None:
        if self.target is None or self.speedup is None:
            return None
        return self.speedup >= self.target

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(
            fxkit_median=self.fxkit_median,
            baseline_median=self.baseline_median,
            speedup=self.speedup,
            target_met=self.target_met,
        )
        return data


@dataclass(frozen=True)
class Settings:
    repeats: int = 5
    warmup: bool = True
    #: one sample, no warm-up, one call per sample: checks that everything runs, times nothing well.
    quick: bool = False
    #: measure peak memory for every workload, not only those that ask for it.
    memory: bool = False

    @classmethod
    def for_quick_run(cls, memory: bool = False) -> Settings:
        return cls(repeats=1, warmup=False, quick=True, memory=memory)


class _SideFailed(Exception):
    def __init__(self, side: str, cause: BaseException) -> None:
        super().__init__(side)
        self.side = side
        self.cause = cause


def _load_library(side: str) -> ModuleType:
    return importlib.import_module(FXKIT if side == FXKIT else TORCH_FX)


def _prepare(workload: Workload, side: str) -> tuple[Callable[[Any], object], Any]:
    """The side's callable and a fresh state for it, with earlier garbage collected."""
    state = workload.setup(_load_library(side))
    gc.collect()
    return (workload.fxkit if side == FXKIT else workload.baseline), state


def _time_one_sample(workload: Workload, side: str, number: int) -> float:
    try:
        run, state = _prepare(workload, side)
        start = time.perf_counter()
        for _ in range(number):
            run(state)
        return (time.perf_counter() - start) / number
    except Exception as exc:
        raise _SideFailed(side, exc) from exc


def _peak_memory(workload: Workload, side: str) -> int:
    try:
        run, state = _prepare(workload, side)
        already_tracing = tracemalloc.is_tracing()
        if not already_tracing:
            tracemalloc.start()
        tracemalloc.reset_peak()
        try:
            baseline_bytes = tracemalloc.get_traced_memory()[0]
            run(state)
            return tracemalloc.get_traced_memory()[1] - baseline_bytes
        finally:
            if not already_tracing:
                tracemalloc.stop()
    except Exception as exc:
        raise _SideFailed(side, exc) from exc


def run_workload(workload: Workload, settings: Settings = Settings()) -> Result:
    """Time both sides of ``workload``, alternating which goes first.

    Never raises for a failing side: the failure is recorded in the result, and the other side
    goes on being timed so that its figures are still there.
    """
    result = Result(workload.name, workload.baseline_name, workload.target, workload.description)
    number = 1 if settings.quick else max(1, workload.number)
    sides = [FXKIT, workload.baseline_name]
    samples = {FXKIT: result.fxkit_seconds, workload.baseline_name: result.baseline_seconds}
    failures: list[_SideFailed] = []

    def attempt(measure: Callable[[], Any]) -> Any:
        try:
            return measure()
        except _SideFailed as failure:
            failures.append(failure)
            sides.remove(failure.side)
            return None

    if settings.warmup:
        for side in list(sides):
            attempt(lambda side=side: _time_one_sample(workload, side, 1))
    repeats = settings.repeats if settings.quick else max(settings.repeats, workload.min_repeats)
    for repeat in range(repeats):
        for side in list(sides if repeat % 2 == 0 else reversed(sides)):
            seconds = attempt(lambda side=side: _time_one_sample(workload, side, number))
            if seconds is not None:
                samples[side].append(seconds)
    if settings.memory or workload.track_memory:
        if FXKIT in sides:
            result.fxkit_peak_bytes = attempt(lambda: _peak_memory(workload, FXKIT))
        if workload.baseline_name in sides:
            result.baseline_peak_bytes = attempt(lambda: _peak_memory(workload, workload.baseline_name))
    if failures:
        # A failed side's partial samples would make a misleading median.
        for failure in failures:
            samples[failure.side].clear()
        result.error = "; ".join(_describe(failure) for failure in failures)
        result.error_traceback = "\n".join("".join(traceback.format_exception(f.cause)) for f in failures)
    return result


def _describe(failure: _SideFailed) -> str:
    cause = failure.cause
    first_line = (str(cause).strip().splitlines() or [""])[0]
    return f"{failure.side} side: {type(cause).__name__}: {first_line}"


def discover(package: str = "benchmarks") -> tuple[list[Workload], list[Result]]:
    """Workloads of every ``<package>.bench_*`` module, named ``<group>/<name>``.

    A module that fails to import or to list its workloads becomes a failed Result instead.
    """
    root = importlib.import_module(package)
    workloads: list[Workload] = []
    failures: list[Result] = []
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda info: info.name):
        if not info.name.startswith("bench_"):
            continue
        group = info.name[len("bench_") :]
        try:
            module = importlib.import_module(f"{package}.{info.name}")
            found = list(module.workloads())
        except Exception as exc:
            failures.append(
                Result(
                    f"{group}/*",
                    error=f"{package}.{info.name}: {type(exc).__name__}: {exc}",
                    error_traceback="".join(traceback.format_exception(exc)),
                )
            )
            continue
        workloads.extend(dataclasses.replace(workload, name=f"{group}/{workload.name}") for workload in found)
    return workloads, failures


def select(workloads: Iterable[Workload], pattern: str | None) -> list[Workload]:
    """The workloads whose name matches the regular expression ``pattern`` (anywhere in the name)."""
    if pattern is None:
        return list(workloads)
    compiled = re.compile(pattern)
    return [workload for workload in workloads if compiled.search(workload.name)]


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_speedup(speedup: float | None) -> str:
    if speedup is None:
        return "-"
    return f"{speedup:.2f}x" if speedup < 100 else f"{speedup:.0f}x"


def format_bytes(size: int | None) -> str:
    if size is None:
        return "-"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} B"


def _status(result: Result) -> str:
    if result.error is not None:
        return "FAILED"
    if result.target_met is None:
        return ""
    return "ok" if result.target_met else "MISSED"


def summarize(result: Result) -> str:
    """One line: the medians, the speed-up and the status (or the error)."""
    if result.error is not None:
        return f"FAILED: {result.error}"
    speedup = format_speedup(result.speedup)
    return (
        f"fxkit {format_seconds(result.fxkit_median)}, {result.baseline_name} "
        f"{format_seconds(result.baseline_median)}, speed-up {speedup} {_status(result)}".rstrip()
    )


def format_table(results: Sequence[Result]) -> str:
    """A plain-text table of the results, then the error of every failed workload."""
    with_memory = any(r.fxkit_peak_bytes is not None for r in results)
    header = ["workload", "fxkit", "baseline", "speed-up", "target", "status"]
    if with_memory:
        header += ["fxkit peak", "baseline peak"]
    rows = [header]
    for r in results:
        baseline = format_seconds(r.baseline_median)
        if r.baseline_seconds:
            baseline += f" ({r.baseline_name})"
        row = [
            r.name,
            format_seconds(r.fxkit_median),
            baseline,
            format_speedup(r.speedup),
            "-" if r.target is None else f">={r.target:.2f}x",
            _status(r),
        ]
        if with_memory:
            row += [format_bytes(r.fxkit_peak_bytes), format_bytes(r.baseline_peak_bytes)]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    failed = [r for r in results if r.error is not None]
    if failed:
        lines.append("")
        lines.extend(f"FAILED {r.name}: {r.error}" for r in failed)
    return "\n".join(lines)


def _git_commit() -> str | None:
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.strip() or None


def environment() -> dict[str, Any]:
    """Where the figures come from, stored next to them."""
    import torch

    return {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "git_commit": _git_commit(),
    }


def write_json(path: Path, results: Sequence[Result], settings: Settings, compare: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "compare": compare,
        "settings": dataclasses.asdict(settings),
        "environment": environment(),
        "results": [result.to_json() for result in results],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
