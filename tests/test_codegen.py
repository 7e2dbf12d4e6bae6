"""Code generation, checked differentially: the same graph is built through the public API of torch.fx
(the oracle) and of fxkit, then the printed graph, node names, generated code, GraphModule printouts,
tabular form and run-time outputs are compared.

Every ``build_*`` function takes the module (``torch.fx`` or ``fxkit``) and returns a ``Graph``.
"""

from __future__ import annotations

import collections
import contextlib
import io
import linecache
import math
import operator
import typing
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
import torch
import torch.fx

import fxkit
from fxkit.codegen import CodeGen

# ---------------------------------------------------------------------------------------------
# The module every graph may refer to (get_attr / call_module targets)
# ---------------------------------------------------------------------------------------------


class Inner(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(4, 4))
        self.register_buffer("scale", torch.full((4,), 0.5))
        self.proj = torch.nn.Linear(4, 4)


class Root(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)
        self.seq = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(4, 4), torch.nn.Tanh())
        self.sub = torch.nn.Module()
        self.sub.inner = Inner()
        self.register_buffer("buf", torch.arange(4.0))
        self.param = torch.nn.Parameter(torch.randn(4))
        self.layers = torch.nn.ModuleList([torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)])


def scale_and_shift(value: torch.Tensor, factor: float = 2.0, *, shift: float = 0.0) -> torch.Tensor:
    """A user function used as a call_function target (bound as a global by the generated code)."""
    return value * factor + shift


def _pick(values: Any, index: int) -> Any:
    return values[index]


def wrapped_helper(value: torch.Tensor, factor: int) -> torch.Tensor:
    """Kept as a call (not traced through) by both tracers."""
    return value * factor


torch.fx.wrap("wrapped_helper")
fxkit.wrap("wrapped_helper")


def calls_wrapped_helper(x: torch.Tensor) -> torch.Tensor:
    return wrapped_helper(x, 2) + 1


# ---------------------------------------------------------------------------------------------
# Builders: each uses only the public Graph API shared by torch.fx and fxkit
# ---------------------------------------------------------------------------------------------


def build_module_calls(fx: Any) -> Any:
    g = fx.Graph()
    x = g.placeholder("x", type_expr=torch.Tensor)
    weight = g.get_attr("sub.inner.weight")
    scale = g.get_attr("sub.inner.scale")
    param = g.get_attr("param")
    lin = g.call_module("lin", (x,))
    first = g.call_module("seq.0", (lin,))
    second = g.call_module("seq.1", (first,))
    projected = g.call_module("sub.inner.proj", (second,))
    layer = g.call_module("layers.1", (projected,))
    mm = g.call_function(torch.matmul, (layer, weight))
    scaled = g.call_function(operator.mul, (mm, scale))
    shifted = g.call_function(operator.add, (scaled, param))
    g.output(shifted)
    return g


def build_operators(fx: Any) -> Any:
    g = fx.Graph()
    x = g.placeholder("x")
    y = g.placeholder("y")
    value = x
    for op in (operator.add, operator.sub, operator.mul, operator.truediv, operator.pow):
        value = g.call_function(op, (value, y))
    floored = g.call_function(operator.floordiv, (value, 3))
    modded = g.call_function(operator.mod, (floored, 5))
    matmul = g.call_function(operator.matmul, (modded, y))
    compared = [
        g.call_function(op, (matmul, 0.5))
        for op in (operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne)
    ]
    bits = g.call_function(operator.and_, (compared[0], compared[1]))
    bits = g.call_function(operator.or_, (bits, compared[2]))
    bits = g.call_function(operator.xor, (bits, compared[3]))
    inverted = g.call_function(operator.invert, (bits,))
    negated = g.call_function(operator.neg, (matmul,))
    positive = g.call_function(operator.pos, (negated,))
    int_value = g.call_method("long", (x,))
    shifted = g.call_function(operator.lshift, (int_value, 2))
    shifted = g.call_function(operator.rshift, (shifted, 1))
    reversed_sub = g.call_function(operator.sub, (1.5, positive))
    g.output((inverted, reversed_sub, shifted, compared[4], compared[5]))
    return g


def build_inplace_and_items(fx: Any) -> Any:
    g = fx.Graph()
    x = g.placeholder("x")
    y = g.placeholder("y")
    cloned = g.call_method("clone", (x,))
    for op in (operator.iadd, operator.isub, operator.imul, operator.itruediv):
        cloned = g.call_function(op, (cloned, y))
    first_row = g.call_function(operator.getitem, (cloned, 0))
    sliced = g.call_function(operator.getitem, (cloned, (slice(1, None), slice(None, None, 2))))
    fancy = g.call_function(operator.getitem, (cloned, (Ellipsis, None, 1)))
    target = g.call_function(torch.zeros, ((4, 4),))
    g.call_function(operator.setitem, (target, (slice(None, 2),), first_row))
    g.call_function(operator.setitem, (target, 3, 7.0))
    g.output((target, sliced, fancy))
    return g


def build_torch_and_builtins(fx: Any) -> Any:
    g = fx.Graph()
    x = g.placeholder("x")
    relu = g.call_function(torch.relu, (x,))
    functional = g.call_function(torch.nn.functional.gelu, (relu,), {"approximate": "tanh"})
    summed = g.call_function(torch.sum, (functional,), {"dim": 1, "keepdim": True, "dtype": torch.float64})
    shape = g.call_function(getattr, (x, "shape"))
    length = g.call_function(len, (shape,))
    biggest = g.call_function(max, (length, 2))
    first_dim = g.call_function(_pick, (shape, 0))
    user = g.call_function(scale_and_shift, (x,), {"factor": 3.0, "shift": -1.0})
    user_default = g.call_function(scale_and_shift, (user,))
    square_root = g.call_function(math.sqrt, (biggest,))
    unbound_method = g.call_function(torch.Tensor.add, (user_default, x))
    cat = g.call_function(torch.cat, ([x, unbound_method, relu],), {"dim": 0})
    clamped = g.call_function(torch.clamp, (cat,), {"min": -math.inf, "max": math.inf})
    moved = g.call_method("to", (clamped,), {"dtype": torch.float32, "device": torch.device("cpu")})
    viewed = g.call_method("view", (moved, -1))
    g.output({"summed": summed, "length": length, "root": square_root, "viewed": viewed, "dim": first_dim})
    return g


def build_aten(fx: Any) -> Any:
    aten = torch.ops.aten
    g = fx.Graph()
    x = g.placeholder("x")
    y = g.placeholder("y")
    added = g.call_function(aten.add.Tensor, (x, y), {"alpha": 2})
    relu = g.call_function(aten.relu.default, (added,))
    summed = g.call_function(aten.sum.dim_IntList, (relu, [1]), {"keepdim": True})
    muled = g.call_function(aten.mul.Tensor, (summed, 3))
    packet = g.call_function(aten.neg, (muled,))
    sliced = g.call_function(aten.slice.Tensor, (packet, 0, 0, 9223372036854775807))
    view = g.call_function(aten.view.default, (sliced, [-1]))
    g.output(view)
    return g


def build_arguments(fx: Any) -> Any:
    g = fx.Graph()
    x = g.placeholder("x", type_expr=torch.Tensor)
    count = g.placeholder("count", type_expr=int, default_value=2)
    label = g.placeholder("label", type_expr=str, default_value="hi")
    maybe = g.placeholder("maybe", type_expr=Optional[torch.Tensor], default_value=None)
    sizes = g.placeholder("sizes", type_expr=List[int], default_value=(1, 2))
    varargs = g.placeholder("*args")
    varkw = g.placeholder("**kwargs")
    full = g.call_function(
        torch.full, ((2, 2), math.inf), {"dtype": torch.float32, "device": torch.device("cpu")}
    )
    packed = g.call_function(
        _pick,
        (
            (
                (x, [count, {"label": label, "nested": (maybe, None)}], slice(None, 1, None)),
                Ellipsis,
                True,
                1e-5,
            ),
            0,
        ),
    )
    contiguous = g.call_method("contiguous", (x,), {"memory_format": torch.contiguous_format})
    typed = g.call_method("to", (contiguous, torch.float64))
    g.output(
        (typed, packed, full, sizes, varargs, varkw, -math.inf, [label, None], {"n": count}),
        type_expr=Tuple[torch.Tensor, ...],
    )
    return g


def build_names(fx: Any) -> Any:
    g = fx.Graph()
    x = g.placeholder("x")
    numbered = g.placeholder("x_1")
    g.placeholder("input")
    total = g.call_function(torch.sum, (x,))
    builtin_sum = g.call_function(sum, ([x, numbered],))
    builtin_len = g.call_function(len, (x,))
    value = x
    for explicit in (
        "input",
        "print",
        "torch",
        "class",
        "x",
        "x_1",
        "add_1",
        None,
        None,
        "foo.bar",
        "1abc",
        "inf",
        "device",
        "getattr",
        "sum",
        "len",
        "lambda",
        "nan",
        "NoneType",
        "add_1",
        "_",
    ):
        value = g.create_node("call_function", operator.add, (value, numbered), name=explicit)
    relu_a = g.call_method("relu", (value,))
    relu_b = g.call_function(torch.relu, (relu_a,))
    relu_c = g.call_module("seq.0", (relu_b,))
    layer = g.call_module("layers.0", (relu_c,))
    g.output((layer, total, builtin_sum, builtin_len))
    return g


def build_inserting(fx: Any) -> Any:
    g = fx.Graph()
    x = g.placeholder("x")
    relu = g.call_function(torch.relu, (x,))
    out = g.output(relu)
    with g.inserting_before(relu):
        before_first = g.call_function(torch.neg, (x,))
        before_second = g.call_function(torch.abs, (before_first,))
    with g.inserting_after(relu):
        after_first = g.call_function(torch.sin, (relu,))
        after_second = g.call_function(torch.cos, (relu,))
    with g.inserting_before(out):
        tail = g.call_function(operator.add, (after_first, after_second))
        tail = g.call_function(operator.add, (tail, before_second))
    with g.inserting_before(None):
        g.placeholder("y")
    with g.inserting_after(None):
        nothing = g.call_function(torch.tanh, (x,))
    g.call_function(torch.exp, (nothing,))
    out.args = (tail,)
    g.erase_node(out)
    g.output((tail,))
    return g


def build_edits(fx: Any) -> Any:
    g = fx.Graph()
    x = g.placeholder("x")
    y = g.placeholder("y")
    a = g.call_function(operator.add, (x, y))
    b = g.call_function(operator.mul, (a, x))
    c = g.call_function(torch.relu, (b,))
    d = g.call_function(operator.sub, (c, a), {})
    g.output((c, d))
    replacement = g.call_function(torch.sigmoid, (b,))
    c.append(replacement)
    c.replace_all_uses_with(replacement)
    g.erase_node(c)
    d.update_arg(1, y)
    d.insert_arg(0, x)
    d.target = torch.addcmul
    d.update_kwarg("value", 0.5)
    moved = g.call_function(torch.abs, (a,))
    a.append(moved)
    b.replace_input_with(a, moved)
    g.erase_node(a) if not a.users else None
    return g


def build_replace_with_callback(fx: Any) -> Any:
    g = fx.Graph()
    x = g.placeholder("x")
    a = g.call_function(torch.neg, (x,))
    users = [
        g.call_function(torch.sin, (a,)),
        g.call_function(torch.cos, (a,)),
        g.call_function(torch.tan, (a,)),
    ]
    total = g.call_function(torch.stack, (users,))
    g.output(total)
    with g.inserting_after(a):
        other = g.call_function(torch.abs, (x,))
    changed = a.replace_all_uses_with(other, delete_user_cb=lambda user: user.target is not torch.cos)
    assert [n.name for n in changed] == ["sin", "tan"]
    return g


def build_copies(fx: Any) -> Any:
    source = build_edits(fx)
    g = fx.Graph()
    z = g.placeholder("z")
    value_map = {}
    for node in source.nodes:
        if node.op == "placeholder":
            value_map[node] = g.call_function(torch.exp, (z,)) if node.name == "x" else z
    result = g.graph_copy(source, value_map)
    extra = g.node_copy(next(n for n in source.nodes if n.name == "sigmoid"), lambda n: value_map[n])
    g.output((result, extra))
    return g


def build_dead_code(fx: Any) -> Any:
    g = fx.Graph()
    x = g.placeholder("x")
    g.placeholder("unused_input")
    dead = g.call_function(torch.relu, (x,))
    g.call_function(torch.neg, (dead,))
    buffer = g.call_function(torch.zeros, ((4,),))
    g.call_function(operator.setitem, (buffer, 0, 1.0))
    check = g.call_function(operator.gt, (x, -10.0))
    g.call_function(torch._assert, (True, "never fails"))
    g.call_function(torch.rand, ((2,),))
    g.call_function(torch.ops.aten.add_.Tensor, (buffer, 1.0))
    g.call_method("relu", (check,))
    g.output(buffer)
    g.eliminate_dead_code()
    return g


def build_multiple_outputs_swap(fx: Any) -> Any:
    g = fx.Graph()
    x = g.placeholder("x")
    split = g.call_function(torch.chunk, (x, 2))
    first = g.call_function(operator.getitem, (split, 0))
    second = g.call_function(operator.getitem, (split, 1))
    g.output([second, first, x, None, 3])
    return g


def build_empty(fx: Any) -> Any:
    g = fx.Graph()
    g.placeholder("x")
    g.output(None)
    return g


def build_no_output(fx: Any) -> Any:
    g = fx.Graph()
    x = g.placeholder("x")
    g.call_function(torch.relu, (x,))
    return g


def build_nothing(fx: Any) -> Any:
    return fx.Graph()


def build_non_identifier_targets(fx: Any) -> Any:
    g = fx.Graph()
    x = g.placeholder("x")
    weight = g.get_attr("layers.0.weight")
    call = g.call_module("layers.0", (x,))
    g.output(g.call_function(operator.add, (call, g.call_function(torch.sum, (weight,)))))
    return g


@dataclass
class Case:
    build: Callable[[Any], Any]
    make_inputs: Callable[[], Tuple[Any, ...]]


def _xy() -> Tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(4, 4), torch.randn(4, 4) + 3.0


CASES: Dict[str, Case] = {
    "module_calls": Case(build_module_calls, lambda: (torch.randn(3, 4),)),
    "operators": Case(build_operators, _xy),
    "inplace_and_items": Case(build_inplace_and_items, _xy),
    "torch_and_builtins": Case(build_torch_and_builtins, lambda: (torch.randn(4, 4),)),
    "aten": Case(build_aten, _xy),
    "arguments": Case(build_arguments, lambda: (torch.randn(2, 3), 5, "s", None, [3], 7, 8)),
    "names": Case(build_names, lambda: (torch.randn(4, 4), torch.randn(4, 4), 0)),
    "inserting": Case(build_inserting, lambda: (torch.randn(4), torch.randn(4))),
    "edits": Case(build_edits, _xy),
    "replace_with_callback": Case(build_replace_with_callback, lambda: (torch.randn(4),)),
    "copies": Case(build_copies, lambda: (torch.randn(4, 4),)),
    "dead_code": Case(build_dead_code, lambda: (torch.randn(4), 1)),
    "multiple_outputs_swap": Case(build_multiple_outputs_swap, lambda: (torch.randn(4, 2),)),
    "empty": Case(build_empty, lambda: (torch.randn(1),)),
    "no_output": Case(build_no_output, lambda: (torch.randn(2),)),
    "nothing": Case(build_nothing, lambda: ()),
    "non_identifier_targets": Case(build_non_identifier_targets, lambda: (torch.randn(2, 4),)),
}


def assert_same_values(got: Any, expected: Any) -> None:
    """Tensors compared with assert_close, every other leaf (and the structure) compared exactly."""
    got_leaves, got_spec = torch.utils._pytree.tree_flatten(got)
    expected_leaves, expected_spec = torch.utils._pytree.tree_flatten(expected)
    assert got_spec == expected_spec
    for got_leaf, expected_leaf in zip(got_leaves, expected_leaves):
        if isinstance(expected_leaf, torch.Tensor):
            torch.testing.assert_close(got_leaf, expected_leaf, equal_nan=True)
        else:
            assert type(got_leaf) is type(expected_leaf) and got_leaf == expected_leaf


def _captured(print_fn: Callable[[], Any]) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        print_fn()
    return buffer.getvalue()


@pytest.fixture(scope="module")
def root() -> Root:
    torch.manual_seed(1)
    return Root()


@pytest.mark.parametrize("case_name", list(CASES))
def test_graph_matches_torch_fx(case_name: str, root: Root) -> None:
    case = CASES[case_name]
    theirs, ours = case.build(torch.fx), case.build(fxkit)
    assert [n.name for n in ours.nodes] == [n.name for n in theirs.nodes]
    assert [n.op for n in ours.nodes] == [n.op for n in theirs.nodes]
    assert str(ours) == str(theirs)
    assert ours.python_code("self").src == theirs.python_code("self").src
    assert ours.python_code("root").src == theirs.python_code("root").src
    assert _captured(ours.print_tabular) == _captured(theirs.print_tabular)
    ours.lint()


@pytest.mark.parametrize("case_name", list(CASES))
def test_graph_module_matches_torch_fx(case_name: str, root: Root) -> None:
    case = CASES[case_name]
    theirs = torch.fx.GraphModule(root, case.build(torch.fx))
    ours = fxkit.GraphModule(root, case.build(fxkit))
    assert ours.code == theirs.code
    assert str(ours) == str(theirs)
    assert ours.print_readable(print_output=False) == theirs.print_readable(print_output=False)
    assert _captured(ours.print_readable) == _captured(theirs.print_readable)
    inputs = case.make_inputs()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        expected = theirs(*inputs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        got = ours(*inputs)
    assert_same_values(got, expected)


def camelCaseHelper(value: Any) -> Any:  # noqa: N802 - the name is what is tested
    return value


def conv2d(value: Any) -> Any:
    return value


Pair = collections.namedtuple("Pair", "first second")


def build_names_and_constants(fx: Any) -> Any:
    """Node names derived from many kinds of targets, and constants of many types (printed, not run)."""
    g = fx.Graph()
    x = g.placeholder("x")
    for target in (
        camelCaseHelper,
        camelCaseHelper,
        conv2d,
        conv2d,
        torch.nn.functional.relu,
        torch.Tensor.add,
        torch.Tensor.__add__,
        torch.ops.aten.add_.Tensor,
        torch.ops.aten.add,
        torch.ops.aten.convolution.default,
        math.floor,
        abs,
        torch._C._nn.linear,
        torch.nn.functional.linear,
        torch.conv2d,
        torch.Tensor.size,
    ):
        g.call_function(target, (x,))
    g.call_function(operator.__getitem__, (x, 0))
    for path in ("layers.0.lin", "seq.10", "Conv2D", "a.B"):
        g.call_module(path, (x,))
        g.get_attr(path)
    for method in ("__getitem__", "size", "add_", "__add__"):
        g.call_method(method, (x, 1))
    for explicit in (
        "x_01",
        "add_0",
        "foo_1",
        "foo_1",
        "foo",
        "foo",
        "foo_2",
        "a__1",
        "_",
        "__x__",
        "FooBar",
        "fooBar",
        "x_1",
        "relu_",
        "a b",
        "",
    ):
        g.create_node("call_function", torch.relu, (x,), name=explicit)
    for constant in (
        1e-5,
        1e20,
        -0.0,
        1 + 2j,
        b"ab",
        torch.Size([2, 3]),
        [torch.float16, torch.int64],
        torch.channels_last,
        torch.strided,
        torch.device("cuda:0"),
        None,
        Pair(1, 2),
        'it\'s "q"',
        -7,
        2**70,
        True,
        math.nan,
        (),
        [],
        {},
        {"a b": 1, 3: 2},
        range(3),
        slice(None),
        ...,
        float("-inf"),
    ):
        g.call_function(operator.add, (x, constant))
    g.call_function(getattr, (x, "1"))
    g.output(x)
    return g


def test_names_and_constants_match_torch_fx() -> None:
    theirs, ours = build_names_and_constants(torch.fx), build_names_and_constants(fxkit)
    assert [n.name for n in ours.nodes] == [n.name for n in theirs.nodes]
    assert str(ours) == str(theirs)
    assert ours.python_code("self").src == theirs.python_code("self").src
    assert _captured(ours.print_tabular) == _captured(theirs.print_tabular)


def test_getattr_with_a_keyword_attribute_generates_valid_code() -> None:
    """Intended divergence: torch.fx writes ``x.class`` (a SyntaxError); fxkit keeps ``getattr``."""
    g = fxkit.Graph()
    x = g.placeholder("x")
    g.output(g.call_function(getattr, (x, "class")))
    module = fxkit.GraphModule(torch.nn.Module(), g)
    assert "getattr(x, 'class')" in module.code

    class WithKeyword:
        pass

    holder = WithKeyword()
    setattr(holder, "class", 5)
    assert module(holder) == 5


def test_class_name_in_code_and_printouts(root: Root) -> None:
    theirs = torch.fx.GraphModule(root, build_module_calls(torch.fx), class_name="MyNet")
    ours = fxkit.GraphModule(root, build_module_calls(fxkit), class_name="MyNet")
    assert type(ours).__name__ == "MyNet"
    assert str(ours) == str(theirs)
    assert ours.print_readable(print_output=False) == theirs.print_readable(print_output=False)


def test_stack_traces_in_readable_output() -> None:
    def build(fx: Any) -> Any:
        g = fx.Graph()
        x = g.placeholder("x")
        y = g.placeholder("*rest")
        first = g.call_function(torch.relu, (x,))
        first.stack_trace = '  File "/models/net.py", line 3, in forward\n    y = torch.relu(x)\n'
        second = g.call_function(torch.neg, (first,))
        second.stack_trace = '  File "/models/net.py", line 4, in forward\n    z = -y\n'
        same_place = g.call_function(torch.abs, (second,))
        same_place.stack_trace = second.stack_trace
        g.call_function(torch.exp, (same_place,))
        last = g.call_function(torch.sin, (same_place,))
        last.stack_trace = first.stack_trace
        returned = g.output((last, y))
        returned.stack_trace = second.stack_trace
        return g

    theirs = torch.fx.GraphModule(torch.nn.Module(), build(torch.fx))
    ours = fxkit.GraphModule(torch.nn.Module(), build(fxkit))
    assert ours.code == theirs.code
    assert ours.print_readable(print_output=False) == theirs.print_readable(print_output=False)


def test_nested_graph_module_readable() -> None:
    def build_child(fx: Any) -> Any:
        g = fx.Graph()
        x = g.placeholder("x")
        g.output(g.call_function(torch.relu, (x,)))
        return g

    def build_parent(fx: Any) -> Any:
        g = fx.Graph()
        x = g.placeholder("x")
        g.output(g.call_module("child", (g.call_module("lin", (x,)),)))
        return g

    modules = {}
    for fx in (torch.fx, fxkit):
        child = fx.GraphModule(torch.nn.Module(), build_child(fx), class_name="Child")
        parent_root = torch.nn.Module()
        parent_root.child = child
        parent_root.lin = torch.nn.Linear(2, 2)
        modules[fx] = fx.GraphModule(parent_root, build_parent(fx))
    assert modules[fxkit].print_readable(False) == modules[torch.fx].print_readable(False)
    assert str(modules[fxkit]) == str(modules[torch.fx])


# ---------------------------------------------------------------------------------------------
# fxkit-only behaviour of the code generator
# ---------------------------------------------------------------------------------------------


def test_same_graph_twice_gives_same_source() -> None:
    for case in CASES.values():
        first, second = case.build(fxkit), case.build(fxkit)
        assert str(first) == str(second)
        assert first.python_code("self").src == second.python_code("self").src


def test_values_are_freed_after_last_use() -> None:
    g = fxkit.Graph()
    x = g.placeholder("x")
    a = g.call_function(torch.neg, (x,))
    b = g.call_function(operator.add, (a, x))
    g.call_function(torch.relu, (b,))
    g.output(b)
    lines = [line.strip() for line in g.python_code("self").src.splitlines() if line.strip()]
    assert "neg = torch.neg(x)" in lines
    assert "add = neg + x;  neg = x = None" in lines
    assert "relu = torch.relu(add);  relu = None" in lines


def test_constant_tensor_argument_is_bound_as_global() -> None:
    constant = torch.tensor([1.0, 2.0])
    g = fxkit.Graph()
    x = g.placeholder("x")
    g.output(g.call_function(operator.add, (x, constant)))
    code = g.python_code("self")
    bound = [name for name, value in code.globals.items() if value is constant]
    assert len(bound) == 1 and bound[0] in code.src
    module = fxkit.GraphModule(torch.nn.Module(), g)
    torch.testing.assert_close(module(torch.ones(2)), torch.ones(2) + constant)


def test_global_names_do_not_clash_with_nodes() -> None:
    g = fxkit.Graph()
    x = g.placeholder("x")
    clash = g.create_node("call_function", torch.neg, (x,), name="tests_test_codegen_scale_and_shift")
    g.output(g.call_function(scale_and_shift, (clash,)))
    module = fxkit.GraphModule(torch.nn.Module(), g)
    torch.testing.assert_close(module(torch.ones(2)), scale_and_shift(-torch.ones(2)))


def test_lambda_target_runs() -> None:
    def build(fx: Any) -> Any:
        g = fx.Graph()
        x = g.placeholder("x")
        g.output(g.call_function(_double, (x,)))
        return g

    ours = fxkit.GraphModule(torch.nn.Module(), build(fxkit))
    theirs = torch.fx.GraphModule(torch.nn.Module(), build(torch.fx))
    assert [n.name for n in ours.graph.nodes] == [n.name for n in theirs.graph.nodes]
    torch.testing.assert_close(ours(torch.ones(2)), theirs(torch.ones(2)))


_double = lambda value: value * 2  # noqa: E731


def test_generated_source_is_in_linecache() -> None:
    g = fxkit.Graph()
    x = g.placeholder("x")
    g.output(g.call_function(torch.neg, (x,)))
    module = fxkit.GraphModule(torch.nn.Module(), g)
    module(torch.ones(1))
    filename = type(module).forward.__code__.co_filename
    assert "".join(linecache.getlines(filename)) == module.code


def test_python_code_with_custom_codegen_subclass() -> None:
    class ListInput(CodeGen):
        def gen_fn_def(self, free_vars: List[str], maybe_return_annotation: str, **kwargs: Any) -> str:
            return f"def {self._func_name}(self, args_list){maybe_return_annotation}:\n    {', '.join(free_vars)} = args_list"

        def process_inputs(self, *args: Any) -> Any:
            return [list(args)]

    g = fxkit.Graph()
    a = g.placeholder("a")
    b = g.placeholder("b")
    g.output(g.call_function(operator.add, (a, b)))
    g.set_codegen(ListInput())
    module = fxkit.GraphModule(torch.nn.Module(), g)
    assert "def forward(self, args_list):" in module.code
    torch.testing.assert_close(module([torch.ones(1), torch.ones(1)]), torch.full((1,), 2.0))


def test_annotations_of_typing_generics_run() -> None:
    g = fxkit.Graph()
    values = g.placeholder("values", type_expr=typing.Dict[str, typing.List[torch.Tensor]])
    got = g.call_function(operator.getitem, (values, "a"))
    g.output(got, type_expr=typing.List[torch.Tensor])
    module = fxkit.GraphModule(torch.nn.Module(), g)
    tensors = [torch.ones(1)]
    assert module({"a": tensors}) is tensors


def test_wrapped_function_line_differs_only_by_package() -> None:
    """Intended divergence: the generated ``wrap`` line names fxkit instead of torch.fx."""
    ours, theirs = fxkit.symbolic_trace(calls_wrapped_helper), torch.fx.symbolic_trace(calls_wrapped_helper)
    assert "fxkit._symbolic_trace.wrap(" in ours.code
    assert ours.code == theirs.code.replace("torch.fx._symbolic_trace.wrap(", "fxkit._symbolic_trace.wrap(")
    torch.testing.assert_close(ours(torch.ones(2)), theirs(torch.ones(2)))


# ---------------------------------------------------------------------------------------------
# python_code / print_readable display options
# ---------------------------------------------------------------------------------------------


class _OptionsModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 3)

    def forward(self, x: torch.Tensor, y: int = 2) -> Any:
        z = torch.clamp(self.lin(x), None, 3).to(torch.float16, non_blocking=True)
        return {"a": z.sum(1) + y, "b": [x, 1.5, "s"]}, (z,)


def _options_module(fx: Any) -> Any:
    shape_prop = __import__(fx.__name__ + ".passes.shape_prop", fromlist=["ShapeProp"])
    gm = fx.symbolic_trace(_OptionsModel())
    shape_prop.ShapeProp(gm).propagate(torch.ones(2, 3))
    for node in gm.graph.nodes:
        node.meta["mykey"] = node.name.upper()
        if node.name == "to":
            node.meta["stack_trace"] = 'File "model.py", line 7, in forward\n    z = z.to(torch.float16)'
    return gm


_CODE_OPTIONS = [
    {"expanded_def": True},
    {"record_func": True},
    {"colored": True},
    {"additional_meta": ["mykey"]},
    {"verbose": True, "expanded_def": True, "additional_meta": ["mykey", "absent"]},
    {"verbose": True, "colored": True, "record_func": True, "include_stride": True, "include_device": True},
]


@pytest.mark.parametrize("options", _CODE_OPTIONS, ids=lambda o: "-".join(o))
def test_python_code_options_match_torch_fx(options: Dict[str, Any]) -> None:
    ours, theirs = _options_module(fxkit), _options_module(torch.fx)
    assert ours.graph.python_code("self", **options).src == theirs.graph.python_code("self", **options).src


_READABLE_OPTIONS = [{}, {"expanded_def": True}, {"additional_meta": ["mykey"]}, {"colored": True}]


@pytest.mark.parametrize("options", _READABLE_OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_print_readable_options_match_torch_fx(options: Dict[str, Any]) -> None:
    ours, theirs = _options_module(fxkit), _options_module(torch.fx)
    assert ours.print_readable(False, **options) == theirs.print_readable(False, **options)


def test_record_func_code_runs_and_unknown_options_raise() -> None:
    gm = _options_module(fxkit)
    code = gm.graph.python_code("self", record_func=True)
    namespace: Dict[str, Any] = dict(code.globals)
    exec(compile(code.src, "<record_func>", "exec"), namespace)
    x = torch.ones(2, 3)
    assert torch.equal(namespace["forward"](gm, x)[0]["a"], gm(x)[0]["a"])
    for fx in (torch.fx, fxkit):
        module = _options_module(fx)
        with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
            module.graph.python_code("self", bogus=True)
        with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
            module.print_readable(bogus=True)
