"""The value types a graph keeps as they are: one home for the sets several modules need.

Arguments of these exact types are stored in nodes, copied, frozen, printed and passed to the
running code unchanged; everything else is walked (containers) or turned into nodes (tensors).
"""

from __future__ import annotations

from typing import FrozenSet

import torch

__all__ = ["SCALAR_TYPES", "ATOMIC_ARG_TYPES"]

#: Immutable scalars: safe to share between graphs and between runs.
SCALAR_TYPES: FrozenSet[type] = frozenset(
    {int, float, bool, complex, str, type(None), type(Ellipsis)}
    | {torch.dtype, torch.device, torch.memory_format, torch.layout}
)

#: What a tracer records as a constant argument: the scalars and torch's symbolic scalars.
ATOMIC_ARG_TYPES: FrozenSet[type] = SCALAR_TYPES | {torch.SymInt, torch.SymFloat, torch.SymBool}
