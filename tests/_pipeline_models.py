"""Small models for the pipeline tests: a LLaMA-shaped nn.Module with a tied head, and tiny
Hugging Face LLaMA / GPT-2 configs (random weights, nothing downloaded)."""

from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

VOCAB = 64


class RMSNorm(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(width), RMSNorm(width)
        self.attn = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        h = x + self.attn(self.norm1(x)) + position
        return h + self.mlp(self.norm2(h))


class TinyLM(nn.Module):
    """A LLaMA-shaped model with a tied head read through the parameter (passed between stages)."""

    def __init__(self, width: int = 16, depth: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, width)
        self.position = nn.Parameter(torch.randn(32, width))
        self.layers = nn.ModuleList(Block(width) for _ in range(depth))
        self.norm = RMSNorm(width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        position = self.position[: ids.shape[1]]
        for layer in self.layers:
            x = layer(x, position)
        return F.linear(self.norm(x), self.embed.weight)


def _tiny() -> Tuple[nn.Module, Dict[str, Any], Callable[[Any], torch.Tensor]]:
    return TinyLM(), {}, lambda out: out


def _llama() -> Tuple[nn.Module, Dict[str, Any], Callable[[Any], torch.Tensor]]:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config), {"use_cache": False}, lambda out: out.logits


def _gpt2() -> Tuple[nn.Module, Dict[str, Any], Callable[[Any], torch.Tensor]]:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=VOCAB,
        n_embd=32,
        n_layer=4,
        n_head=4,
        n_positions=32,
        tie_word_embeddings=False,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(config), {"use_cache": False}, lambda out: out.logits


MODELS = {"tiny": _tiny, "llama": _llama, "gpt2": _gpt2}
