"""One model of the capture zoo, with the inputs its tests need."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Tuple

from torch import nn

#: Keyword inputs for a model, made fresh on each call (a cache is updated in place by the model).
Inputs = Callable[[nn.Module], Dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """A model builder and three kinds of keyword inputs, each a function of the built model.

    ``example`` is what the model is captured with, ``more`` are inputs of the same structure and
    other values (the graph must give eager's result on each), ``other_paths`` are inputs that may
    take another path through the program (each must give eager's result or make a guard fire).
    Every input function returns equal inputs each time it is called, so eager and the captured
    graph each get their own copy.
    """

    name: str
    category: str
    build: Callable[[], nn.Module]
    example: Inputs
    more: Tuple[Inputs, ...]
    other_paths: Tuple[Inputs, ...]
