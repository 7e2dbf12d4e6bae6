"""Sweep: ``symbolic_trace`` of every public callable of ``torch.nn.functional``, with torch.fx (the
oracle) and with fxkit. A trace that succeeds must generate the same code; one that fails must fail
with the same exception type and a message that starts with torch.fx's (fxkit may add a line naming
where in the user's code the trace stopped)."""

import collections.abc
import warnings
from typing import Any, Tuple

import pytest
import torch
import torch.fx
import torch.nn.functional as F

import fxkit

PUBLIC_CALLABLES = sorted(name for name in dir(F) if not name.startswith("_") and callable(getattr(F, name)))


def _outcome(fx: Any, fn: Any) -> Tuple[str, str, str]:
    """("ok", code, "") or ("error", type name, message) of tracing ``fn`` with ``fx``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated F.upsample* warn on every call
        try:
            return "ok", fx.symbolic_trace(fn).code, ""
        except Exception as error:  # noqa: BLE001  (the outcome is what is compared)
            return "error", type(error).__name__, str(error)


def test_sweep_covers_builtins_and_python_functions() -> None:
    kinds = {type(getattr(F, name)).__name__ for name in PUBLIC_CALLABLES}
    assert {"function", "builtin_function_or_method"} <= kinds


@pytest.mark.parametrize("name", PUBLIC_CALLABLES)
def test_functional_traces_like_torch_fx(name: str) -> None:
    fn = getattr(F, name)
    expected = _outcome(torch.fx, fn)
    got = _outcome(fxkit, fn)
    assert got[:2] == expected[:2], f"F.{name}: torch.fx {expected[:2]}, fxkit {got}"
    assert got[2].startswith(expected[2]), f"F.{name}: message {got[2]!r}, torch.fx {expected[2]!r}"


def _never(*args: Any, **kwargs: Any) -> bool:
    return False


@pytest.mark.parametrize("name", PUBLIC_CALLABLES)
def test_functional_traces_like_torch_fx_without_torch_function_checks(name: str, monkeypatch: Any) -> None:
    """With F.has_torch_function* answering False (as torch's own F.* tracing tests set it up) the
    traces go past the __torch_function__ dispatch and meet F.*'s own control flow."""
    fn = getattr(F, name)
    for check in ("has_torch_function", "has_torch_function_unary", "has_torch_function_variadic"):
        monkeypatch.setattr(F, check, _never)
    expected = _outcome(torch.fx, fn)
    got = _outcome(fxkit, fn)
    assert got[:2] == expected[:2], f"F.{name}: torch.fx {expected[:2]}, fxkit {got}"
    assert got[2].startswith(expected[2]), f"F.{name}: message {got[2]!r}, torch.fx {expected[2]!r}"


def test_non_function_root_is_refused_as_torch_fx_does() -> None:
    for root in (print, F.conv2d, torch.Tensor, (lambda x, y: x + y).__get__(1)):
        with pytest.raises(AssertionError) as expected:
            torch.fx.symbolic_trace(root)
        with pytest.raises(AssertionError) as got:
            fxkit.symbolic_trace(root)
        assert str(got.value) == str(expected.value)


def _kwonly(x: torch.Tensor, *, scale: float = 2.0) -> torch.Tensor:
    return x * scale


def _varargs(x: torch.Tensor, *rest: Any) -> torch.Tensor:
    return x + 1


def _plain(x: torch.Tensor, scale: float = 2.0) -> torch.Tensor:
    return x * scale


@pytest.mark.parametrize("fn", [_kwonly, _varargs, _plain])
def test_return_annotation_follows_the_signature_shape(fn: Any) -> None:
    # torch.fx writes ``-> torch.Tensor`` only for a function without keyword-only or * / ** parameters.
    assert fxkit.symbolic_trace(fn).code == torch.fx.symbolic_trace(fn).code


def _callable_arg(
    x: torch.Tensor, act: collections.abc.Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    return x


def test_callable_argument_list_annotation_fails_like_torch_fx() -> None:
    with pytest.raises(TypeError, match="unhashable type: 'list'"):
        torch.fx.symbolic_trace(_callable_arg)
    with pytest.raises(TypeError, match="unhashable type: 'list'"):
        fxkit.symbolic_trace(_callable_arg)
