"""``PassManager``: run a list of passes, ordered by constraints, until nothing changes."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Dict, List, Optional

import torch

from ... import _foreign
from ...graph_module import GraphModule
from .pass_base import PassResult

__all__ = ["PassManager", "pass_result_wrapper", "this_before_that_pass_constraint"]

Pass = Callable[..., Optional[PassResult]]
Constraint = Callable[[Callable[..., Any], Callable[..., Any]], bool]


def pass_result_wrapper(fn: Callable[..., Any]) -> Callable[..., PassResult]:
    """Adapt a pass that returns a module (or edits in place and returns None) to return a PassResult."""
    if fn is None:
        return None  # type: ignore[return-value]

    @functools.wraps(fn)
    def adapted(module: torch.nn.Module) -> PassResult:
        returned = fn(module)
        if returned is None:
            return PassResult(module, True)
        if isinstance(returned, PassResult):
            return returned
        if isinstance(returned, torch.nn.Module):
            return PassResult(returned, True)
        raise TypeError(
            f"pass {_name(fn)} returned {type(returned).__name__}; expected a module, PassResult or None"
        )

    if not inspect.isfunction(fn):
        adapted.__name__ = type(fn).__name__
    return adapted


def this_before_that_pass_constraint(this: Callable[..., Any], that: Callable[..., Any]) -> Constraint:
    """A constraint saying pass ``this`` must run before pass ``that``."""

    def holds(first: Callable[..., Any], second: Callable[..., Any]) -> bool:
        return not (first == that and second == this)

    return holds


def _name(fn: Any) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


class PassManager:
    """Runs ``passes`` in an order that satisfies ``constraints``, repeating up to ``steps`` rounds."""

    def __init__(
        self,
        passes: Optional[List[Pass]] = None,
        constraints: Optional[List[Constraint]] = None,
        steps: Optional[int] = None,
        run_checks_after_each_pass: bool = False,
        suppress_check_failures: bool = False,
    ) -> None:
        self.passes: List[Pass] = list(passes or [])
        self.constraints: List[Constraint] = list(constraints or [])
        self.steps = steps if steps is not None else 1
        self.run_checks_after_each_pass = run_checks_after_each_pass
        self.suppress_check_failures = suppress_check_failures
        self._validated = False

    def add_pass(self, _pass: Pass) -> None:
        self.passes.append(_pass)
        self._validated = False

    def add_constraint(self, constraint: Constraint) -> None:
        self.constraints.append(constraint)
        self._validated = False

    def validate_constraints(self) -> None:
        """Raise if the current pass order breaks a constraint."""
        if self._validated:
            return
        for position, earlier in enumerate(self.passes):
            for later in self.passes[position + 1 :]:
                for constraint in self.constraints:
                    if not constraint(earlier, later):
                        raise RuntimeError(
                            f"pass order breaks a constraint: {_name(earlier)} runs before {_name(later)}. "
                            "Reorder the passes or call solve_constraints()."
                        )
        self._validated = True

    def solve_constraints(self) -> None:
        """Reorder passes (stable topological sort) so every constraint holds."""
        must_follow: Dict[int, List[int]] = {index: [] for index in range(len(self.passes))}
        for a, first in enumerate(self.passes):
            for b, second in enumerate(self.passes):
                if a != b and not all(constraint(first, second) for constraint in self.constraints):
                    must_follow[a].append(b)  # `first` may not precede `second`: b goes before a
        ordered: List[int] = []
        state: Dict[int, str] = {}

        def visit(index: int) -> None:
            if state.get(index) == "done":
                return
            if state.get(index) == "visiting":
                raise RuntimeError(f"pass constraints form a cycle through {_name(self.passes[index])}")
            state[index] = "visiting"
            for prerequisite in must_follow[index]:
                visit(prerequisite)
            state[index] = "done"
            ordered.append(index)

        for index in range(len(self.passes)):
            visit(index)
        self.passes = [self.passes[index] for index in ordered]
        self._validated = True

    def add_checks(self, check: Callable[[GraphModule], None]) -> None:
        """Use ``check(module)`` (raise on failure) to validate the module after passes."""
        parameters = inspect.signature(check).parameters
        if len(parameters) != 1:
            raise TypeError("a PassManager check takes exactly one argument, the module")
        self.check = check  # type: ignore[method-assign]

    def check(self, module: torch.nn.Module) -> None:
        """Validation after passes; replaced by ``add_checks``."""

    def __call__(self, module: torch.nn.Module) -> PassResult:
        _foreign.reject(module, "PassManager")  # passes edit the module in place
        if not self._validated:
            self.solve_constraints()
        self.check(module)
        overall_modified = False
        for _ in range(self.steps):
            modified_this_round = False
            for position, one_pass in enumerate(self.passes):
                try:
                    result = one_pass(module)
                    if not isinstance(result, PassResult) and not hasattr(result, "graph_module"):
                        raise TypeError(
                            f"pass {_name(one_pass)} returned {type(result).__name__}, not a PassResult; "
                            "wrap it with pass_result_wrapper()"
                        )
                    module = result.graph_module
                    modified_this_round = modified_this_round or result.modified
                    if isinstance(module, GraphModule):
                        module.recompile()
                    if self.run_checks_after_each_pass:
                        self.check(module)
                except Exception as error:
                    done = [_name(p) for p in self.passes[:position]]
                    raise RuntimeError(
                        f"pass {_name(one_pass)!r} failed after these passes ran: {done}: {error}"
                    ) from error
            overall_modified = overall_modified or modified_this_round
            if not modified_this_round:
                break
        return PassResult(module, overall_modified)


def _topological_sort_passes(
    passes: List[Callable[..., Any]], constraints: List[Callable[..., Any]]
) -> List[Callable[..., Any]]:
    """``passes`` ordered so every constraint holds (Kahn's algorithm; passes that are free to go
    keep their relative order). Raises RuntimeError naming the passes caught in a cycle."""
    if not constraints:
        return passes
    count = len(passes)
    waiting = [0] * count
    followers: List[List[int]] = [[] for _ in range(count)]
    for first in range(count):
        for second in range(count):
            if first != second and not all(c(passes[first], passes[second]) for c in constraints):
                followers[second].append(first)  # `first` may not precede `second`
                waiting[first] += 1
    ready = [index for index in range(count) if waiting[index] == 0]
    ordered: List[int] = []
    while ready:
        index = ready.pop(0)
        ordered.append(index)
        for follower in followers[index]:
            waiting[follower] -= 1
            if waiting[follower] == 0:
                ready.append(follower)
    if len(ordered) != count:
        stuck = [passes[index] for index in range(count) if index not in ordered]
        raise RuntimeError(f"Circular dependency detected within the following passes: {stuck}")
    return [passes[index] for index in ordered]
