"""Runs under torchrun: splits models with fxkit.pipeline, trains one step on each rank with torch's
schedules, and checks outputs and every parameter's gradient against a single-process run.

Usage: python -m torch.distributed.run --standalone --nproc-per-node N tests/_pipeline_worker.py CASE...
where CASE is ``model:schedule:stages_per_rank``. Each rank appends ``<case> <parameters checked>`` to
``$PIPELINE_RESULTS/rank<r>.txt`` per passing case.
"""

from __future__ import annotations

import copy
import os
import sys
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from _pipeline_models import MODELS, VOCAB
from torch.distributed import pipelining

from fxkit.pipeline import pipeline

MICROBATCHES = 4


SCHEDULES = {
    "gpipe": pipelining.ScheduleGPipe,
    "1f1b": pipelining.Schedule1F1B,
    "interleaved": pipelining.ScheduleInterleaved1F1B,
}


def check(case: str, rank: int, world: int) -> None:
    model_name, schedule_name, per_rank = case.split(":")
    stages_per_rank = int(per_rank)
    torch.manual_seed(0)
    # "<model>+mask": an attention mask goes in as a keyword, through schedule.step(..., attention_mask=)
    model_name, with_mask = model_name.removesuffix("+mask"), model_name.endswith("+mask")
    model, kwargs, logits_of = MODELS[model_name]()
    reference = copy.deepcopy(model)
    ids = torch.randint(0, VOCAB, (2 * MICROBATCHES, 8))
    target = torch.randint(0, VOCAB, (2 * MICROBATCHES, 8))
    step_kwargs: dict = {}
    if with_mask:
        mask = torch.ones_like(ids)
        mask[::2, -3:] = 0  # padded rows
        step_kwargs = {"attention_mask": mask}

    def loss_fn(output: Any, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(output.flatten(0, 1), labels.flatten())

    num_stages = world * stages_per_rank
    first_kwargs = {**kwargs, **{key: value.chunk(MICROBATCHES)[0] for key, value in step_kwargs.items()}}
    pipe = pipeline(model, (ids.chunk(MICROBATCHES)[0],), first_kwargs, num_stages=num_stages)
    assert pipe.num_stages == num_stages
    mine = list(range(rank, num_stages, world))
    stages = [pipe.build_stage(index, torch.device("cpu")) for index in mine]
    schedule_cls = SCHEDULES[schedule_name]
    schedule = schedule_cls(stages if stages_per_rank > 1 else stages[0], MICROBATCHES, loss_fn=loss_fn)
    has_first, has_last = 0 in mine, num_stages - 1 in mine
    losses: list = []
    args, keywords = ((ids,), step_kwargs) if has_first else ((), {})
    output = schedule.step(
        *args, target=target if has_last else None, losses=losses if has_last else None, **keywords
    )

    reference_out = logits_of(reference(ids, **kwargs, **step_kwargs))
    reference_losses = [
        loss_fn(chunk, labels)
        for chunk, labels in zip(reference_out.chunk(MICROBATCHES), target.chunk(MICROBATCHES))
    ]
    (sum(reference_losses) / MICROBATCHES).backward()
    if has_last:
        torch.testing.assert_close(output, reference_out, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(torch.stack(losses), torch.stack(reference_losses).detach())
    checked = 0
    for index in mine:
        for name, parameter in pipe.get_stage_module(index).named_parameters():
            expected = reference.get_parameter(name).grad
            assert parameter.grad is not None, f"{case}: stage {index} {name} has no gradient"
            torch.testing.assert_close(parameter.grad, expected, rtol=1e-4, atol=1e-6, msg=f"{case}: {name}")
            checked += 1
    assert checked, f"{case}: rank {rank} holds no parameters"
    with open(os.path.join(os.environ["PIPELINE_RESULTS"], f"rank{rank}.txt"), "a") as results:
        results.write(f"{case} {checked}\n")


def main() -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        for case in sys.argv[1:]:
            check(case, rank, world)
            dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
