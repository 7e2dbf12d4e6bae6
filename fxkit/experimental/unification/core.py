"""``unify`` (find a substitution making two terms equal) and ``reify`` (apply one)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any, Dict

from .dispatch import dispatch
from .unification_tools import assoc
from .utils import transitive_get as walk
from .variable import isvar

__all__ = ["reify", "unify"]

# Sequences unify element by element; Python values otherwise only when equal.
seq = (tuple, list, Iterator)


@dispatch(Iterator, dict)
def _reify(t: Any, s: Dict[Any, Any]) -> Any:
    return map(partial(reify, s=s), t)


@dispatch(tuple, dict)  # type: ignore[no-redef]
def _reify(t: Any, s: Dict[Any, Any]) -> Any:  # noqa: F811
    return tuple(reify(item, s) for item in t)


@dispatch(list, dict)  # type: ignore[no-redef]
def _reify(t: Any, s: Dict[Any, Any]) -> Any:  # noqa: F811
    return [reify(item, s) for item in t]


@dispatch(dict, dict)  # type: ignore[no-redef]
def _reify(d: Any, s: Dict[Any, Any]) -> Any:  # noqa: F811
    return {key: reify(value, s) for key, value in d.items()}


@dispatch(object, dict)  # type: ignore[no-redef]
def _reify(o: Any, s: Dict[Any, Any]) -> Any:  # noqa: F811
    return o  # atoms are themselves


def reify(e: Any, s: Dict[Any, Any]) -> Any:
    """``e`` with every variable replaced by its value in substitution ``s`` (followed through
    chains of variables), inside tuples, lists, dicts, iterators and unifiable objects."""
    if not isvar(e):
        return _reify(e, s)
    return reify(s[e], s) if e in s else e


@dispatch(seq, seq, dict)
def _unify(u: Any, v: Any, s: Dict[Any, Any]) -> Any:
    if len(u) != len(v):
        return False
    for pair in zip(u, v):
        s = unify(*pair, s)
        if s is False:
            break
    return s


@dispatch(object, object, dict)
def unify(u: Any, v: Any, s: Dict[Any, Any]) -> Any:
    """A substitution (dict variable -> value) extending ``s`` under which ``u`` and ``v`` are
    equal, or False. Python values that differ and are not sequences have no registered rule
    (NotImplementedError), as in torch.fx."""
    u, v = walk(u, s), walk(v, s)
    if u == v:
        return s
    for variable, value in ((u, v), (v, u)):
        if isvar(variable):
            return assoc(s, variable, value)
    return _unify(u, v, s)


@dispatch(object, object)  # type: ignore[no-redef]
def unify(u: Any, v: Any) -> Any:  # noqa: F811
    return unify(u, v, {})
