"""Helpers of the unification package."""

from __future__ import annotations

from typing import Any, Callable, Dict, Hashable, Iterable, List, Tuple

__all__ = ["hashable", "transitive_get", "raises", "reverse_dict", "xfail", "freeze"]


def hashable(x: Any) -> bool:
    """Whether ``x`` can be hashed."""
    try:
        hash(x)
    except TypeError:
        return False
    return True


def transitive_get(key: Any, d: Dict[Any, Any]) -> Any:
    """Follow ``key`` through ``d`` (``d[key]``, ``d[d[key]]``, ...) until it is not a key."""
    seen = key
    while hashable(seen) and seen in d:
        seen = d[seen]
    return seen


def raises(err: type, lamda: Callable[[], Any]) -> bool:
    """Whether calling ``lamda()`` raises ``err``."""
    try:
        lamda()
    except err:
        return True
    return False


def _toposort(edges: Dict[Any, Iterable[Any]]) -> List[Any]:
    """Order the keys of ``edges`` (node -> nodes that must come after it) so every node comes
    before its successors; among ready nodes the one made ready last goes first (a stack)."""
    unmet = {node: len(set(before)) for node, before in reverse_dict(edges).items()}
    stack = [node for node in edges if node not in unmet]
    order: List[Any] = []
    while stack:
        order.append(stack.pop())
        for successor in dict.fromkeys(edges.get(order[-1], ())):
            unmet[successor] -= 1
            if unmet[successor] == 0:
                stack.append(successor)
    if any(unmet.get(node) for node in edges):
        raise ValueError("Input has cycles")
    return order


def reverse_dict(d: Dict[Any, Iterable[Hashable]]) -> Dict[Hashable, Tuple[Any, ...]]:
    """Invert a mapping of key -> values into value -> keys (keys in their original order)."""
    inverted: Dict[Hashable, Tuple[Any, ...]] = {}
    for key, values in d.items():
        for value in values:
            inverted[value] = (*inverted.get(value, ()), key)
    return inverted


def xfail(func: Callable[[], Any]) -> None:
    """Call ``func``, expecting it to raise; raise if it does not."""
    try:
        func()
    except Exception:  # noqa: BLE001  (any failure is the expected outcome)
        return
    raise Exception("XFailed test passed")  # noqa: TRY002


def freeze(d: Any) -> Any:
    """A hashable copy of ``d``: dicts and sets become frozensets, lists and tuples tuples."""
    if isinstance(d, (tuple, list)):
        return tuple(freeze(item) for item in d)
    items = d.items() if isinstance(d, dict) else d if isinstance(d, set) else None
    return d if items is None else frozenset(freeze(item) for item in items)
