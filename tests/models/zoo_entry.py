"""One model of the capture zoo, with the inputs its tests need."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List

from torch import nn


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """A model builder and three kinds of keyword inputs.

    ``example`` is what the model is captured with, ``second`` has the same shapes and other values
    (the graph must give eager's result on it), ``other_paths`` are inputs that may take another path
    through the program (each must either give eager's result or make a guard fire).
    """

    name: str
    category: str
    build: Callable[[], nn.Module]
    example: Callable[[], Dict[str, Any]]
    second: Callable[[], Dict[str, Any]]
    other_paths: Callable[[], List[Dict[str, Any]]]
