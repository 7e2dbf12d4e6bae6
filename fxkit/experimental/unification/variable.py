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
        made = super().__new__(cls)
        if token:
            made.token = token if len(token) > 1 else token[0]  # type: ignore[attr-defined]
        else:  # a fresh variable
            made.token, Var._id = f"_{Var._id}", Var._id + 1  # type: ignore[attr-defined]
        return made

    def __hash__(self) -> int:
        return hash((type(self), self.token))  # type: ignore[attr-defined]

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.token == self.token  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return "~" + str(self.token)  # type: ignore[attr-defined]

    __str__ = __repr__


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
