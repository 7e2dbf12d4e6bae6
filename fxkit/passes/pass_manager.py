"""The older, list-based pass manager (torch.fx's ``passes.pass_manager``): passes are plain
callables run one after the other, with constraints checked (not solved) before running."""

from __future__ import annotations

import functools
import itertools
import logging
from typing import Any, Callable, List, Optional, TypeVar

from fxkit import _foreign

__all__ = (
    "PassManager inplace_wrapper log_hook loop_pass this_before_that_pass_constraint"
    " these_before_those_pass_constraint"
).split()

logger = logging.getLogger(__name__)

T = TypeVar("T")
Constraint = Callable[[Callable[..., Any], Callable[..., Any]], bool]


def inplace_wrapper(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Adapt a pass that edits its first argument in place (and returns nothing useful) to return
    that argument."""

    @functools.wraps(fn)
    def wrapped(gm: Any, *args: Any, **kwargs: Any) -> Any:
        fn(gm, *args, **kwargs)
        return gm

    return wrapped


def log_hook(fn: Callable[..., T], level: int = logging.INFO) -> Callable[..., T]:
    """Wrap ``fn`` so each call logs the pass and its return value at ``level``."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> T:
        value = fn(*args, **kwargs)
        logger.log(level, "Ran pass %s\t Return value: %s", fn, value)
        return value

    return wrapped


def loop_pass(
    base_pass: Callable[[T], T], n_iter: Optional[int] = None, predicate: Optional[Callable[[T], bool]] = None
) -> Callable[[T], T]:
    """Run ``base_pass`` ``n_iter`` times, or while ``predicate(current)`` holds (give exactly one)."""
    if (n_iter is None) == (predicate is None):
        raise AssertionError("Exactly one of `n_iter`or `predicate` must be specified.")

    @functools.wraps(base_pass)
    def looped(source: T) -> T:
        output = source
        if n_iter is not None:
            for _ in range(n_iter):
                output = base_pass(output)
        else:
            while predicate(output):  # type: ignore[misc]
                output = base_pass(output)
        return output

    return looped


def this_before_that_pass_constraint(this: Callable[..., Any], that: Callable[..., Any]) -> Constraint:
    """A constraint: pass ``this`` must run before pass ``that``."""

    def depends_on(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
        return not (a == that and b == this)

    return depends_on


def these_before_those_pass_constraint(these: Callable[..., Any], those: Callable[..., Any]) -> Constraint:
    """A constraint: pass ``these`` must run before pass ``those``."""

    def depends_on(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
        return not (a == those and b == these)

    return depends_on


def _validate_pass_schedule_constraint(constraint: Constraint, passes: List[Callable[..., Any]]) -> None:
    broken = next(
        (
            (i, j)
            for i, j in itertools.combinations(range(len(passes)), 2)
            if not constraint(passes[i], passes[j])
        ),
        None,
    )
    if broken is not None:
        first, second = passes[broken[0]], passes[broken[1]]
        raise RuntimeError(
            f"pass schedule constraint violated. Expected {first} before {second} but found {first} at index"
            f" {broken[0]} and {second} at index{broken[1]} in pass list."
        )


class PassManager:
    """Runs ``passes`` in list order on a source object; ``constraints`` are checked first."""

    passes: List[Callable[..., Any]]
    constraints: List[Constraint]
    _validated: bool = False

    def __init__(
        self,
        passes: Optional[List[Callable[..., Any]]] = None,
        constraints: Optional[List[Constraint]] = None,
    ) -> None:
        self.passes = passes or []
        self.constraints = constraints or []

    @classmethod
    def build_from_passlist(cls, passes: List[Callable[..., Any]]) -> "PassManager":
        return PassManager(passes)

    def add_pass(self, _pass: Callable[..., Any]) -> None:
        self.passes.append(_pass)
        self._validated = False

    def add_constraint(self, constraint: Constraint) -> None:
        self.constraints.append(constraint)
        self._validated = False

    def remove_pass(self, _passes: List[str]) -> None:
        """Drop the passes whose ``__name__`` is in ``_passes``."""
        if _passes is None:
            return
        self.passes = [p for p in self.passes if p.__name__ not in _passes]
        self._validated = False

    def replace_pass(self, _target: Callable[..., Any], _replacement: Callable[..., Any]) -> None:
        """Put ``_replacement`` wherever a pass named like ``_target`` is."""
        self.passes = [_replacement if p.__name__ == _target.__name__ else p for p in self.passes]
        self._validated = False

    def validate(self) -> None:
        """Raise RuntimeError if the pass order breaks a constraint."""
        if not self._validated:
            for constraint in self.constraints:
                _validate_pass_schedule_constraint(constraint, self.passes)
            self._validated = True

    def __call__(self, source: Any) -> Any:
        _foreign.reject(source, "PassManager")  # fxkit passes edit their source in place
        self.validate()
        return functools.reduce(lambda value, each_pass: each_pass(value), self.passes, source)
