"""The records of a capture and the run-time checks its generated code calls.

A captured graph re-checks every decision the example input took: each check is a call of one of
the ``guard_*`` functions below, named by its stable dotted path (``fxkit.guards.guard_bool``) in
the generated code, and raises :class:`GuardError` when an input takes another path. The records
(:class:`Guard`, :class:`Specialization`, :class:`Leaf`) are plain data that :mod:`fxkit.explain`
reads by field, never by parsing their text.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Callable, Optional

from .node import has_side_effect

__all__ = [
    "NOT_GIVEN",
    "CaptureError",
    "Guard",
    "GuardError",
    "GuardKind",
    "Leaf",
    "LeafKind",
    "SourceLocation",
    "Specialization",
    "guard_bool",
    "guard_equal",
    "guard_float",
    "guard_int",
    "guard_is_none",
    "guard_len",
    "guard_not_given",
    "guard_structure",
    "assign",
    "autograd_apply",
    "build_object",
    "remove",
    "replace_items",
]


class GuardError(RuntimeError):
    """Raised by a captured graph when an input takes a path the example input did not take."""


class CaptureError(RuntimeError):
    """Raised when a program cannot be captured, even with automatic leaves."""


class GuardKind(str, enum.Enum):
    """What Python needed from a traced value, so that the example decided it."""

    BOOL = "bool"  # a branch: if / while / and / or / not
    LEN = "len"  # len()
    ITER = "iter"  # iteration or unpacking of an unknown count
    INT = "int"  # int(), a size used as a Python number
    INDEX = "index"  # operator.index(): a value used as an index or a range bound
    FLOAT = "float"  # float()
    ATTRIBUTE = "attribute"  # tensor.dtype, tensor.ndim ... used as a Python value
    METHOD = "method"  # tensor.dim(), tensor.is_floating_point() ... used as a Python value
    ARGUMENT = "argument"  # a non-tensor input fixed to the example's value
    NOT_GIVEN = "not given"  # a parameter the example call did not pass
    STRUCTURE = "structure"  # the containers, keys and plain values of a structured input
    KEYWORDS = "keywords"  # no keyword inputs beyond the example's through **kwargs

    def __str__(self) -> str:
        return self.value


class LeafKind(str, enum.Enum):
    MODULE = "module"
    FUNCTION = "function"

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass(frozen=True)
class SourceLocation:
    """A line of the user's program: where a decision or a failure happened."""

    filename: str
    lineno: int
    function: str
    source: str  # the stripped text of the line

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno}"

    def describe(self) -> str:
        """``file:line in function (`source`)`` on one line."""
        text = f"{self} in {self.function}"
        return f"{text} (`{self.source}`)" if self.source else text


@dataclasses.dataclass(frozen=True)
class Guard:
    """A condition the example input satisfied and that the captured graph re-checks at run time.

    ``kind`` says what Python needed, ``condition`` the check in words, ``example_value`` the value
    that decided it. ``argument`` names the input the guard is about (for input guards) and
    ``attribute`` the tensor attribute or method (``dtype``, ``dim``) for those kinds.
    """

    name: str
    kind: GuardKind
    condition: str
    example_value: Any
    location: Optional[SourceLocation]
    node: str
    data_dependent: bool
    module: str = ""  # qualified name of the module whose code decided it ("" for the root)
    argument: Optional[str] = None
    attribute: Optional[str] = None

    def __str__(self) -> str:
        where = f" at {self.location}" if self.location is not None else ""
        return f"{self.name}: {self.condition}{where}"


@dataclasses.dataclass(frozen=True)
class Specialization:
    """A value that the graph fixed to what the example had (checked by ``guard``)."""

    what: str
    value: Any
    reason: str
    location: Optional[SourceLocation]
    guard: Optional[str]
    kind: GuardKind = GuardKind.ARGUMENT
    argument: Optional[str] = None  # the input it is about, if any

    def __str__(self) -> str:
        where = f" at {self.location}" if self.location is not None else ""
        return f"{self.what} fixed to {self.value!r}{where}"


@dataclasses.dataclass(frozen=True)
class Leaf:
    """A submodule or function kept as one call in the graph instead of being traced through."""

    name: str
    kind: LeafKind
    type_name: str
    automatic: bool
    reason: str
    location: Optional[SourceLocation]

    def __str__(self) -> str:
        how = "automatic" if self.automatic else "requested"
        return f"{self.name} ({self.type_name}, {how} leaf)"


# --------------------------------------------------------------------------- run-time checks


class _NotGiven:
    """The default of an input the example call did not pass: the call is replayed without it."""

    __slots__ = ()
    _instance: Optional["_NotGiven"] = None

    def __new__(cls) -> "_NotGiven":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "fxkit.guards.NOT_GIVEN"

    def __reduce__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN = _NotGiven()


def _failure(message: str, actual: Any) -> GuardError:
    return GuardError(
        f"{message}; this input gave {actual!r}. Capture again with an input that takes this path."
    )


def _checked_guard(name: str, convert: Callable[[Any], Any], what: str) -> Callable[..., None]:
    """A run-time guard ``name(value, expected, message)``: ``convert(value)`` must equal ``expected``."""

    def guard(value: Any, expected: Any, message: str) -> None:
        actual = convert(value)
        if actual != expected:
            raise _failure(message, actual)

    guard.__name__ = guard.__qualname__ = name
    guard.__module__ = __name__
    guard.__doc__ = f"Run-time check of {what} fixed during capture."
    return has_side_effect(guard)


guard_bool = _checked_guard("guard_bool", bool, "a branch (``bool(value)``)")
guard_equal = _checked_guard("guard_equal", lambda value: value, "a value (a size, a length, a dtype)")
guard_len = _checked_guard("guard_len", len, "a length (unpacking, iteration, ``len``)")
guard_int = _checked_guard("guard_int", int, "``int(value)`` or ``operator.index(value)``")
guard_float = _checked_guard("guard_float", float, "``float(value)``")


@has_side_effect
def guard_is_none(value: Any, message: str) -> None:
    """Run-time check of an input that was ``None`` during capture."""
    if value is not None:
        raise _failure(message, type(value).__name__)


@has_side_effect
def guard_not_given(value: Any, message: str) -> None:
    """Run-time check of a parameter the example call left out: it must be left out again."""
    if value is not NOT_GIVEN:
        raise _failure(message, value if value is None else type(value).__name__)


@has_side_effect
def guard_structure(value: Any, expected: Any, opaque: tuple, message: str) -> None:
    """Run-time check of a structured input: the same containers, keys, lengths and plain values
    as the example (``expected`` is the example's fingerprint), and the same objects where the
    example held functions, classes or modules (``opaque``, compared by identity)."""
    from . import _structure

    found: list = []
    actual = _structure.fingerprint(value, found)
    difference = _structure.first_difference(actual, expected)
    if difference is None:
        difference = next(
            (
                f"it holds another {type(new).__name__} object"
                for new, old in zip(found, opaque)
                if new is not old
            ),
            None,
        )
    if difference is not None:
        raise GuardError(
            f"{message}; this input differs: {difference}. Capture again with an input of this structure."
        )


@has_side_effect
def assign(target: Any, how: str, key: Any, value: Any) -> None:
    """Replays ``target.key = value`` (``how == "attr"``) or ``target[key] = value`` on a caller's object."""
    if how == "attr":
        object.__setattr__(target, key, value)
    else:
        target[key] = value


@has_side_effect
def remove(target: Any, how: str, key: Any) -> None:
    """Replays ``del target.key`` or ``del target[key]`` on a caller's object."""
    if how == "attr":
        object.__delattr__(target, key)
    else:
        del target[key]


@has_side_effect
def set_module_attribute(module: Any, name: str, value: Any) -> None:
    """Replays ``module.name = value`` from a model's ``forward`` (as ``nn.Module`` stores it: a
    buffer stays a buffer)."""
    setattr(module, name, value)


@has_side_effect
def replace_items(target: list, items: list) -> None:
    """Replays changes to a caller's list (appends, replaced items) by setting its items."""
    target[:] = items


def build_object(cls: type, state: dict) -> Any:
    """An object of class ``cls`` with attributes ``state``, built without calling ``__init__``:
    how a captured module returns objects (caches, dataclasses) the program built."""
    new = cls.__new__(cls)
    for key, value in state.items():
        object.__setattr__(new, key, value)
    return new


def autograd_apply(function_class: Any, *args: Any, **kwargs: Any) -> Any:
    """``function_class.apply(*args)``: how a captured graph calls a custom ``torch.autograd.Function``,
    so that training the captured module runs the Function's own backward."""
    return function_class.apply(*args, **kwargs)


GUARD_FUNCTIONS = (
    guard_bool,
    guard_equal,
    guard_len,
    guard_int,
    guard_float,
    guard_is_none,
    guard_not_given,
    guard_structure,
)
