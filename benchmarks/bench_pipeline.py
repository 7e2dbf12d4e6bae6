"""Pipeline workloads (issue 14): splitting LLaMA configs on the meta device, and training throughput.

``python3 -m benchmarks --compare torch.fx --only pipeline/`` times fxkit.pipeline against
torch.distributed.pipelining.pipeline on the 7B LLaMA default config (8 stages; torch gets the
equivalent hand-written split_spec, since it cannot balance by itself).

``python3 -m benchmarks.bench_pipeline`` prints every figure the issue asks for, each measured in a
fresh process: the 7B split (fxkit, and torch when it succeeds), the 70B split into 16 stages with
the process's peak memory, and CPU training throughput of 2 pipeline processes against one process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from types import ModuleType
from typing import Any, Dict, Tuple

import torch

from benchmarks.harness import Workload

SPLIT_7B_SECONDS, SPLIT_70B_SECONDS, SPLIT_70B_BYTES = 5.0, 30.0, 2 * 1024**3


def _meta_llama(size: str) -> Tuple[torch.nn.Module, Tuple[Any, ...], Dict[str, Any]]:
    """A LLaMA config on the meta device and one microbatch for it (eager attention with an explicit
    mask: transformers' sdpa mask shortcuts read tensor data, which meta tensors do not have)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    sizes = {
        "7b": {},
        "70b": dict(
            hidden_size=8192,
            intermediate_size=28672,
            num_hidden_layers=80,
            num_attention_heads=64,
            num_key_value_heads=8,
            vocab_size=32000,
        ),
    }
    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(attn_implementation="eager", **sizes[size]))
    ids = torch.zeros(1, 16, dtype=torch.long, device="meta")
    mask = torch.ones(1, 16, dtype=torch.long, device="meta")
    return model, (ids,), {"attention_mask": mask, "use_cache": False}


def _fxkit_split(state: Tuple[torch.nn.Module, Tuple[Any, ...], Dict[str, Any]], stages: int) -> Any:
    from fxkit.pipeline import pipeline

    model, args, kwargs = state
    return pipeline(model, args, kwargs, num_stages=stages)


def _torch_split(state: Tuple[torch.nn.Module, Tuple[Any, ...], Dict[str, Any]], stages: int) -> Any:
    from torch.distributed.pipelining import SplitPoint, pipeline

    model, args, kwargs = state
    layers = model.config.num_hidden_layers
    spec = {f"model.layers.{layers * i // stages}": SplitPoint.BEGINNING for i in range(1, stages)}
    return pipeline(model, args, kwargs, split_spec=spec)


def workloads() -> list[Workload]:
    def setup(library: ModuleType) -> Any:
        return _meta_llama("7b")

    return [
        Workload(
            "split-llama7b-meta-8",
            fxkit=lambda state: _fxkit_split(state, 8),
            baseline=lambda state: _torch_split(state, 8),
            setup=setup,
            baseline_name="torch.distributed.pipelining",
            description="7B LLaMA default config on meta into 8 stages (torch: hand-written split_spec)",
        )
    ]


# --------------------------------------------------------------------------- the one-shot report


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _measure_split(side: str, size: str, stages: int) -> Dict[str, Any]:
    """The first split in a fresh process (what a job pays once), then a second one (warm)."""
    split = _fxkit_split if side == "fxkit" else _torch_split
    times = []
    try:
        for _ in range(2):
            state = _meta_llama(size)
            start = time.perf_counter()
            split(state, stages)
            times.append(time.perf_counter() - start)
            del state
    except Exception as error:  # noqa: BLE001 - a failing side is reported, not fatal
        return {"error": f"{type(error).__name__}: {str(error)[:200]}"}
    return {"seconds": times[0], "warm_seconds": times[1], "peak_rss": _peak_rss_bytes()}


def _throughput_model() -> Tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=2048,
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=8,
    )
    tokens = torch.randint(0, 2048, (16, 129))
    return LlamaForCausalLM(config), tokens[:, :-1], tokens[:, 1:]


THROUGHPUT_STEPS, THROUGHPUT_MICROBATCHES = 4, 8


def _loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())


def _single_process_step(threads: int) -> Dict[str, Any]:
    torch.set_num_threads(threads)
    model, inputs, labels = _throughput_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    times = []
    for _ in range(THROUGHPUT_STEPS + 1):
        start = time.perf_counter()
        optimizer.zero_grad()
        _loss(model(inputs, use_cache=False).logits, labels).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return {"step_seconds": sorted(times[1:])[len(times[1:]) // 2]}


def _pipeline_worker(out: str) -> None:
    import torch.distributed as dist
    from torch.distributed.pipelining import Schedule1F1B

    from fxkit.pipeline import pipeline

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model, inputs, labels = _throughput_model()
    example = inputs.chunk(THROUGHPUT_MICROBATCHES)[0]
    stage = pipeline(model, (example,), {"use_cache": False}, num_stages=world).build_stage(rank, "cpu")
    optimizer = torch.optim.SGD(stage.submod.parameters(), lr=0.01)
    schedule = Schedule1F1B(stage, THROUGHPUT_MICROBATCHES, loss_fn=_loss)
    times = []
    for _ in range(THROUGHPUT_STEPS + 1):
        dist.barrier()
        start = time.perf_counter()
        optimizer.zero_grad()
        if rank == 0:
            schedule.step(inputs)
        else:
            schedule.step(target=labels)
        optimizer.step()
        dist.barrier()
        times.append(time.perf_counter() - start)
    if rank == 0:
        with open(out, "w") as handle:
            json.dump({"step_seconds": sorted(times[1:])[len(times[1:]) // 2]}, handle)
    dist.destroy_process_group()


def _in_fresh_process(*arguments: str) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        out = os.path.join(directory, "result.json")
        command = [sys.executable, "-m", "benchmarks.bench_pipeline", "--one", *arguments, "--out", out]
        if arguments[0] == "pipeline":
            command = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc-per-node=2",
                "-m",
                "benchmarks.bench_pipeline",
                "--one",
                *arguments,
                "--out",
                out,
            ]
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        environment = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path)
        done = subprocess.run(command, capture_output=True, text=True, env=environment)
        if done.returncode != 0 or not os.path.exists(out):
            return {"error": (done.stderr or done.stdout)[-300:]}
        with open(out) as handle:
            return json.load(handle)


def _run_one(arguments: argparse.Namespace) -> None:
    kind = arguments.one[0]
    if kind == "split":
        _, side, size, stages = arguments.one
        result = _measure_split(side, size, int(stages))
    elif kind == "single":
        result = _single_process_step(int(arguments.one[1]))
    else:
        _pipeline_worker(arguments.out)
        return
    with open(arguments.out, "w") as handle:
        json.dump(result, handle)


def _describe_split(label: str, result: Dict[str, Any], limit: float, memory_limit: float = 0) -> str:
    if "error" in result:
        return f"{label}: FAILED {result['error']}"
    verdict = "ok" if result["warm_seconds"] < limit else "MISSED"
    line = (
        f"{label}: {result['warm_seconds']:.2f} s (first in a fresh process {result['seconds']:.2f} s; "
        f"target < {limit:.0f} s: {verdict}), peak RSS {result['peak_rss'] / 1e9:.2f} GB"
    )
    if memory_limit:
        line += f" (target < {memory_limit / 1e9:.1f} GB: {'ok' if result['peak_rss'] < memory_limit else 'MISSED'})"
    return line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.bench_pipeline")
    parser.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument(
        "--skip-torch", action="store_true", help="do not run torch's pipeline on the 7B config"
    )
    parser.add_argument("--only", choices=["split", "throughput"], help="run only one part")
    arguments = parser.parse_args(argv)
    if arguments.one:
        _run_one(arguments)
        return
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if arguments.only != "throughput":
        _report_splits(arguments.skip_torch)
    if arguments.only != "split":
        _report_throughput()
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def _report_splits(skip_torch: bool) -> None:
    seven = _in_fresh_process("split", "fxkit", "7b", "8")
    print(_describe_split("fxkit   7B  -> 8 stages ", seven, SPLIT_7B_SECONDS))
    if not skip_torch:
        torch_7b = _in_fresh_process("split", "torch", "7b", "8")
        print(_describe_split("torch   7B  -> 8 stages ", torch_7b, SPLIT_7B_SECONDS))
    seventy = _in_fresh_process("split", "fxkit", "70b", "16")
    print(_describe_split("fxkit   70B -> 16 stages", seventy, SPLIT_70B_SECONDS, SPLIT_70B_BYTES))


def _report_throughput() -> None:
    single_1 = _in_fresh_process("single", "1")
    single_2 = _in_fresh_process("single", "2")
    piped = _in_fresh_process("pipeline")
    print(
        f"training step, LLaMA 8x512 batch 16x128, {THROUGHPUT_MICROBATCHES} microbatches (median of {THROUGHPUT_STEPS}):"
    )
    for label, result in (
        ("1 process, 1 thread ", single_1),
        ("1 process, 2 threads", single_2),
        ("2 pipeline processes, 1 thread each (1F1B)", piped),
    ):
        shown = (
            f"{result['step_seconds']:.3f} s/step"
            if "step_seconds" in result
            else f"FAILED {result['error']}"
        )
        print(f"  {label}: {shown}")


if __name__ == "__main__":
    main()
