"""``concrete_args`` with nested structures, ``*args`` / ``**kwargs`` and on a module's forward,
traced side by side with torch.fx (the oracle): same code, graph and results, or the same error."""

from typing import Any, Callable, Dict, Tuple

import pytest
import torch
import torch.fx
from torch import nn
from torch.fx._symbolic_trace import PH as TORCH_PH

import fxkit


def add_dict(d):
    return d["a"] + d["b"]


def first_of_varargs(x, *args):
    return x + args[0]


def loop_over_varargs(*args):
    total = args[0]
    for arg in args[1:]:
        total = total + arg
    return total


def from_kwargs(x, **kw):
    return x + kw["y"]


def keyword_only(x, *, y):
    return x + y


def nested(x):
    return x[0]["a"] + x[1][0]


class DictForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(1, 1)

    def forward(self, d):
        return self.lin(d["a"]) + d["b"]


class OptionalForward(nn.Module):
    def forward(self, x, y=None):
        return x if y is None else x + y


class VarargsForward(nn.Module):
    def forward(self, *args, **kwargs):
        return args[0] + args[1]


def x_and_varargs(x, *args):
    return x + args[0]


def two_and_varargs(x, y, *args):
    return x + y + args[0]


def only_varargs(*args, **kwargs):
    return args[0]


def _one() -> torch.Tensor:
    return torch.ones(1)


# name -> (root factory, concrete_args built from the library's PH, inputs)
CASES: Dict[str, Tuple[Callable[[], Any], Callable[[Any], Any], Callable[[], tuple]]] = {
    "ph_in_dict": (
        lambda: add_dict,
        lambda ph: {"d": {"a": ph, "b": ph}},
        lambda: ({"a": _one(), "b": _one()},),
    ),
    "varargs_ph": (lambda: first_of_varargs, lambda ph: {"x": ph, "args": (ph,)}, lambda: (_one(), _one())),
    "varargs_loop": (lambda: loop_over_varargs, lambda ph: {"args": (ph, 2, 3)}, lambda: (_one(), 2, 3)),
    "varargs_as_tuple": (lambda: loop_over_varargs, lambda ph: ((ph, ph),), lambda: (_one(), _one())),
    "kwargs_dict": (lambda: from_kwargs, lambda ph: {"x": ph, "kw": {"y": ph}}, lambda: (_one(),)),
    "keyword_only": (lambda: keyword_only, lambda ph: {"y": 2}, lambda: (_one(), 2)),
    "nested_mixed": (lambda: nested, lambda ph: {"x": ({"a": ph}, [3])}, lambda: (({"a": _one()}, [3]),)),
    "module_dict": (DictForward, lambda ph: {"d": {"a": ph, "b": ph}}, lambda: ({"a": _one(), "b": _one()},)),
    "module_names_self": (OptionalForward, lambda ph: {"self": ph, "x": ph, "y": None}, lambda: (_one(),)),
    "module_tuple": (OptionalForward, lambda ph: (ph, None), lambda: (_one(),)),
    "module_tuple_counts_self": (OptionalForward, lambda ph: (ph, ph, None), lambda: (_one(),)),
    # A tuple that does not match the named parameters fills *args when the only one is self / x.
    "varargs_concrete": (VarargsForward, lambda ph: (ph, ph), lambda: (_one(), _one())),
    "varargs_concrete_value": (VarargsForward, lambda ph: (ph, 3), lambda: (_one(), 3)),
    "x_and_varargs_tuple": (lambda: x_and_varargs, lambda ph: (ph, ph), lambda: (_one(), _one())),
    "two_and_varargs_tuple": (lambda: two_and_varargs, lambda ph: (ph, ph, ph), lambda: (_one(),) * 3),
    "only_varargs_tuple": (lambda: only_varargs, lambda ph: (ph,), lambda: (_one(),)),
}


def _outcome(fx: Any, ph: Any, case: str) -> Tuple[Any, ...]:
    make_root, make_concrete, make_inputs = CASES[case]
    torch.manual_seed(0)
    try:
        gm = fx.symbolic_trace(make_root(), concrete_args=make_concrete(ph))
    except Exception as error:  # noqa: BLE001  (the outcome is compared)
        return "trace error", type(error).__name__, str(error).split("\n  at ")[0]
    code = gm.code.replace("fxkit._symbolic_trace", "torch.fx._symbolic_trace")
    try:
        result = gm(*make_inputs())
    except Exception as error:  # noqa: BLE001
        result = (type(error).__name__, str(error))
    return code, str(gm.graph).replace("fxkit._symbolic_trace", "torch.fx._symbolic_trace"), result


@pytest.mark.parametrize("case", sorted(CASES))
def test_concrete_args_like_torch_fx(case: str) -> None:
    got = _outcome(fxkit, fxkit.PH, case)
    expected = _outcome(torch.fx, TORCH_PH, case)
    assert got[:2] == expected[:2]
    if isinstance(expected[2], torch.Tensor):
        torch.testing.assert_close(got[2], expected[2])
    else:
        assert got[2] == expected[2]


def test_module_forward_with_pytree_spec_is_callable_and_interpretable() -> None:
    gm = fxkit.symbolic_trace(DictForward(), concrete_args={"d": {"a": fxkit.PH, "b": fxkit.PH}})
    inputs = {"a": torch.ones(1), "b": torch.full((1,), 2.0)}
    torch.testing.assert_close(gm(inputs), gm.lin(inputs["a"]) + 2)
    torch.testing.assert_close(fxkit.Interpreter(gm).run(inputs), gm(inputs))
