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
        target = namespace.get(func.__name__)
        if target is None:
            target = namespace[func.__name__] = dispatcher_class(func.__name__)
        target.add(signature, func)
        return target

    return register


def supercedes(a: Any, b: Any) -> bool:
    """Whether pattern ``a`` is more specific than ``b`` (``a`` is an instance of ``b``)."""
    substitution = unify(a, b)
    if substitution is False:
        return False
    # Bindings of a variable to a variable say nothing about specificity.
    bound = {key: value for key, value in substitution.items() if not (isvar(key) and isvar(value))}
    return reify(a, bound) == a


def edge(a: Any, b: Any, tie_breaker: Callable[[Any], Any] = hash) -> bool:
    """Whether ``a`` must be tried before ``b``."""
    return supercedes(a, b) and (not supercedes(b, a) or tie_breaker(a) > tie_breaker(b))


def ordering(signatures: Any) -> Sequence[Tuple[Any, ...]]:
    """The patterns ordered from most to least specific."""
    signatures = [tuple(signature) for signature in signatures]
    pairs = [(a, b) for a in signatures for b in signatures if edge(a, b)]
    successors = {a: [b for _, b in group] for a, group in groupby(first, pairs).items()}
    for signature in signatures:
        successors.setdefault(signature, [])
    return _toposort(successors)
