"""Small helpers of the multiple-dispatch machinery."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Dict, Hashable, Iterable, List, Sequence, Tuple

from ..utils import _toposort, raises  # noqa: F401  (torch.fx exposes them here too)

__all__ = ["raises", "expand_tuples", "reverse_dict", "groupby", "typename"]


def expand_tuples(L: Sequence[Any]) -> List[Tuple[Any, ...]]:  # noqa: N803  (the library's name)
    """Every combination picking one item of each tuple in ``L`` (other items stay as they are);
    the choices for earlier positions vary fastest."""
    combos: List[Tuple[Any, ...]] = [()]
    for item in reversed(L):
        options = item if isinstance(item, tuple) else (item,)
        combos = [(option, *rest) for rest in combos for option in options]
    return combos


def reverse_dict(d: Dict[Any, Iterable[Hashable]]) -> "OrderedDict[Hashable, Tuple[Any, ...]]":
    """Invert a mapping of key -> values into value -> keys (keys in their original order)."""
    inverted: "OrderedDict[Hashable, Tuple[Any, ...]]" = OrderedDict()
    for key, values in d.items():
        for value in values:
            inverted[value] = (*inverted.get(value, ()), key)
    return inverted


def groupby(func: Callable[[Any], Hashable], seq: Iterable[Any]) -> "OrderedDict[Hashable, List[Any]]":
    """Items of ``seq`` in lists keyed by ``func(item)``, keys in order of first appearance."""
    groups: "OrderedDict[Hashable, List[Any]]" = OrderedDict()
    for item in seq:
        groups.setdefault(func(item), []).append(item)
    return groups


def typename(type: Any) -> str:  # noqa: A002  (the library's parameter name)
    """``int`` -> ``'int'``; a tuple of types -> ``'(int, float)'`` (a 1-tuple -> its type's name)."""
    name = getattr(type, "__name__", None)
    if name is not None:
        return name
    names = [typename(item) for item in type]
    return names[0] if len(names) == 1 else "(" + ", ".join(names) + ")"
