"""Train a small LLaMA-style transformers model with pipeline parallelism on CPU, and show that the
losses match a single-process run.

Run directly (it starts its own 2-process job with torchrun):
    python examples/pipeline_llama.py
or launch the pipeline part yourself:
    torchrun --standalone --nproc-per-node 2 examples/pipeline_llama.py --losses losses.json

fxkit.pipeline captures the model on one microbatch, cuts it into stages balanced by parameter
bytes, and each rank runs its stage under torch.distributed.pipelining's Schedule1F1B (gloo).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from fxkit.pipeline import pipeline

STEPS, MICROBATCHES, BATCH, LENGTH, VOCAB = 4, 4, 8, 16, 128


def build_model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=LENGTH,
    )
    return LlamaForCausalLM(config)


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The same batch every step, so the loss visibly falls as the model memorises it."""
    tokens = torch.randint(0, VOCAB, (BATCH, LENGTH + 1), generator=torch.Generator().manual_seed(1))
    return [(tokens[:, :-1], tokens[:, 1:])] * STEPS


def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten())


def single_process_losses() -> list[float]:
    model = build_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for inputs, labels in batches():
        logits = model(inputs, use_cache=False).logits
        # The schedule computes one loss per microbatch and averages the gradients over them.
        per_microbatch = [
            loss_fn(chunk, target)
            for chunk, target in zip(logits.chunk(MICROBATCHES), labels.chunk(MICROBATCHES))
        ]
        loss = torch.stack(per_microbatch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def pipeline_worker(losses_path: str) -> None:
    import torch.distributed as dist
    from torch.distributed.pipelining import Schedule1F1B

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        model = build_model()
        example = batches()[0][0].chunk(MICROBATCHES)[0]
        pipe = pipeline(model, (example,), {"use_cache": False}, num_stages=world)
        stage = pipe.build_stage(rank, torch.device("cpu"))
        optimizer = torch.optim.SGD(stage.submod.parameters(), lr=0.5)
        schedule = Schedule1F1B(stage, n_microbatches=MICROBATCHES, loss_fn=loss_fn)
        losses = []
        for inputs, labels in batches():
            optimizer.zero_grad()
            microbatch_losses: list[torch.Tensor] = []
            if rank == 0:
                schedule.step(inputs)
            elif rank == world - 1:
                schedule.step(target=labels, losses=microbatch_losses)
            else:
                schedule.step()
            optimizer.step()
            if microbatch_losses:
                losses.append(torch.stack(microbatch_losses).mean().item())
        if rank == world - 1:
            with open(losses_path, "w") as handle:
                json.dump(losses, handle)
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--losses", help="where the last rank writes its losses (JSON)")
    arguments, _ = parser.parse_known_args(sys.argv[1:] if "RANK" in os.environ else [])
    if "RANK" in os.environ:  # started by torchrun
        pipeline_worker(arguments.losses)
        return
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "losses.json")
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
        environment = dict(os.environ, OMP_NUM_THREADS="1")
        subprocess.run([*command, os.path.abspath(__file__), "--losses", path], check=True, env=environment)
        with open(path) as handle:
            piped = json.load(handle)
    reference = single_process_losses()
    for step, (one, two) in enumerate(zip(reference, piped)):
        print(f"step {step}: single process loss {one:.6f}   2-stage pipeline loss {two:.6f}")
    assert len(piped) == STEPS
    torch.testing.assert_close(torch.tensor(piped), torch.tensor(reference), rtol=1e-5, atol=1e-5)


if __name__ == "__main__":
    main()
