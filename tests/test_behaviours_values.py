"""Values in traced programs, traced side by side with torch.fx (the oracle): dataclasses and
NamedTuples returned or passed on, enum members as arguments, defaults and constants, custom types
with ``__fx_create_arg__`` and submodules handed to wrapped functions."""

import dataclasses
import enum
from typing import Any, NamedTuple

import pytest
import torch
import torch.fx
import torch.fx.node
from torch import nn

import fxkit
import fxkit.node

LIBRARIES = pytest.mark.parametrize("fx", [torch.fx, fxkit], ids=["torch.fx", "fxkit"])


@dataclasses.dataclass
class PairData:
    x: Any
    y: float


class PairTuple(NamedTuple):
    x: Any
    y: float


class Color(enum.Enum):
    RED = 1
    GREEN = 2


class Scaled:
    """A custom type that records its own construction when it is an argument of a traced call."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def __fx_create_arg__(self, tracer: Any) -> Any:
        return tracer.create_node("call_function", Scaled, (self.factor,), {})

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def apply_module(module: Any, x: torch.Tensor) -> torch.Tensor:
    return module(x)


def scale_by_color(x: torch.Tensor, color: Color) -> torch.Tensor:
    return x * color.value


def sum_pairs(first: Any, *, second: Any) -> torch.Tensor:
    return first.x * first.y + second.x * second.y


for _fx in (torch.fx, fxkit):
    _fx.wrap("apply_module")
    _fx.wrap("scale_by_color")
    _fx.wrap("sum_pairs")


class ReturnsData(nn.Module):
    def forward(self, inp):
        return PairData(inp, 1.2)


class ReturnsTuple(nn.Module):
    def forward(self, inp):
        return [PairTuple(inp, 1.2)]


class PassesTuples(nn.Module):
    def forward(self, inp):
        return sum_pairs(PairTuple(inp, 1.2), second=PairTuple(3.4, inp))


class EnumArguments(nn.Module):
    def forward(self, x, color=Color.GREEN):
        return scale_by_color(x, color) + scale_by_color(x, Color.RED) + Color.GREEN.value


class Level(enum.IntEnum):
    LOW = 1


class IntEnumInSlice(nn.Module):
    def forward(self, x):
        return x[Level.LOW :] + x[Level.LOW] * Level.LOW


def annotated_enum_default(x, color: Color = Color.RED):
    return scale_by_color(x, color)


class CustomArgument(nn.Module):
    def forward(self, x):
        return apply_module(Scaled(2.0), x)


class ModuleArguments(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seq = nn.Sequential(nn.ReLU(), nn.Linear(3, 3))

    def forward(self, x):
        return apply_module(self.seq[1], x) + apply_module(self.seq[1], x) + apply_module(self.seq, x)


ROOTS = [
    ReturnsData,
    ReturnsTuple,
    PassesTuples,
    EnumArguments,
    IntEnumInSlice,
    lambda: annotated_enum_default,
    CustomArgument,
    ModuleArguments,
]


def _run(fx: Any, make_root: Any) -> tuple:
    torch.manual_seed(0)
    gm = fx.symbolic_trace(make_root())
    return gm.code, str(gm.graph), gm(torch.arange(3.0))


@pytest.mark.parametrize("make_root", ROOTS, ids=lambda root: getattr(root, "__name__", "fn"))
def test_traced_values_like_torch_fx(make_root: Any) -> None:
    code, graph, result = _run(fxkit, make_root)
    expected_code, expected_graph, expected = _run(torch.fx, make_root)
    assert code.replace("fxkit._symbolic_trace", "torch.fx._symbolic_trace") == expected_code
    assert graph == expected_graph
    if isinstance(expected, list):
        (result,), (expected,) = result, expected
    assert type(result) is type(expected)
    if dataclasses.is_dataclass(expected) or isinstance(expected, tuple):
        assert torch.equal(result.x, expected.x) and result.y == expected.y
    else:
        torch.testing.assert_close(result, expected)


@LIBRARIES
def test_module_outside_the_root_is_refused(fx: Any) -> None:
    stray = nn.ReLU()

    class UsesStray(nn.Module):
        def forward(self, x):
            return apply_module(stray, x)

    with pytest.raises(
        NotImplementedError, match="argument of type: <class 'torch.nn.modules.activation.ReLU'>"
    ):
        fx.symbolic_trace(UsesStray())


@pytest.mark.parametrize(
    "fx,format_arg", [(torch.fx, torch.fx.node._format_arg), (fxkit, fxkit.node._format_arg)]
)
def test_named_tuples_put_back_into_args(fx: Any, format_arg: Any) -> None:
    """The NamedTuple nodes are inlined as values into the call; printing, DCE and the result agree."""
    traced = fx.symbolic_trace(PassesTuples())
    inp = torch.rand(3)
    expected = traced(inp)
    placeholder = next(node for node in traced.graph.nodes if node.op == "placeholder")
    call = next(node for node in traced.graph.nodes if node.target is sum_pairs)
    call.update_arg(0, PairTuple(placeholder, 1.2))
    call.update_kwarg("second", PairTuple(3.4, placeholder))
    assert isinstance(call.args[0], PairTuple) and isinstance(call.kwargs["second"], PairTuple)
    assert (format_arg(call.args[0]), format_arg(call.kwargs["second"])) == ("(%inp, 1.2)", "(3.4, %inp)")
    traced.graph.eliminate_dead_code()
    traced.recompile()
    assert [node.op for node in traced.graph.nodes] == ["placeholder", "call_function", "output"]
    torch.testing.assert_close(traced(inp), expected)


@LIBRARIES
def test_enum_is_a_constant_argument(fx: Any) -> None:
    graph = fx.Graph()
    tracer = fx.proxy.GraphAppendingTracer(graph)
    assert tracer.create_arg(Color.RED) is Color.RED
    with pytest.raises(NotImplementedError, match="argument of type"):
        tracer.create_arg(nn.ReLU())
