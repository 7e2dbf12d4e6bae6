"""Error texts, warnings and source locations people match on, side by side with torch.fx (the
oracle): in-place edits of node arguments, traced dict keys, get_attr of a missing attribute, the
note printed when a generated forward raises, the generated code's filename and ``_lineno_map``."""

import inspect
import warnings
from typing import Any, List

import pytest
import torch
import torch.fx
from torch import nn

import fxkit

LIBRARIES = pytest.mark.parametrize("fx", [torch.fx, fxkit], ids=["torch.fx", "fxkit"])
NOTE = r"Call using an FX-traced Module, line (\d+) of the traced Module's generated forward function:"


@LIBRARIES
@pytest.mark.parametrize("edit", ["setitem", "append", "dict_setitem"])
def test_in_place_edit_of_node_args_names_new_args(fx: Any, edit: str) -> None:
    graph = fx.Graph()
    x = graph.placeholder("x")
    cat = graph.call_function(torch.cat, ([x, x],), {"dim": 0})
    action = {
        "setitem": lambda: cat.args[0].__setitem__(0, 1),
        "append": lambda: cat.args[0].append(1),
        "dict_setitem": lambda: cat.kwargs.__setitem__("dim", 1),
    }[edit]
    with pytest.raises(TypeError, match="object does not support mutation") as error:
        action()
    assert "new_args" in str(error.value)


def _dict_key(x):
    return {x: 1}


def _tuple_key(x):
    return {"outer": {(x, 1): 1}}


@LIBRARIES
@pytest.mark.parametrize("fn", [_dict_key, _tuple_key])
def test_traced_value_as_dict_key(fx: Any, fn: Any) -> None:
    with pytest.raises(
        RuntimeError, match="Keys for dictionaries used as an argument cannot contain a Node. Got key: x"
    ):
        fx.symbolic_trace(fn)


class WithLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x):
        return self.lin(x)


def _get_attr_warnings(fx: Any, target: str) -> List[str]:
    gm = fx.symbolic_trace(WithLinear())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gm.graph.get_attr(target)
    return [str(item.message) for item in caught if item.filename == __file__]


@LIBRARIES
def test_get_attr_without_attribute_warns(fx: Any) -> None:
    expected = "Attempted to insert a get_attr Node with no underlying reference in the owning GraphModule"
    for target in ("missing", "lin.missing"):
        messages = _get_attr_warnings(fx, target)
        assert any(message.startswith(expected) for message in messages), messages
    for target in ("lin", "lin.weight"):
        assert _get_attr_warnings(fx, target) == []


class Square(nn.Module):
    def forward(self, x):
        y = x + 1
        return torch.mm(y, y)


def _failing_call(fx: Any, module: nn.Module, capsys: Any, *inputs: Any) -> str:
    gm = fx.symbolic_trace(module)
    capsys.readouterr()
    with pytest.raises(RuntimeError):
        gm(*inputs)
    return capsys.readouterr().err


def test_note_names_the_failing_line_of_the_generated_forward(capsys: Any) -> None:
    expected = _failing_call(torch.fx, Square(), capsys, torch.ones(2, 3))
    got = _failing_call(fxkit, Square(), capsys, torch.ones(2, 3))
    import re

    (expected_line,) = re.findall(NOTE, expected)
    (got_line,) = re.findall(NOTE, got)
    assert got_line == expected_line
    note = got[got.index("Call using") :]
    assert "mm = torch.mm(add, add)" in note and "<--- HERE" in note


@LIBRARIES
def test_no_note_when_a_submodule_raises(fx: Any, capsys: Any) -> None:
    err = _failing_call(fx, WithLinear(), capsys, torch.ones(2, 5))
    assert "Call using an FX-traced Module" not in err


@LIBRARIES
def test_generated_code_filename_names_the_traced_forward(fx: Any) -> None:
    gm = fx.symbolic_trace(Square())
    line = inspect.getsourcelines(Square.forward)[1]
    assert gm.forward.__code__.co_filename.endswith(f" from {__file__}:{line} in forward")


class Wrapped(nn.Module):
    def forward(self, a, b):
        a = torch.sin(a)
        b = torch.cos(b)
        return a + b


def _lineno_maps(fx: Any) -> List[Any]:
    maps = []
    gm = fx.symbolic_trace(Wrapped())
    maps.append((gm._lineno_map, gm._prologue_start))
    # (python_code(verbose=True) is left out: when its first line is a stack comment, torch.fx's map
    # counts one line more than the code has.)
    for transform in (
        lambda body: ["print('hello!')\n", *body],
        lambda body: [*body[:1], "print('mid')\n", *body[1:]],
        lambda body: body[1:],
    ):
        gm = fx.symbolic_trace(Wrapped())
        gm.graph.on_generate_code(lambda _, transform=transform: transform)
        gm.recompile()
        maps.append((gm._lineno_map, gm._prologue_start, gm.code))
    ph = fx._symbolic_trace.PH

    def with_input(input, d):
        return input + d["a"]

    maps.append(fx.symbolic_trace(with_input, concrete_args={"d": {"a": ph}})._lineno_map)
    return maps


def test_lineno_map_like_torch_fx() -> None:
    assert _lineno_maps(fxkit) == _lineno_maps(torch.fx)


@LIBRARIES
def test_on_generate_code_applies_now_and_restores_in_a_with_block(fx: Any) -> None:
    gm = fx.symbolic_trace(Wrapped())
    seen = []

    def spy(body):
        seen.append(list(body))
        return body

    with gm.graph.on_generate_code(lambda previous: spy):
        gm.recompile()
        gm.code  # noqa: B018  (generates the code)
    assert seen and seen[0][0] == "# COUNTER: 0\n"
    gm.recompile()
    assert "COUNTER" not in gm.code and len(seen) == 1
