"""The ``dispatch`` decorator: register a function into a Dispatcher of its name."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict

from .dispatcher import Dispatcher, MethodDispatcher

__all__ = ["dispatch", "ismethod"]

global_namespace: Dict[str, Dispatcher] = {}


def dispatch(*types: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Dispatcher]:
    """``@dispatch(int, float)``: add the decorated function to the Dispatcher of its name in
    ``namespace`` (default: a module-wide one), or, for a method (first parameter ``self``), to
    the MethodDispatcher of its name in the class body."""
    namespace = kwargs.get("namespace", global_namespace)
    types = tuple(types)

    def register(func: Callable[..., Any]) -> Dispatcher:
        if ismethod(func):
            # The class body being executed is the caller's frame: reuse its dispatcher.
            class_body = inspect.currentframe().f_back.f_locals  # type: ignore[union-attr]
            target = class_body.get(func.__name__) or MethodDispatcher(func.__name__)
        else:
            target = namespace.setdefault(func.__name__, Dispatcher(func.__name__))
        target.add(types, func)
        return target

    return register


def ismethod(func: Callable[..., Any]) -> bool:
    """Whether ``func`` has a parameter named ``self`` (it is being defined as a method)."""
    return inspect.signature(func).parameters.get("self", None) is not None
