"""Logic variables: ``Var`` objects, and ordinary values declared as variables for a while."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Hashable, Iterator, List

from .dispatch import dispatch
from .utils import hashable

_glv: set = set()  # values acting as logic variables (see ``variables``)


class Var:
    """A logic variable. ``Var("x")`` has token ``"x"`` (shown ``~x``); ``Var()`` gets a fresh
    token ``_1``, ``_2`` ...; several arguments make a tuple token. Variables with equal
    tokens are equal."""

    _id = 1

    def __new__(cls, *token: Hashable) -> "Var":
        if not token:
            token = (f"_{Var._id}",)
            Var._id += 1
        obj = object.__new__(cls)
        obj.token = token[0] if len(token) == 1 else token  # type: ignore[attr-defined]
        return obj

    def __str__(self) -> str:
        return f"~{self.token}"  # type: ignore[attr-defined]

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.token == other.token  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.token))  # type: ignore[attr-defined]


def var() -> Callable[..., Var]:
    """A factory of variables: ``var()("x")`` (torch.fx's spelling)."""
    return lambda *args: Var(*args)


def vars() -> Callable[[int], List[Callable[..., Var]]]:  # noqa: A001  (torch.fx's name)
    """A factory of ``n`` variable factories."""
    return lambda n: [var() for _ in range(n)]


@dispatch(Var)
def isvar(v: Any) -> bool:
    return True


@dispatch(object)  # type: ignore[no-redef]
def isvar(o: Any) -> bool:  # noqa: F811
    return bool(_glv) and hashable(o) and o in _glv


@contextmanager
def variables(*variables: Hashable) -> Iterator[None]:
    """Within the block, treat the given values as logic variables too."""
    added = set(variables) - _glv
    _glv.update(added)
    try:
        yield
    finally:
        _glv.difference_update(added)
