"""The parity oracle: a snippet registry and the helpers that run a snippet with torch.fx and fxkit.

A snippet is written once against a library module (taken as ``fx``) and returns plain data (code
text, node names, ops, targets, output tensors, exception type names and key message parts). Each
tests/parity/test_<section>.py registers its snippets with ``@snippet`` and parametrizes its own
``test_fxkit_matches_torch_fx`` over ``sweep(__name__)``. Where fxkit differs from torch.fx on
purpose, the snippet returns the part both agree on and asserts the documented difference, checking
the library it runs with (``is_fxkit``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import fxkit

Snippet = Callable[[Any], Any]

# Snippets per sweep: the name of the module that defined them -> its snippets, in definition order.
SNIPPETS: dict[str, list[Snippet]] = {}


def snippet(function: Snippet | None = None, *, raises: tuple[type[BaseException], str] | None = None) -> Any:
    """Register a snippet in the sweep of the module defining it: ``@snippet``, or
    ``@snippet(raises=(ErrorType, "part of the message"))`` for one that must raise that error with
    both libraries. Any exception a snippet does not declare fails the test, so a snippet broken the
    same way in both cannot pass silently. Names must be unique within a sweep (they are test ids)."""

    def register(fn: Snippet) -> Snippet:
        fn.expected_error = raises  # type: ignore[attr-defined]
        registered = SNIPPETS.setdefault(fn.__module__, [])
        if any(other.__name__ == fn.__name__ for other in registered):
            raise ValueError(f"snippet {fn.__name__!r} is registered twice in {fn.__module__}; rename one")
        registered.append(fn)
        return fn

    return register(function) if function is not None else register


def sweep(module_name: str) -> list[Snippet]:
    """The snippets registered by the module ``module_name`` (pass ``__name__``)."""
    return SNIPPETS.get(module_name, [])


def snippet_ids(snippets: list[Snippet]) -> list[str]:
    return [function.__name__ for function in snippets]


def is_fxkit(fx: Any) -> bool:
    return fx is fxkit


def summary(graph: Any) -> list[tuple[str, str, str, str, str]]:
    """Each node as (op, name, target, args, kwargs) text."""
    rows = []
    for node in graph.nodes:
        target = (
            node.target
            if isinstance(node.target, str)
            else getattr(node.target, "__name__", repr(node.target))
        )
        rows.append((node.op, node.name, target, repr(node.args), repr(node.kwargs)))
    return rows


def error_of(action: Callable[[], Any]) -> tuple[str, str] | None:
    """The type name and message of the exception ``action`` raises, or None."""
    try:
        action()
    except Exception as error:  # noqa: BLE001 - the type is part of the comparison
        return type(error).__name__, str(error)
    return None


def error_type_of(action: Callable[[], Any]) -> str | None:
    outcome = error_of(action)
    return None if outcome is None else outcome[0]


def trace_error(fx: Any, action: Callable[[], Any]) -> tuple[str, str] | None:
    """The error ``action`` raises while tracing, as (type name, torch.fx's message).

    fxkit adds a line naming the user's file:line and source to trace-time errors (team rule: errors
    say where); that line must point into the file defining ``action`` (the snippet's file), and is
    dropped here so the rest compares with torch.fx.
    """
    outcome = error_of(action)
    if outcome is None:
        return None
    error_type, message = outcome
    if is_fxkit(fx):
        head, _, location = message.rpartition("\n  at ")
        snippet_file = action.__code__.co_filename
        assert head and location.startswith(snippet_file), f"no location in {snippet_file} in {message!r}"
        message = head
    return error_type, message


def in_fresh_module(fx: Any, source: str) -> dict[str, Any]:
    """Run ``source`` as the top level of a new module whose ``fx`` is the library under test."""
    namespace = {"__name__": "parity_fresh_module", "fx": fx, "torch": torch, "nn": nn}
    exec(compile(source, "<parity>", "exec"), namespace)
    return namespace


def traced(fx: Any, root: Any, *inputs: Any, **trace_kwargs: Any) -> tuple[str, list, Any]:
    """Trace ``root`` and return its code, node summary and output on ``inputs``."""
    gm = fx.symbolic_trace(root, **trace_kwargs)
    return gm.code, summary(gm.graph), gm(*inputs)


def assert_same(expected: Any, actual: Any, path: str = "result") -> None:
    """Structural equality with allclose for tensors."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor), f"{path}: expected a tensor, got {type(actual).__name__}"
        assert expected.shape == actual.shape and expected.dtype == actual.dtype, (
            f"{path}: {expected} != {actual}"
        )
        assert torch.allclose(expected, actual, equal_nan=True), f"{path}: {expected} != {actual}"
    elif isinstance(expected, (list, tuple)) and not isinstance(expected, torch.Size):
        assert type(expected).__name__ == type(actual).__name__, (
            f"{path}: {type(expected).__name__} != {type(actual).__name__}"
        )
        assert len(expected) == len(actual), f"{path}: lengths differ\n{expected!r}\n{actual!r}"
        for index, (left, right) in enumerate(zip(expected, actual)):
            assert_same(left, right, f"{path}[{index}]")
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and list(expected) == list(actual), (
            f"{path}: keys {list(expected)} != {list(actual)}"
        )
        for key in expected:
            assert_same(expected[key], actual[key], f"{path}[{key!r}]")
    elif isinstance(expected, str) and isinstance(actual, str):
        # Documented difference: generated code names fxkit's helper module (wrap lines, _assert_is_none).
        actual = actual.replace("fxkit._symbolic_trace.", "torch.fx._symbolic_trace.")
        assert expected == actual, f"{path}:\n--- torch.fx ---\n{expected}\n--- fxkit ---\n{actual}"
    else:
        assert expected == actual, f"{path}:\n--- torch.fx ---\n{expected}\n--- fxkit ---\n{actual}"


def run_snippet(function: Snippet, library: Any) -> Any:
    """The snippet's result with ``library``; a declared error is checked here and returned as
    ``("raised", type name)``, an undeclared one propagates and fails the test."""
    expected = getattr(function, "expected_error", None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if expected is None:
            return function(library)
        error_type, message_part = expected
        with pytest.raises(error_type, match=re.escape(message_part)) as caught:
            function(library)
        return ("raised", type(caught.value).__name__)


def parity_test(module_name: str, both_patch_modes: bool = False) -> Callable[..., None]:
    """The test of one section file: each of its snippets run with torch.fx and with fxkit, the
    results compared. With ``both_patch_modes`` fxkit runs with its fast patches (``_call_impl``,
    ``__getattr__`` per class) and with the plain ones torch.fx uses. In a section file::

        test_fxkit_matches_torch_fx = parity_test(__name__)
    """
    from fxkit.tracer import use_fast_patches

    snippets = sweep(module_name)

    @pytest.mark.parametrize("patches", ["fast", "plain"] if both_patch_modes else ["fast"])
    @pytest.mark.parametrize("function", snippets, ids=snippet_ids(snippets))
    def test_fxkit_matches_torch_fx(function: Snippet, patches: str) -> None:
        expected = run_snippet(function, torch.fx)
        with use_fast_patches(patches == "fast"):
            actual = run_snippet(function, fxkit)
        assert_same(expected, actual)

    return test_fxkit_matches_torch_fx
