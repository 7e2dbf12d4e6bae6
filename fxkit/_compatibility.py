"""Stability marks for public names, under the path torch.fx keeps them (``torch.fx._compatibility``).

``compatibility(is_backward_compatible=...)`` records the object it decorates and returns it
unchanged. The two registries let tools list which names promise a stable signature.
"""

from typing import Any, Callable, Dict, TypeVar

_T = TypeVar("_T")

# Every object that carries a mark, and the subset promised to stay backward compatible.
_MARKED_WITH_COMPATIBILITY: Dict[Any, None] = {}
_BACK_COMPAT_OBJECTS: Dict[Any, None] = {}


def compatibility(is_backward_compatible: bool) -> Callable[[_T], _T]:
    """Return a decorator that records ``fn`` as stable (or explicitly unstable) API."""

    def mark(fn: _T) -> _T:
        _MARKED_WITH_COMPATIBILITY.setdefault(fn)
        if is_backward_compatible:
            _BACK_COMPAT_OBJECTS.setdefault(fn)
        return fn

    return mark
