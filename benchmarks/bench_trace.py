"""Symbolic tracing workloads (issue 3): fxkit.symbolic_trace against torch.fx.symbolic_trace.

Deep synthetic models (1k and 10k layers) show how trace time grows with model size; the
zoo ResNet and transformer and a few small Hugging Face models are the realistic cases.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable

import torch

from benchmarks.harness import Workload, mirrored

#: fxkit must trace the large models at least this many times faster than torch.fx.
LARGE_MODEL_TARGET = 3.0
#: ... and small ones (30-200 nodes) in at most 0.33x torch.fx's time.
SMALL_MODEL_TARGET = 1 / 0.33


def _zoo(name: str) -> Callable[[ModuleType], torch.nn.Module]:
    def setup(fx: ModuleType) -> torch.nn.Module:
        from fxkit import zoo  # imported here so that a broken fxkit fails workloads, not discovery

        return zoo.get_model(name)

    return setup


def _deep(n_layers: int) -> Callable[[ModuleType], torch.nn.Module]:
    def setup(fx: ModuleType) -> torch.nn.Module:
        from fxkit import zoo

        return zoo.deep_mlp(n_layers)

    return setup


class DeepResidual(torch.nn.Module):
    """A user block repeated ``n_blocks`` times: traced through, with parameters read in forward,
    a leaf module, a tensor method, an operator and a functional per block."""

    class Block(torch.nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.norm = torch.nn.LayerNorm(width)
            self.scale = torch.nn.Parameter(torch.ones(width))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + torch.nn.functional.gelu(self.norm(x)).mul(self.scale)

    def __init__(self, n_blocks: int, width: int = 4) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList(self.Block(width) for _ in range(n_blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


def _deep_residual(n_blocks: int) -> Callable[[ModuleType], torch.nn.Module]:
    return lambda fx: DeepResidual(n_blocks)


def _hf_model(name: str) -> Callable[[ModuleType], Any]:
    """A tiny randomly initialised Hugging Face model; the part both tracers can trace."""

    def setup(fx: ModuleType) -> Any:
        import transformers

        torch.manual_seed(0)
        if name == "llama-mlps":
            config = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4)
            mlp = transformers.models.llama.modeling_llama.LlamaMLP
            return torch.nn.Sequential(*[mlp(config) for _ in range(12)])
        if name == "gpt2-blocks":
            config = transformers.GPT2Config(n_embd=32, n_layer=12, n_head=4)
            return torch.nn.Sequential(
                *[transformers.models.gpt2.modeling_gpt2.GPT2MLP(128, config) for _ in range(12)]
            )
        raise KeyError(name)

    return setup


def _trace(fx: ModuleType, model: torch.nn.Module) -> Any:
    return fx.symbolic_trace(model)


def workloads() -> list[Workload]:
    return [
        mirrored(
            "deep-mlp-1k",
            _trace,
            _deep(1_000),
            target=LARGE_MODEL_TARGET,
            description="symbolic_trace of 1,000 Linear+tanh layers (2,002 nodes)",
        ),
        mirrored(
            "deep-mlp-10k",
            _trace,
            _deep(10_000),
            target=LARGE_MODEL_TARGET,
            description="symbolic_trace of 10,000 Linear+tanh layers (20,002 nodes): 10x the 1k work",
        ),
        # torch.fx scans every parameter on each parameter read, so its time grows with the square
        # of this model's size (about 7 s at 1k blocks); 1k is as far as a same-run comparison goes.
        mirrored(
            "deep-residual-1k",
            _trace,
            _deep_residual(1_000),
            target=LARGE_MODEL_TARGET,
            description="1,000 traced-through user blocks with parameter reads (6,002 nodes)",
        ),
        # Small models (issue 10): fixed per-trace costs dominate (the patches, which fxkit now puts
        # on nn.Module._call_impl and on the traced classes' __getattr__ rather than on dunders of
        # nn.Module, which CPython propagates to every subclass; the math autowrapping; GraphModule
        # construction). Target: at most 0.33x torch.fx's time.
        mirrored(
            "zoo-resnet",
            _trace,
            _zoo("resnet"),
            number=5,
            target=SMALL_MODEL_TARGET,
            description="the bundled ResNet (54 nodes)",
        ),
        mirrored(
            "small-mlp-30",
            _trace,
            _deep(30),
            number=5,
            target=SMALL_MODEL_TARGET,
            description="symbolic_trace of 30 Linear+tanh layers (62 nodes)",
        ),
        mirrored(
            "zoo-transformer", _trace, _zoo("transformer"), number=5, description="the bundled transformer"
        ),
        mirrored(
            "hf-llama-mlps",
            _trace,
            _hf_model("llama-mlps"),
            number=5,
            description="12 LLaMA MLP blocks (transformers, random weights)",
        ),
        mirrored(
            "hf-gpt2-mlps",
            _trace,
            _hf_model("gpt2-blocks"),
            number=5,
            description="12 GPT-2 MLP blocks (transformers, random weights)",
        ),
    ]
