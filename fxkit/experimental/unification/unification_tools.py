"""Dictionary and sequence helpers (a small subset of ``toolz``)."""

from __future__ import annotations

import collections
import operator
from collections.abc import Mapping
from typing import Any, Callable, Dict, Iterable, List, Sequence

__all__ = ["merge", "merge_with", "valmap", "keymap", "itemmap", "valfilter", "keyfilter", "itemfilter", "assoc",
           "dissoc", "assoc_in", "update_in", "get_in"]  # fmt: skip


def _factory(func: Callable[..., Any], kwargs: Dict[str, Any]) -> Callable[[], Any]:
    factory = kwargs.pop("factory", dict)
    if kwargs:
        raise TypeError(f"{func.__name__}() got an unexpected keyword argument '{kwargs.popitem()[0]}'")
    return factory


def _dicts(dicts: Sequence[Any]) -> Sequence[Any]:
    """``f(d1, d2)`` and ``f([d1, d2])`` both work."""
    return dicts[0] if len(dicts) == 1 and not isinstance(dicts[0], Mapping) else dicts


def merge(*dicts: Any, **kwargs: Any) -> Any:
    """One dict with the entries of all ``dicts``; later ones win."""
    merged = _factory(merge, kwargs)()
    for d in _dicts(dicts):
        merged.update(d)
    return merged


def merge_with(func: Callable[[List[Any]], Any], *dicts: Any, **kwargs: Any) -> Any:
    """Merge ``dicts``, combining the values of a key with ``func(list_of_values)``."""
    collected: Dict[Any, List[Any]] = {}
    for d in _dicts(dicts):
        for key, value in d.items():
            collected.setdefault(key, []).append(value)
    result = _factory(merge_with, kwargs)()
    for key, values in collected.items():
        result[key] = func(values)
    return result


def valmap(func: Callable[[Any], Any], d: Mapping, factory: Callable[[], Any] = dict) -> Any:
    result = factory()
    result.update(zip(d.keys(), map(func, d.values())))
    return result


def keymap(func: Callable[[Any], Any], d: Mapping, factory: Callable[[], Any] = dict) -> Any:
    result = factory()
    result.update(zip(map(func, d.keys()), d.values()))
    return result


def itemmap(func: Callable[[Any], Any], d: Mapping, factory: Callable[[], Any] = dict) -> Any:
    result = factory()
    result.update(map(func, d.items()))
    return result


def valfilter(predicate: Callable[[Any], bool], d: Mapping, factory: Callable[[], Any] = dict) -> Any:
    result = factory()
    result.update((key, value) for key, value in d.items() if predicate(value))
    return result


def keyfilter(predicate: Callable[[Any], bool], d: Mapping, factory: Callable[[], Any] = dict) -> Any:
    result = factory()
    result.update((key, value) for key, value in d.items() if predicate(key))
    return result


def itemfilter(predicate: Callable[[Any], bool], d: Mapping, factory: Callable[[], Any] = dict) -> Any:
    result = factory()
    result.update(item for item in d.items() if predicate(item))
    return result


def assoc(d: Mapping, key: Any, value: Any, factory: Callable[[], Any] = dict) -> Any:
    """A copy of ``d`` with ``key`` set to ``value``."""
    result = factory()
    result.update(d)
    result[key] = value
    return result


def dissoc(d: Mapping, *keys: Any, **kwargs: Any) -> Any:
    """A copy of ``d`` without ``keys`` (missing keys are ignored)."""
    result = _factory(dissoc, kwargs)()
    result.update(d)
    for key in keys:
        result.pop(key, None)
    return result


def assoc_in(d: Mapping, keys: Sequence[Any], value: Any, factory: Callable[[], Any] = dict) -> Any:
    """A copy of nested ``d`` with the entry at path ``keys`` set to ``value``."""
    return update_in(d, keys, lambda _: value, value, factory)


def update_in(
    d: Mapping, keys: Sequence[Any], func: Callable[[Any], Any], default: Any = None,
    factory: Callable[[], Any] = dict,
) -> Any:  # fmt: skip
    """A copy of nested ``d`` whose entry at path ``keys`` is ``func(old value)`` (``default``
    when missing; missing levels are created with ``factory``)."""
    head, *rest = keys
    result = factory()
    result.update(d)
    if rest:
        inner = d[head] if head in d else factory()
        result[head] = update_in(inner, rest, func, default, factory)
    else:
        result[head] = func(d[head] if head in d else default)
    return result


def get_in(keys: Sequence[Any], coll: Any, default: Any = None, no_default: bool = False) -> Any:
    """``coll[k0][k1]...``; ``default`` when a step fails (unless ``no_default``)."""
    value = coll
    for key in keys:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            if no_default:
                raise
            return default
    return value


def getter(index: Any) -> Callable[[Any], Any]:
    """An item getter; a list of indices gets a tuple."""
    if not isinstance(index, list):
        return operator.itemgetter(index)
    if len(index) == 1:
        only = index[0]
        return lambda x: (x[only],)
    return operator.itemgetter(*index) if index else (lambda x: ())


def groupby(key: Any, seq: Iterable[Any]) -> Dict[Any, List[Any]]:
    """Items of ``seq`` in lists keyed by ``key(item)`` (a non-callable key indexes the item)."""
    if not callable(key):
        key = getter(key)
    groups: Dict[Any, List[Any]] = collections.defaultdict(list)
    for item in seq:
        groups[key(item)].append(item)
    return dict(groups)


def first(seq: Iterable[Any]) -> Any:
    return next(iter(seq))
