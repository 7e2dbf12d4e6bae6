"""``Dispatcher``: a function with one implementation per signature of argument types, called
with the most specific implementation matching the arguments' types."""

from __future__ import annotations

import inspect
import itertools
import warnings
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Set, Tuple

from .conflict import AmbiguityWarning, ambiguities, ordering, super_signature
from .utils import expand_tuples
from .variadic import Variadic, isvariadic

__all__ = ["MDNotImplementedError", "ambiguity_warn", "halt_ordering", "restart_ordering",
           "variadic_signature_matches_iter", "variadic_signature_matches", "Dispatcher", "source",
           "MethodDispatcher", "str_signature", "warning_text"]  # fmt: skip

Signature = Tuple[Any, ...]


class MDNotImplementedError(NotImplementedError):
    """Raised by an implementation to pass the call on to the next matching one."""


def ambiguity_warn(dispatcher: "Dispatcher", ambiguities: Set[Tuple[Signature, Signature]]) -> None:
    """Warn (``AmbiguityWarning``) about ambiguous signatures of ``dispatcher``."""
    warnings.warn(warning_text(dispatcher.name, ambiguities), AmbiguityWarning, stacklevel=2)


def halt_ordering() -> None:
    """Deprecated, does nothing (ordering happens on the first call)."""
    warnings.warn(
        "`halt_ordering` is deprecated, you can safely remove this call.", FutureWarning, stacklevel=2
    )


def restart_ordering(on_ambiguity: Callable[..., Any] = ambiguity_warn) -> None:
    """Deprecated, does nothing (call ``reorder()`` on a dispatcher to order it now)."""
    warnings.warn(
        "`restart_ordering` is deprecated, if you would like to eagerly order the dispatchers, you should call "
        "the `reorder()` method on each dispatcher.",
        FutureWarning,
        stacklevel=2,
    )


def variadic_signature_matches_iter(types: Sequence[type], full_signature: Signature) -> Iterator[bool]:
    """For each argument type whether it fits its place in ``full_signature`` (whose last element
    may be variadic), then whether the signature was used up."""
    remaining = iter(full_signature)
    expected = next(remaining)
    for argument in types:
        yield issubclass(argument, expected)
        if not isvariadic(expected):
            expected = next(remaining)
    try:
        next(remaining)
    except StopIteration:
        assert isvariadic(expected)
        yield True
    else:
        yield False


def variadic_signature_matches(types: Sequence[type], full_signature: Signature) -> bool:
    assert full_signature
    return all(variadic_signature_matches_iter(types, full_signature))


def str_signature(sig: Sequence[type]) -> str:
    """``(int, float)`` -> ``'int, float'``."""
    return ", ".join(cls.__name__ for cls in sig)


def warning_text(name: str, amb: Set[Tuple[Signature, Signature]]) -> str:
    """The text of the ambiguity warning for dispatcher ``name``."""
    pairs = "".join("\t" + ", ".join(f"[{str_signature(sig)}]" for sig in pair) + "\n" for pair in amb)
    fixes = "\n\n".join(f"@dispatch({str_signature(super_signature(pair))})\ndef {name}(...)" for pair in amb)
    return (
        f"\nAmbiguities exist in dispatched function {name}\n\n"
        f"The following signatures may result in ambiguous behavior:\n{pairs}"
        f"\n\nConsider making the following additions:\n\n{fixes}"
    )


class Dispatcher:
    """Dispatch on the types of all positional arguments.

    ``f = Dispatcher("f")``; ``f.add((int, float), impl)`` or ``@f.register(int, float)``. A
    tuple of types in a signature registers each combination; ``[T]`` (or ``Variadic[T]``) as the
    last element matches any number of trailing ``T`` arguments. Without types, ``add`` reads the
    function's parameter annotations.
    """

    __slots__ = ("__name__", "name", "funcs", "_ordering", "_cache", "doc")

    def __init__(self, name: str, doc: Optional[str] = None) -> None:
        self.name = self.__name__ = name
        self.funcs: Dict[Signature, Callable[..., Any]] = {}
        self.doc = doc
        self._cache: Dict[Tuple[type, ...], Callable[..., Any]] = {}

    def register(self, *types: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator form of ``add``."""

        def register_function(func: Callable[..., Any]) -> Callable[..., Any]:
            self.add(types, func, **kwargs)
            return func

        return register_function

    @classmethod
    def get_func_params(cls, func: Callable[..., Any]) -> Any:
        """The parameters dispatch reads annotations from."""
        return inspect.signature(func).parameters.values()

    @classmethod
    def get_func_annotations(cls, func: Callable[..., Any]) -> Optional[Tuple[Any, ...]]:
        """The annotations of ``func``'s positional parameters, if all of them have one."""
        params = cls.get_func_params(func)
        if not params:
            return None
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        annotations = tuple(param.annotation for param in params if param.kind in positional)
        if all(annotation is not inspect.Parameter.empty for annotation in annotations):
            return annotations
        return None

    def add(self, signature: Signature, func: Callable[..., Any]) -> None:
        """Register ``func`` for argument types ``signature``."""
        if not signature:
            signature = self.get_func_annotations(func) or signature
        if any(isinstance(typ, tuple) for typ in signature):
            for expanded in expand_tuples(signature):
                self.add(expanded, func)
            return
        checked = []
        for position, typ in enumerate(signature, start=1):
            if not isinstance(typ, (type, list)):
                shown = ", ".join(c.__name__ if isinstance(c, type) else str(c) for c in signature)
                raise TypeError(
                    f"Tried to dispatch on non-type: {typ}\nIn signature: <{shown}>\nIn function: {self.name}"
                )
            if isinstance(typ, list):
                if position != len(signature):
                    raise TypeError("Variadic signature must be the last element")
                if len(typ) != 1:
                    raise TypeError(
                        "Variadic signature must contain exactly one element. To use a variadic union type place "
                        "the desired types inside of a tuple, e.g., [(int, str)]"
                    )
                typ = Variadic[typ[0]]
            checked.append(typ)
        self.funcs[tuple(checked)] = func
        self._cache.clear()
        if hasattr(self, "_ordering"):
            del self._ordering  # recomputed on the next call

    @property
    def ordering(self) -> Sequence[Signature]:
        """Signatures from most to least specific (computed on first use after a change)."""
        return self._ordering if hasattr(self, "_ordering") else self.reorder()

    def reorder(self, on_ambiguity: Callable[..., Any] = ambiguity_warn) -> Sequence[Signature]:
        """Order the signatures (most specific first) and report ambiguities."""
        self._ordering = ordered = ordering(self.funcs)
        found = ambiguities(self.funcs)
        if found:
            on_ambiguity(self, found)
        return ordered

    def _lookup(self, types: Tuple[type, ...]) -> Callable[..., Any]:
        """The implementation for ``types`` (cached), or NotImplementedError."""
        found = self._cache.get(types)
        if found is None:
            found = self.dispatch(*types)
            if not found:
                raise NotImplementedError(
                    f"Could not find signature for {self.name}: <{str_signature(types)}>"
                )
            self._cache[types] = found
        return found

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        types = tuple(map(type, args))
        implementation = self._lookup(types)
        try:
            return implementation(*args, **kwargs)
        except MDNotImplementedError:
            pass
        # The chosen implementation declined: try the less specific ones in turn.
        for fallback in itertools.islice(self.dispatch_iter(*types), 1, None):
            try:
                return fallback(*args, **kwargs)
            except MDNotImplementedError:
                continue
        raise NotImplementedError(
            f"Matching functions for {self.name}: <{str_signature(types)}> found, but none completed successfully"
        )

    def __str__(self) -> str:
        return f"<dispatched {self.name}>"

    __repr__ = __str__

    def dispatch(self, *types: type) -> Optional[Callable[..., Any]]:
        """The implementation a call with arguments of ``types`` runs (None if there is none)."""
        if types in self.funcs:
            return self.funcs[types]
        return next(self.dispatch_iter(*types), None)

    def dispatch_iter(self, *types: type) -> Iterator[Callable[..., Any]]:
        """Every implementation matching ``types``, most specific first."""
        for signature in self.ordering:
            if len(signature) == len(types) and all(map(issubclass, types, signature)):
                yield self.funcs[signature]
            elif signature and isvariadic(signature[-1]) and variadic_signature_matches(types, signature):
                yield self.funcs[signature]

    def resolve(self, types: Tuple[type, ...]) -> Optional[Callable[..., Any]]:
        """Deprecated spelling of ``dispatch(*types)``."""
        warnings.warn("resolve() is deprecated, use dispatch(*types)", DeprecationWarning, stacklevel=2)
        return self.dispatch(*types)

    def __getstate__(self) -> Dict[str, Any]:
        return {"name": self.name, "funcs": self.funcs}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.name = self.__name__ = state["name"]
        self.funcs = state["funcs"]
        self._ordering = ordering(self.funcs)
        self._cache = {}

    @property
    def __doc__(self) -> str:  # type: ignore[override]
        parts = [f"Multiply dispatched method: {self.name}"]
        if self.doc:
            parts.append(self.doc)
        undocumented = []
        for signature in self.ordering[::-1]:
            func = self.funcs[signature]
            if func.__doc__:
                header = f"Inputs: <{str_signature(signature)}>\n"
                parts.append(header + "-" * len(header) + "\n" + func.__doc__.strip())
            else:
                undocumented.append(str_signature(signature))
        if undocumented:
            parts.append("Other signatures:\n    " + "\n    ".join(undocumented))
        return "\n\n".join(parts)

    def _help(self, *args: Any) -> Optional[str]:
        return self.dispatch(*map(type, args)).__doc__  # type: ignore[union-attr]

    def help(self, *args: Any, **kwargs: Any) -> None:
        """Print the docstring of the implementation these arguments would run."""
        print(self._help(*args))

    def _source(self, *args: Any) -> str:
        func = self.dispatch(*map(type, args))
        if not func:
            raise TypeError("No function found")
        return source(func)

    def source(self, *args: Any, **kwargs: Any) -> None:
        """Print the source of the implementation these arguments would run."""
        print(self._source(*args))


def source(func: Callable[..., Any]) -> str:
    """``func``'s file and source text."""
    return f"File: {inspect.getsourcefile(func)}\n\n" + inspect.getsource(func)


class MethodDispatcher(Dispatcher):
    """A Dispatcher used as a method: dispatches on the arguments after ``self``."""

    __slots__ = ("obj", "cls")

    @classmethod
    def get_func_params(cls, func: Callable[..., Any]) -> Any:
        """The parameters after ``self``."""
        return list(inspect.signature(func).parameters.values())[1:]

    def __get__(self, instance: Any, owner: type) -> "MethodDispatcher":
        # Bound per attribute access: remember the instance the next call is for.
        self.obj, self.cls = instance, owner
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        types = tuple(map(type, args))
        implementation = self.dispatch(*types)
        if implementation is None:
            raise NotImplementedError(f"Could not find signature for {self.name}: <{str_signature(types)}>")
        return implementation(self.obj, *args, **kwargs)
