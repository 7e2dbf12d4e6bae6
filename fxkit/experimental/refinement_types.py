"""Constraints collected while refining gradual types (see :class:`graph_gradual_typechecker.Refine`)."""

from typing import Any


class Equality:
    """The constraint ``lhs = rhs`` between two dimensions (numbers or unknowns)."""

    def __init__(self, lhs: Any, rhs: Any) -> None:
        self.lhs = lhs
        self.rhs = rhs

    def __str__(self) -> str:
        return f"{self.lhs} = {self.rhs}"

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Equality) and self.lhs == other.lhs and self.rhs == other.rhs
