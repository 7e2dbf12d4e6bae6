"""fxkit.symbolic_trace against torch.fx.symbolic_trace (the oracle) on many small programs.

For every case both tracers run on separate copies of the same module; the graph text, the
generated code and every node's (op, name, target, args, kwargs) must match, and the traced
module must compute what the eager module computes.
"""

from __future__ import annotations

import copy
import math
from math import sqrt
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import pytest
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

import fxkit
from fxkit import zoo

torch.fx.wrap("len")
fxkit.wrap("len")


def shifted_sum(x: torch.Tensor, shift: int) -> torch.Tensor:
    return x.sum() + shift


torch.fx.wrap("shifted_sum")
fxkit.wrap("shifted_sum")


def normalize(text: str) -> str:
    """Both libraries print their own module path where generated code names it."""
    return text.replace("torch.fx._symbolic_trace", "fxkit._symbolic_trace").replace("torch.fx", "fxkit")


def target_text(target) -> str:
    if isinstance(target, str):
        return target
    qualname = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)
    return normalize(f"{getattr(target, '__module__', None)}.{qualname}")


def node_summary(graph) -> List[Tuple[str, str, str, str, str]]:
    return [
        (node.op, node.name, target_text(node.target), normalize(str(node.args)), normalize(str(node.kwargs)))
        for node in graph.nodes
    ]


def assert_same_outputs(actual, expected) -> None:
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor)
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)
    elif isinstance(expected, (list, tuple)):
        assert type(actual) is type(expected) and len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_same_outputs(a, e)
    elif isinstance(expected, dict):
        assert list(actual) == list(expected)
        for key in expected:
            assert_same_outputs(actual[key], expected[key])
    else:
        assert actual == expected


# ------------------------------------------------------------------------ the modules


class Arithmetic(nn.Module):
    def forward(self, x, y):
        return x + y, x - y, x * y, x / y, x // y, x % y, x**2, x @ y.t(), -x, +x, abs(x)


class Reflected(nn.Module):
    def forward(self, x):
        return 1 + x, 2 - x, 3 * x, 1 / x, 2**x, 7 // x, 5 % x


class Bitwise(nn.Module):
    def forward(self, a, b):
        return a & b, a | b, a ^ b, ~a, a << 1, a >> 1, 1 << a, 3 & a


class Comparisons(nn.Module):
    def forward(self, x, y):
        return x == y, x != y, x < y, x > y, x <= y, x >= y, 0 < x


class TorchFunctions(nn.Module):
    def forward(self, x, y):
        z = torch.cat([x, y], dim=0)
        s = torch.stack((x, y))
        values, indices = torch.topk(torch.sum(z, dim=-1), 2)
        return torch.relu(z), torch.matmul(x, y.t()), s, values, indices, torch.where(x > 0, x, y)


class Functionals(nn.Module):
    def forward(self, x):
        h = F.relu(x)
        h = F.gelu(h, approximate="tanh")
        h = F.layer_norm(h, (x.shape[-1],))
        h = F.softmax(h, dim=-1)
        return F.dropout(h, p=0.2, training=self.training), F.silu(x), F.pad(x, (1, 1))


class TensorMethods(nn.Module):
    def forward(self, x):
        y = x.view(2, -1).permute(1, 0).contiguous().reshape(-1)
        return (
            y.sum(dim=0, keepdim=True),
            x.mean(),
            x.transpose(0, 1).flatten(),
            x.size(),
            x.size(1),
            x.float().half(),
        )


class Attributes(nn.Module):
    def forward(self, x):
        return x.shape, x.T, x.dtype, x.ndim, x.shape[0] * x.shape[1], x.mT


class Indexing(nn.Module):
    def forward(self, x, i):
        return x[0], x[-1, 1:], x[..., None, ::2], x[:, None], x[i], x[x > 0], x[[0, 1]], x[1:3, ...]


class Unpacking(nn.Module):
    def forward(self, x):
        a, b = x.chunk(2, dim=0)
        rows, cols = x.shape
        first, *_ = (x, x)
        head, tail = x.split([1, x.shape[0] - 1])
        return a * rows, b + cols, first, head, tail


class InPlace(nn.Module):
    def forward(self, x):
        y = x.clone()
        y.add_(1)
        y += 2
        y.relu_()
        y *= 3
        return y


class Conversions(nn.Module):
    def forward(self, x):
        return (
            x.to(torch.float64),
            x.to(dtype=torch.int32),
            x.type_as(x),
            torch.zeros_like(x, dtype=torch.float16),
        )


class LeafModules(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.act(self.bn(self.conv(x)))), 1))


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.scale = nn.Parameter(torch.full((4,), 0.5))

    def forward(self, x):
        return self.lin(x) * self.scale


class NestedUserModules(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(Inner(), nn.Sequential(Inner(), nn.Tanh()))
        self.heads = nn.ModuleDict({"a": nn.Linear(4, 2), "b": Inner()})
        self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])

    def forward(self, x):
        x = self.blocks(x)
        for layer in self.layers:
            x = layer(x) + x
        return self.heads["a"](x), self.heads["b"](x)


class SharedModule(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.alias = self.lin

    def forward(self, x):
        return self.alias(self.lin(x)) + self.lin.weight.sum() + self.lin.weight.mean()


class ParamsAndBuffers(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 4))
        self.register_buffer("running", torch.ones(4))
        self.plain = torch.arange(4.0)
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        y = x + self.lin.weight
        y = y * self.running + self.plain
        return torch.topk(torch.sum(self.lin(y + self.weight).relu(), dim=-1), 3), self.running


class TensorConstants(nn.Module):
    def forward(self, x):
        t = torch.ones(4)
        return (
            x + t,
            t + x,
            x * torch.zeros(4),
            torch.arange(4.0) + x,
            x + torch.tensor([1.0, 2.0, 3.0, 4.0]),
            t,
        )


class MathAutowrap(nn.Module):
    def forward(self, x):
        return x / math.sqrt(x.shape[-1]), x * sqrt(2.0), math.floor(x.shape[0] / 2)


class MathOnProxy(nn.Module):
    def forward(self, x):
        n = x.shape[-1]
        return x / math.sqrt(n), x * math.log(n)


class WrappedFunctions(nn.Module):
    def forward(self, x):
        return x / len(x), shifted_sum(x, 3), shifted_sum(torch.ones(2), 1)


class StaticControlFlow(nn.Module):
    def __init__(self, activate: bool):
        super().__init__()
        self.activate = activate
        self.linear = nn.Linear(5, 5)

    def forward(self, x):
        x = self.linear(x)
        if self.activate:
            x = torch.relu(x)
        for _ in range(2):
            x = x * 2
        return x


class DictListOutputs(nn.Module):
    def forward(self, x, y):
        return {"sum": x + y, "parts": [x, y, (x * y, None)], "n": 3}


class Point(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor


class NamedTupleOutput(nn.Module):
    def forward(self, a):
        return Point(a + 1, a - 1)


class Annotated(nn.Module):
    def forward(self, x: torch.Tensor, scale: float = 2.0, names: Optional[List[str]] = None) -> torch.Tensor:
        return x * scale


class KeywordOnly(nn.Module):
    def forward(self, x, *, y, z=3):
        return x + y + z


class VarArgs(nn.Module):
    def forward(self, x, *args, **kwargs):
        return x, args, kwargs


class DefaultArgs(nn.Module):
    def forward(self, x, bias=1.5, mode="mul"):
        return x * bias, mode


class MethodChains(nn.Module):
    def forward(self, x):
        return x.abs().clamp(min=0.1, max=2.0).log().exp().neg().sigmoid().tanh()


class Reductions(nn.Module):
    def forward(self, x):
        return (
            x.max(dim=1),
            x.min(),
            x.argmax(-1),
            torch.max(x, x + 1),
            x.std(0),
            torch.logsumexp(x, 1),
            x.norm(),
        )


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
        self.proj = nn.Linear(8, 8)

    def forward(self, x):
        out, weights = self.mha(x, x, x)
        return self.proj(out), weights


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 6)
        self.lstm = nn.LSTM(6, 5, batch_first=True)
        self.gru = nn.GRU(5, 4, batch_first=True)

    def forward(self, tokens):
        out, (h, c) = self.lstm(self.emb(tokens))
        out2, h2 = self.gru(out)
        return out2, h, c, h2


class ScaledDotProduct(nn.Module):
    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


class Einsum(nn.Module):
    def forward(self, a, b):
        return (
            torch.einsum("ij,jk->ik", a, b),
            torch.bmm(a.unsqueeze(0), b.unsqueeze(0)),
            torch.outer(a[0], b[0]),
        )


class ShapeArithmetic(nn.Module):
    def forward(self, x):
        batch = x.size(0)
        return x.reshape(batch, -1), x.new_zeros(batch, 2), x.expand(2, x.shape[0], x.shape[1])


class DropoutTraining(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(x), F.dropout(x, training=self.training)


class ConvFunctional(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 3, 3, 3))

    def forward(self, x):
        return F.max_pool2d(F.conv2d(x, self.weight, padding=1), 2), F.interpolate(x, scale_factor=2.0)


class CallMethodOnAttr(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x):
        return x @ self.lin.weight.t() + self.lin.bias.unsqueeze(0), self.lin.weight.shape


class TupleIndexProxy(nn.Module):
    def forward(self, x, y):
        idx = x.shape[0] - 1
        return y[idx], y[:idx], x.unbind(0)[0], torch.tensor(1.0) * y


class ScalarTensorMix(nn.Module):
    def forward(self, x):
        return torch.add(x, 1, alpha=2), torch.mul(2.0, x), torch.clamp(x, max=0.5), torch.pow(2, x)


def plain_function(x, y):
    return torch.sin(x) * y + 1


def function_with_module_call(x):
    return F.relu(x).sum(dim=-1)


def zoo_model(name: str) -> Callable[[], nn.Module]:
    return lambda: zoo.get_model(name)


CASES: Dict[str, Tuple[Callable[[], object], Callable[[], tuple], dict]] = {
    "arithmetic": (Arithmetic, lambda: (torch.randn(3, 3), torch.rand(3, 3) + 0.5), {}),
    "reflected": (Reflected, lambda: (torch.rand(4) + 0.5,), {}),
    "bitwise": (Bitwise, lambda: (torch.arange(6), torch.arange(6) + 2), {}),
    "comparisons": (Comparisons, lambda: (torch.randn(4), torch.randn(4)), {}),
    "torch_functions": (TorchFunctions, lambda: (torch.randn(3, 4), torch.randn(3, 4)), {}),
    "functionals": (lambda: Functionals().eval(), lambda: (torch.randn(2, 6),), {}),
    "tensor_methods": (TensorMethods, lambda: (torch.randn(4, 6),), {}),
    "attributes": (Attributes, lambda: (torch.randn(3, 5),), {}),
    "indexing": (Indexing, lambda: (torch.randn(4, 5), 2), {}),
    "unpacking": (Unpacking, lambda: (torch.randn(4, 3),), {}),
    "in_place": (InPlace, lambda: (torch.randn(3),), {}),
    "conversions": (Conversions, lambda: (torch.randn(3),), {}),
    "leaf_modules": (lambda: LeafModules().eval(), lambda: (torch.randn(2, 3, 6, 6),), {}),
    "nested_user_modules": (NestedUserModules, lambda: (torch.randn(2, 4),), {}),
    "shared_module": (SharedModule, lambda: (torch.randn(2, 3),), {}),
    "params_and_buffers": (ParamsAndBuffers, lambda: (torch.randn(4, 4),), {}),
    "tensor_constants": (TensorConstants, lambda: (torch.randn(4),), {}),
    "math_autowrap": (MathAutowrap, lambda: (torch.randn(3, 4),), {}),
    "math_on_proxy": (MathOnProxy, lambda: (torch.randn(3, 4),), {}),
    "wrapped_functions": (WrappedFunctions, lambda: (torch.randn(3, 4),), {}),
    "static_control_flow_on": (lambda: StaticControlFlow(True), lambda: (torch.randn(2, 5),), {}),
    "static_control_flow_off": (lambda: StaticControlFlow(False), lambda: (torch.randn(2, 5),), {}),
    "dict_list_outputs": (DictListOutputs, lambda: (torch.randn(2), torch.randn(2)), {}),
    "namedtuple_output": (NamedTupleOutput, lambda: (torch.randn(2),), {}),
    "annotated": (Annotated, lambda: (torch.randn(2),), {}),
    "keyword_only": (KeywordOnly, lambda: (torch.randn(2), torch.randn(2)), {}),
    "var_args": (VarArgs, lambda: (torch.randn(2), torch.randn(2), {"k": torch.randn(2)}), {}),
    "default_args": (DefaultArgs, lambda: (torch.randn(2),), {}),
    "method_chains": (MethodChains, lambda: (torch.randn(3, 3),), {}),
    "reductions": (Reductions, lambda: (torch.randn(3, 4),), {}),
    "attention": (lambda: Attention().eval(), lambda: (torch.randn(2, 5, 8),), {}),
    "recurrent": (Recurrent, lambda: (torch.randint(0, 10, (2, 7)),), {}),
    "scaled_dot_product": (ScaledDotProduct, lambda: tuple(torch.randn(1, 2, 4, 8) for _ in range(3)), {}),
    "einsum": (Einsum, lambda: (torch.randn(3, 4), torch.randn(4, 5)), {}),
    "shape_arithmetic": (ShapeArithmetic, lambda: (torch.randn(3, 4),), {}),
    "dropout_eval": (lambda: DropoutTraining().eval(), lambda: (torch.randn(4, 4),), {}),
    "conv_functional": (ConvFunctional, lambda: (torch.randn(1, 3, 8, 8),), {}),
    "call_method_on_attr": (CallMethodOnAttr, lambda: (torch.randn(2, 3),), {}),
    "tuple_index_proxy": (TupleIndexProxy, lambda: (torch.randn(3, 2), torch.randn(5)), {}),
    "scalar_tensor_mix": (ScalarTensorMix, lambda: (torch.randn(4),), {}),
    "plain_function": (lambda: plain_function, lambda: (torch.randn(3), torch.randn(3)), {}),
    "function_with_functional": (lambda: function_with_module_call, lambda: (torch.randn(2, 3),), {}),
    "concrete_bool": (lambda: StaticControlFlow(True), lambda: (torch.randn(2, 5),), {}),
    "concrete_flag": (
        lambda: lambda x, flag: x * 2 if flag else x,
        lambda: (torch.randn(3), True),
        {"concrete_args": {"flag": True}},
    ),
    "concrete_none": (
        lambda: lambda x, bias=None: x if bias is None else x + bias,
        lambda: (torch.randn(3), None),
        {"concrete_args": {"bias": None}},
    ),
    "concrete_int": (DefaultArgs, lambda: (torch.randn(3), 4), {"concrete_args": {"bias": 4}}),
    "pytree_dict_list": (
        lambda: lambda x, d, l: (x + d["a"] * l[0] - l[1], {"o": x}),
        lambda: (torch.randn(2), {"a": torch.randn(2)}, [torch.randn(2), torch.randn(2)]),
        {"concrete_args": {"d": {"a": torch.fx.PH}, "l": [torch.fx.PH, torch.fx.PH]}},
    ),
    "zoo_mlp": (zoo_model("mlp"), lambda: zoo.example_inputs("mlp"), {}),
    "zoo_resnet": (zoo_model("resnet"), lambda: zoo.example_inputs("resnet"), {}),
    "zoo_transformer": (zoo_model("transformer"), lambda: zoo.example_inputs("transformer"), {}),
}


# Cases whose inputs are not all positional.
EAGER_CALLS = {"keyword_only": lambda module, x, y: module(x, y=y)}


def _fxkit_concrete_args(kwargs: dict) -> dict:
    """The same concrete_args with torch.fx's PH swapped for fxkit's."""
    if "concrete_args" not in kwargs:
        return kwargs
    swapped = torch.utils._pytree.tree_map(
        lambda leaf: fxkit.PH if leaf is torch.fx.PH else leaf, kwargs["concrete_args"]
    )
    return {"concrete_args": swapped}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_torch_fx(case: str) -> None:
    make_root, make_inputs, trace_kwargs = CASES[case]
    torch.manual_seed(0)
    root = make_root()
    oracle_root = copy.deepcopy(root) if isinstance(root, nn.Module) else root
    ours_root = copy.deepcopy(root) if isinstance(root, nn.Module) else root

    expected_gm = torch.fx.symbolic_trace(oracle_root, **trace_kwargs)
    ours = fxkit.symbolic_trace(ours_root, **_fxkit_concrete_args(trace_kwargs))

    assert isinstance(ours, fxkit.GraphModule)
    assert normalize(str(ours.graph)) == normalize(str(expected_gm.graph))
    assert normalize(ours.code) == normalize(expected_gm.code)
    assert node_summary(ours.graph) == node_summary(expected_gm.graph)
    ours.graph.lint()

    inputs = make_inputs()
    call = EAGER_CALLS.get(case, lambda module, *args: module(*args))
    eager = call(root, *inputs)
    assert_same_outputs(call(ours, *inputs), eager)
    assert_same_outputs(call(expected_gm, *inputs), eager)


def test_case_count_covers_the_zoo_requirement() -> None:
    assert len(CASES) >= 40
