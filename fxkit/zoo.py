"""Small bundled models for the command line, the docs and the benchmarks.

Every model here traces symbolically (no data-dependent control flow) and is built
with fixed weights, so the same name always gives the same module and outputs.

>>> from fxkit import zoo
>>> model = zoo.get_model("mlp")
>>> out = model(*zoo.example_inputs("mlp"))
"""

# No `from __future__ import annotations` here: tracing keeps forward()'s annotations, and real
# types (not strings) are what make generated code read `x : torch.Tensor`.
import math
from typing import Callable

import torch
from torch import nn

__all__ = [
    "MODELS",
    "BasicBlock",
    "DeepMLP",
    "MLP",
    "ResNet",
    "Transformer",
    "TransformerBlock",
    "deep_mlp",
    "example_inputs",
    "get_model",
    "list_models",
]

_WEIGHT_SEED = 0
_INPUT_SEED = 1


class MLP(nn.Module):
    """Linear layers with ReLU between them."""

    def __init__(
        self, in_features: int = 32, hidden: int = 64, out_features: int = 10, depth: int = 3
    ) -> None:
        super().__init__()
        widths = [in_features] + [hidden] * (depth - 1) + [out_features]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index != last:
                x = torch.relu(x)
        return x


class BasicBlock(nn.Module):
    """The two-convolution residual block of ResNet-18/34."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A narrow ResNet with the torchvision layout (``layer1.0.conv1`` ...)."""

    def __init__(
        self, widths: tuple[int, ...] = (16, 32, 64), blocks_per_stage: int = 2, num_classes: int = 10
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        in_channels = widths[0]
        for stage, width in enumerate(widths, start=1):
            stride = 1 if stage == 1 else 2
            blocks = [BasicBlock(in_channels, width, stride)]
            blocks += [BasicBlock(width, width) for _ in range(blocks_per_stage - 1)]
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
            in_channels = width
        self.stages = len(widths)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for stage in range(1, self.stages + 1):
            x = getattr(self, f"layer{stage}")(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


class Attention(nn.Module):
    """Multi-head self-attention written out with matmul, softmax, view and transpose."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(
                f"Attention: dim={dim} is not divisible by heads={heads}; pick a dim that is a multiple of heads"
            )
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, dim = x.shape[0], x.shape[1], x.shape[2]
        qkv = self.qkv(x).view(batch, seq, 3, self.heads, self.head_dim)
        qkv = qkv.permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = torch.matmul(q, k.transpose(-2, -1)) * self.scale
        weights = torch.softmax(scores, dim=-1)
        mixed = torch.matmul(weights, v).transpose(1, 2).reshape(batch, seq, dim)
        return self.proj(mixed)


class TransformerBlock(nn.Module):
    """Pre-norm block: attention and a GELU MLP, each with a residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp_ratio * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(mlp_ratio * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class Transformer(nn.Module):
    """A stack of transformer blocks over float input of shape ``[batch, seq, dim]``."""

    def __init__(self, dim: int = 32, heads: int = 4, depth: int = 2) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class DeepMLP(nn.Module):
    """``n_layers`` tiny Linear+tanh layers: a deep, cheap model for trace benchmarks."""

    def __init__(self, n_layers: int, width: int = 4) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # tanh keeps values bounded and non-zero however deep the stack is.
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return x


def mlp() -> MLP:
    """A three-layer MLP, input ``[batch, 32]``."""
    return MLP()


def resnet() -> ResNet:
    """A small ResNet (three stages of two BasicBlocks), input ``[batch, 3, 32, 32]``."""
    return ResNet()


def transformer() -> Transformer:
    """Two transformer blocks of width 32 with 4 heads, input ``[batch, 8, 32]``."""
    return Transformer()


def deep_mlp(n_layers: int, width: int = 4) -> DeepMLP:
    """A DeepMLP of ``n_layers`` layers with fixed weights, input ``[batch, width]``."""
    if n_layers < 1:
        raise ValueError(f"deep_mlp: n_layers must be at least 1, got {n_layers}")
    return _seeded(lambda: DeepMLP(n_layers, width))


MODELS: dict[str, Callable[[], nn.Module]] = {
    "mlp": mlp,
    "resnet": resnet,
    "transformer": transformer,
}

_INPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "mlp": (4, 32),
    "resnet": (2, 3, 32, 32),
    "transformer": (2, 8, 32),
}


def list_models() -> list[str]:
    """The bundled model names, sorted."""
    return sorted(MODELS)


def _check_name(name: str) -> None:
    if name not in MODELS:
        raise KeyError(f"unknown zoo model {name!r}; available models: {', '.join(list_models())}")


def _seeded(build: Callable[[], nn.Module]) -> nn.Module:
    # Fixed weights without touching the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_WEIGHT_SEED)
        return build().eval()


def get_model(name: str) -> nn.Module:
    """A fresh instance of the bundled model ``name``, in eval mode, with fixed weights."""
    _check_name(name)
    return _seeded(MODELS[name])


def example_inputs(name: str, batch: int | None = None) -> tuple[torch.Tensor, ...]:
    """Deterministic example inputs for the bundled model ``name`` (optionally with another batch size)."""
    _check_name(name)
    shape = _INPUT_SHAPES[name]
    if batch is not None:
        shape = (batch,) + shape[1:]
    generator = torch.Generator().manual_seed(_INPUT_SEED)
    return (torch.randn(shape, generator=generator),)
