"""Gradual tensor types: a tensor's rank and dimensions, any of which may be unknown (``Dyn``).

``TensorType((2, Dyn, 4))`` is a rank-3 tensor whose middle dimension is unknown. Two types are
*consistent* when they could describe the same value; one is *more precise* when it says at least
as much. These types drive :mod:`fxkit.experimental.graph_gradual_typechecker`.
"""

from typing import Any, Sequence

from .experimental.unification import Var  # noqa: F401  (unknown dimensions during refinement)

__all__ = ["Dyn", "TensorType", "is_consistent", "is_more_precise"]


class _DynType:
    """The unknown type (or unknown dimension). Use the ``Dyn`` singleton."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _DynType)

    def __repr__(self) -> str:
        return "Dyn"

    __str__ = __repr__


Dyn = _DynType()


class TensorType:
    """A tensor type with the given dimensions; ``TensorType[(1, 2)]`` is the same as ``TensorType((1, 2))``."""

    def __init__(self, dim: Sequence[Any]) -> None:
        self.__origin__ = TensorType
        self.__args__ = dim  # kept as given (tuple or list), like torch.fx

    def __repr__(self) -> str:
        return f"TensorType[{self.__args__}]"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TensorType) and tuple(self.__args__) == tuple(other.__args__)

    @staticmethod
    def __class_getitem__(dims: Sequence[Any]) -> "TensorType":
        return TensorType(dims)


def is_consistent(t1: Any, t2: Any) -> bool:
    """Whether ``t1`` and ``t2`` could describe the same value (``Dyn`` matches anything)."""
    if t1 == t2 or t1 == Dyn or t2 == Dyn or isinstance(t1, Var) or isinstance(t2, Var):
        return True
    if isinstance(t1, TensorType) and isinstance(t2, TensorType):
        a, b = t1.__args__, t2.__args__
        return len(a) == len(b) and all(is_consistent(x, y) for x, y in zip(a, b))
    return False


def is_more_precise(t1: Any, t2: Any) -> bool:
    """Whether ``t1`` says at least as much as ``t2`` (everything is more precise than ``Dyn``)."""
    if t1 == t2 or t2 == Dyn or isinstance(t2, Var):
        return True
    if isinstance(t1, TensorType) and isinstance(t2, TensorType):
        a, b = t1.__args__, t2.__args__
        return len(a) == len(b) and all(is_more_precise(x, y) for x, y in zip(a, b))
    return False
