"""``python3 -m benchmarks --compare torch.fx [--only PATTERN] [--repeats N] [--quick] [--json PATH]``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from benchmarks import harness

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m benchmarks",
        description="Time fxkit against torch.fx (or eager PyTorch) in the same run, interleaved.",
    )
    parser.add_argument(
        "--compare",
        choices=[harness.TORCH_FX],
        default=harness.TORCH_FX,
        help="the library fxkit is timed against (default: %(default)s)",
    )
    parser.add_argument(
        "--only",
        metavar="PATTERN",
        help="run only workloads whose name matches this regular expression, e.g. 'graph/'",
    )
    parser.add_argument(
        "--skip", metavar="PATTERN", help="leave out workloads whose name matches this regular expression"
    )
    parser.add_argument(
        "--repeats", type=int, metavar="N", help="timed samples per side (default: 5, 1 with --quick)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="one sample per side, no warm-up: checks that everything runs"
    )
    parser.add_argument(
        "--memory", action="store_true", help="also measure peak Python heap (tracemalloc) of every workload"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="torch intra-op threads while timing (default: %(default)s, for steadier figures)",
    )
    parser.add_argument("--strict", action="store_true", help="exit non-zero also when a target is missed")
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        metavar="PATH",
        help="where to write the results (default: benchmarks/results/latest.json)",
    )
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workloads, broken_modules = harness.discover()
    selected = harness.select(workloads, args.only)
    if args.skip is not None:
        skipped = set(w.name for w in harness.select(selected, args.skip))
        selected = [workload for workload in selected if workload.name not in skipped]
    if args.list:
        for workload in selected:
            target = (
                ""
                if workload.target is None
                else f"  (target >= {workload.target:.3g}x vs {workload.baseline_name})"
            )
            print(f"{workload.name}{target}")
        return 0
    if not selected and not broken_modules:
        print(f"no workload matches {args.only!r}; see --list", file=sys.stderr)
        return 2

    settings = (
        harness.Settings.for_quick_run(args.memory) if args.quick else harness.Settings(memory=args.memory)
    )
    if args.repeats is not None:
        settings = dataclasses.replace(settings, repeats=args.repeats)

    import torch

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    results = list(broken_modules)
    try:
        for workload in selected:
            print(f"running {workload.name} ...", file=sys.stderr, flush=True)
            result = harness.run_workload(workload, settings)
            results.append(result)
            print(f"  {harness.summarize(result)}", file=sys.stderr, flush=True)
            # Written after every workload, so a long run that is stopped keeps what it measured.
            harness.write_json(args.json, results, settings, args.compare)
        if not selected:
            harness.write_json(args.json, results, settings, args.compare)
    finally:
        torch.set_num_threads(previous_threads)

    print(harness.format_table(results))
    print(f"\nresults written to {args.json}")
    if any(result.error is not None for result in results):
        return 1
    if args.strict and any(result.target_met is False for result in results):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
