"""Dispatch on patterns: a call runs the most specific registered pattern (a tuple of values
and logic variables) that unifies with its arguments."""

from __future__ import annotations

from typing import Any, Callable, Dict, Sequence, Tuple

from .core import reify, unify
from .unification_tools import first, groupby
from .utils import _toposort, freeze
from .variable import isvar

global_namespace: Dict[str, "Dispatcher"] = {}


class Dispatcher:
    """Functions keyed by argument patterns; ``resolve`` finds the first pattern (most specific
    first) that unifies with the arguments."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.funcs: Dict[Tuple[Any, ...], Callable[..., Any]] = {}
        self.ordering: Sequence[Tuple[Any, ...]] = []

    def add(self, signature: Tuple[Any, ...], func: Callable[..., Any]) -> None:
        self.funcs[signature] = func
        self.ordering = ordering(self.funcs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        func, _ = self.resolve(args)
        return func(*args, **kwargs)

    def resolve(self, args: Tuple[Any, ...]) -> Tuple[Callable[..., Any], Dict[Any, Any]]:
        """The function of the first matching pattern and the substitution that matched it."""
        for signature in self.ordering:
            if len(signature) != len(args):
                continue
            s = unify(freeze(args), signature)
            if s is not False:
                return self.funcs[signature], s
        raise NotImplementedError(f"No match found. \nKnown matches: {self.ordering}\nInput: {args}")

    def register(self, *signature: Any) -> Callable[[Callable[..., Any]], "Dispatcher"]:
        def register_function(func: Callable[..., Any]) -> "Dispatcher":
            self.add(signature, func)
            return self

        return register_function


class VarDispatcher(Dispatcher):
    """A Dispatcher passing the matched variables' values as keyword arguments named by their
    tokens (``Var("x")`` -> ``x=``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        func, s = self.resolve(args)
        return func(**{variable.token: value for variable, value in s.items()})


def match(*signature: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Dispatcher]:
    """``@match(1, x)``: register the function for that pattern in the Dispatcher of its name
    in ``namespace`` (default: a module-wide one)."""
    namespace = kwargs.get("namespace", global_namespace)
    dispatcher_class = kwargs.get("Dispatcher", Dispatcher)

    def register(func: Callable[..., Any]) -> Dispatcher:
        name = func.__name__
        if name not in namespace:
            namespace[name] = dispatcher_class(name)
        dispatcher = namespace[name]
        dispatcher.add(signature, func)
        return dispatcher

    return register


def supercedes(a: Any, b: Any) -> bool:
    """Whether pattern ``a`` is more specific than ``b`` (``a`` is an instance of ``b``)."""
    s = unify(a, b)
    if s is False:
        return False
    s = {key: value for key, value in s.items() if not isvar(key) or not isvar(value)}
    if reify(a, s) == a:
        return True
    if reify(b, s) == b:
        return False
    return False


def edge(a: Any, b: Any, tie_breaker: Callable[[Any], Any] = hash) -> bool:
    """Whether ``a`` must be tried before ``b``."""
    if supercedes(a, b):
        if supercedes(b, a):
            return tie_breaker(a) > tie_breaker(b)
        return True
    return False


def ordering(signatures: Any) -> Sequence[Tuple[Any, ...]]:
    """The patterns ordered from most to least specific."""
    signatures = [tuple(signature) for signature in signatures]
    pairs = [(a, b) for a in signatures for b in signatures if edge(a, b)]
    successors = {a: [b for _, b in group] for a, group in groupby(first, pairs).items()}
    for signature in signatures:
        successors.setdefault(signature, [])
    return _toposort(successors)
