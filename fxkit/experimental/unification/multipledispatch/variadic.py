"""``Variadic[T]``: a signature element matching any number of trailing arguments of type ``T``
(or of one of the types, for ``Variadic[(T1, T2)]``)."""

from __future__ import annotations

from typing import Any, Tuple

from .utils import typename

__all__ = ["VariadicSignatureType", "isvariadic", "VariadicSignatureMeta", "Variadic"]


class VariadicSignatureType(type):
    """The class of ``Variadic[...]`` types. ``issubclass(T, Variadic[U])`` holds when ``T`` is a
    subclass of ``U``; between two variadic types, when every type of the first is one of the
    second."""

    variadic_type: Tuple[type, ...]

    def __subclasscheck__(cls, subclass: Any) -> bool:
        candidates = subclass.variadic_type if isvariadic(subclass) else (subclass,)
        return subclass is cls or all(issubclass(candidate, cls.variadic_type) for candidate in candidates)

    def __eq__(cls, other: object) -> bool:
        return isvariadic(other) and set(cls.variadic_type) == set(other.variadic_type)  # type: ignore[attr-defined]

    def __hash__(cls) -> int:
        return hash((type(cls), frozenset(cls.variadic_type)))


def isvariadic(obj: Any) -> bool:
    """Whether ``obj`` is a ``Variadic[...]`` type."""
    return isinstance(obj, VariadicSignatureType)


class VariadicSignatureMeta(type):
    """Makes ``Variadic[...]`` produce variadic signature types."""

    def __getitem__(cls, variadic_type: Any) -> VariadicSignatureType:
        if not isinstance(variadic_type, (type, tuple)):
            raise ValueError(
                "Variadic types must be type or tuple of types (Variadic[int] or Variadic[(int, float)]"
            )
        variadic_type = variadic_type if isinstance(variadic_type, tuple) else (variadic_type,)
        name = f"Variadic[{typename(variadic_type)}]"
        return VariadicSignatureType(name, (), {"variadic_type": variadic_type, "__slots__": ()})


class Variadic(metaclass=VariadicSignatureMeta):
    """``Variadic[int]``: any number (zero included) of ``int`` arguments, last in a signature."""
