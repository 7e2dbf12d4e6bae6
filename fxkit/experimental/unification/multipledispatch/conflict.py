"""Relations between dispatch signatures (tuples of types): which is more specific, which can
both match one call, and an order trying the most specific first."""

from __future__ import annotations

import operator
from typing import Any, Callable, Dict, Iterable, List, Sequence, Set, Tuple

from .utils import _toposort, groupby
from .variadic import isvariadic

__all__ = ["AmbiguityWarning", "supercedes", "consistent", "ambiguous", "ambiguities", "super_signature", "edge",
           "ordering"]  # fmt: skip

Signature = Tuple[Any, ...]


class AmbiguityWarning(Warning):
    """Two signatures match some call equally well and no signature is more specific than both."""


def supercedes(a: Signature, b: Signature) -> bool:
    """Whether signature ``a`` is at least as specific as ``b`` (a variadic element ends a
    signature and matches its remaining arguments)."""
    if len(a) < len(b):  # only the empty signature, against a lone variadic one
        return len(a) == 0 and len(b) == 1 and isvariadic(b[0])
    if len(a) == len(b):
        return all(issubclass(x, y) for x, y in zip(a, b))
    i = j = 0
    while i < len(a) and j < len(b):
        left, right = a[i], b[j]
        if isvariadic(left):  # a's last element against b's: both must be last
            return j == len(b) - 1 and issubclass(left, right)
        if not issubclass(left, right):
            return False
        i += 1
        if not isvariadic(right):
            j += 1
    return j == len(b) - 1 and i == len(a)


def consistent(a: Signature, b: Signature) -> bool:
    """Whether some list of argument types can match both ``a`` and ``b``."""
    if not a or not b:
        return (not a and not b) or isvariadic((a or b)[0])
    related = lambda x, y: issubclass(x, y) or issubclass(y, x)  # noqa: E731
    if len(a) == len(b):
        return all(map(related, a, b))
    i = j = 0
    left, right = a[0], b[0]
    while i < len(a) and j < len(b):
        left, right = a[i], b[j]
        if not related(left, right):
            return False
        if isvariadic(left):  # a variadic element stays put while the other side moves on
            j += 1
        elif isvariadic(right):
            i += 1
        else:
            i, j = i + 1, j + 1
    return (isvariadic(left) and j == len(b)) or (isvariadic(right) and i == len(a))


def ambiguous(a: Signature, b: Signature) -> bool:
    """``a`` and ``b`` can match the same call and neither is more specific."""
    return consistent(a, b) and not (supercedes(a, b) or supercedes(b, a))


def ambiguities(signatures: Iterable[Signature]) -> Set[Tuple[Signature, Signature]]:
    """Pairs of ambiguous signatures that no third signature resolves (one supercedes both)."""
    signatures = [tuple(signature) for signature in signatures]
    found = set()
    for a in signatures:
        for b in signatures:
            if hash(a) < hash(b) and ambiguous(a, b):
                if not any(supercedes(c, a) and supercedes(c, b) for c in signatures):
                    found.add((a, b))
    return found


def super_signature(signatures: Sequence[Signature]) -> List[type]:
    """A signature more specific than all of ``signatures`` (equal lengths): per position the
    type with the longest MRO."""
    width = len(signatures[0])
    assert all(len(signature) == width for signature in signatures)
    return [max((type.mro(signature[i]) for signature in signatures), key=len)[0] for i in range(width)]


def edge(a: Signature, b: Signature, tie_breaker: Callable[[Any], Any] = hash) -> bool:
    """Whether ``a`` must be tried before ``b``: it supercedes ``b`` and, when they supercede each
    other, wins the tie breaker."""
    return supercedes(a, b) and (not supercedes(b, a) or tie_breaker(a) > tie_breaker(b))


def ordering(signatures: Iterable[Signature]) -> List[Signature]:
    """The signatures ordered from most to least specific."""
    signatures = [tuple(signature) for signature in signatures]
    pairs = [(a, b) for a in signatures for b in signatures if edge(a, b)]
    successors: Dict[Signature, List[Signature]] = {
        a: [b for _, b in group] for a, group in groupby(operator.itemgetter(0), pairs).items()
    }
    for signature in signatures:
        successors.setdefault(signature, [])
    return _toposort(successors)
