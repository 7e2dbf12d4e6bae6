"""Unification and reification of user objects, through their attributes."""

from __future__ import annotations

from typing import Any, Dict

from .core import _reify as core_reify
from .core import _unify as core_unify
from .core import reify, unify
from .dispatch import dispatch

__all__ = ["unifiable", "reify_object", "unify_object"]


def unifiable(cls: type) -> type:
    """Class decorator: instances of ``cls`` unify and reify attribute by attribute."""
    for dispatcher, signature, implementation in (
        (core_reify, (cls, dict), reify_object),
        (core_unify, (cls, cls, dict), unify_object),
    ):
        dispatcher.add(signature, implementation)
    return cls


def reify_object(o: Any, s: Dict[Any, Any]) -> Any:
    """``o`` with its attributes reified; ``o`` itself when nothing changes."""
    if hasattr(o, "__slots__"):
        return _reify_object_slots(o, s)
    attributes = reify(o.__dict__, s)
    if attributes == o.__dict__:
        return o
    copy = object.__new__(type(o))
    copy.__dict__.update(attributes)
    return copy


def _reify_object_slots(o: Any, s: Dict[Any, Any]) -> Any:
    values = [getattr(o, slot) for slot in o.__slots__]
    reified = reify(values, s)
    if values == reified:
        return o
    copy = object.__new__(type(o))
    for slot, value in zip(o.__slots__, reified):
        setattr(copy, slot, value)
    return copy


def unify_object(u: Any, v: Any, s: Dict[Any, Any]) -> Any:
    """Unify two objects of one class through their attributes (``__slots__`` or ``__dict__``)."""
    if type(u) is not type(v):
        return False
    if hasattr(u, "__slots__"):
        return unify(
            [getattr(u, slot) for slot in u.__slots__], [getattr(v, slot) for slot in v.__slots__], s
        )
    return unify(u.__dict__, v.__dict__, s)


@dispatch(slice, dict)
def _reify(o: Any, s: Dict[Any, Any]) -> Any:
    return slice(*reify((o.start, o.stop, o.step), s))


@dispatch(slice, slice, dict)
def _unify(u: Any, v: Any, s: Dict[Any, Any]) -> Any:
    return unify((u.start, u.stop, u.step), (v.start, v.stop, v.step), s)
