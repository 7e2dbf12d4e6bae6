"""API parity sweep: small usage snippets, each written once against a library module and run
twice, once with torch.fx (the oracle) and once with fxkit, whose results must be equal.

Every snippet takes the library module as ``fx`` and returns plain data (code text, node names,
ops, targets, output tensors, exception type names and key message parts). Where fxkit differs
from torch.fx on purpose, the snippet returns the part both agree on and asserts the documented
difference explicitly, checking the library it runs with.
"""

from __future__ import annotations

import copy
import math
import operator
import pickle
import re
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.fx
import torch.fx.experimental.const_fold
import torch.fx.experimental.optimization
import torch.fx.passes.shape_prop
import torch.fx.passes.split_module
import torch.fx.subgraph_rewriter
import torch.nn.functional as F
from torch import nn

import fxkit
import fxkit.experimental.const_fold
import fxkit.experimental.optimization
import fxkit.passes.shape_prop
import fxkit.passes.split_module
import fxkit.subgraph_rewriter

SNIPPETS: list[Callable[[Any], Any]] = []


def snippet(
    function: Callable[[Any], Any] | None = None, *, raises: tuple[type[BaseException], str] | None = None
) -> Any:
    """Register a snippet for the parity test: ``@snippet``, or ``@snippet(raises=(ErrorType, "part of
    the message"))`` for one that must raise that error with both libraries. Any exception a snippet
    does not declare fails the test, so a snippet broken the same way in both cannot pass silently."""

    def register(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        fn.expected_error = raises  # type: ignore[attr-defined]
        SNIPPETS.append(fn)
        return fn

    return register(function) if function is not None else register


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


# Functions wrapped at module scope by both libraries: each library patches them only while it traces.
def clamp_len(x):
    return len(x)


def plus_one_leaf(x):
    return x + 1


torch.fx.wrap("clamp_len")
fxkit.wrap("clamp_len")
torch.fx.wrap("len")
fxkit.wrap("len")


@torch.fx.wrap
@fxkit.wrap
def decorated_scale(x, factor):
    return x * factor


# ---------------------------------------------------------------------------------------------
# tracing basics


class AddRelu(nn.Module):
    def forward(self, x, y):
        return torch.relu(x + y) * 2


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.weight = nn.Parameter(torch.randn(3))
        self.register_buffer("offset", torch.arange(3.0))

    def forward(self, x):
        return F.relu(self.linear(x)) * self.weight + self.offset


@snippet
def code_and_graph_of_simple_module(fx):
    gm = fx.symbolic_trace(AddRelu())
    return gm.code, str(gm.graph), summary(gm.graph), gm(torch.ones(2), torch.arange(2.0))


@snippet
def parameters_and_buffers_become_get_attr(fx):
    gm = fx.symbolic_trace(SmallNet())
    return gm.code, summary(gm.graph), gm(torch.randn(2, 4)), sorted(gm.state_dict())


@snippet
def trace_plain_function(fx):
    def fn(a, b):
        return torch.sigmoid(a) - b.mean()

    gm = fx.symbolic_trace(fn)
    return gm.code, type(gm).__name__, gm(torch.ones(3), torch.ones(3))


@snippet
def functional_calls(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(5, 4))

        def forward(self, x):
            y = F.linear(x, self.w)
            y = F.gelu(y)
            y = F.softmax(y, dim=-1)
            return F.layer_norm(y, (5,))

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), gm(torch.randn(2, 4))


@snippet
def tensor_methods_and_shapes(fx):
    class M(nn.Module):
        def forward(self, x):
            b, c = x.size()[:2]
            n = x.shape[-1]
            d = x.dim()
            y = x.view(b, c, -1).permute(0, 2, 1).transpose(1, 2).reshape(b, -1).contiguous()
            return y * n + d, x.size(1)

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), gm(torch.randn(2, 3, 4))


@snippet
def chunk_split_unbind(fx):
    class M(nn.Module):
        def forward(self, x):
            a, b = x.chunk(2, dim=1)
            c = torch.split(x, 1, dim=0)[0]
            first = x.unbind(0)[1]
            return a + b, c, first

    gm = fx.symbolic_trace(M())
    return gm.code, gm(torch.randn(2, 4))


@snippet
def getitem_variants(fx):
    class M(nn.Module):
        def forward(self, x, idx):
            return x[0], x[:, 1:3], x[None], x[..., -1], x[idx], x[1, ..., None, ::2]

    gm = fx.symbolic_trace(M())
    x = torch.randn(3, 4, 5)
    return gm.code, gm(x, torch.tensor([2, 0]))


@snippet
def inplace_ops(fx):
    class M(nn.Module):
        def forward(self, x):
            y = x.clone()
            y.add_(1)
            y += 2
            y.mul_(torch.ones_like(y))
            torch.relu_(y)
            return y

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), gm(torch.randn(3))


@snippet
def cat_and_stack_lists(fx):
    class M(nn.Module):
        def forward(self, x, y):
            z = torch.cat([x, y, x * 2], dim=0)
            return torch.stack((z, z + 1)), torch.cat((x,), 0)

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), gm(torch.randn(2), torch.randn(2))


@snippet
def keyword_only_and_default_args(fx):
    class M(nn.Module):
        def forward(self, x, y=None, *, scale: float = 2.0, bias=3):
            return x * scale + bias

    gm = fx.symbolic_trace(M())
    return (
        gm.code,
        str(gm.graph),
        summary(gm.graph),
        gm(torch.ones(2)),
        gm(torch.ones(2), scale=torch.tensor(5.0)),
    )


@snippet
def varargs_and_kwargs_forward(fx):
    class M(nn.Module):
        def forward(self, *args, **kwargs):
            return args[0] + args[1], kwargs

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph)


@snippet
def control_flow_on_self_attribute(fx):
    class M(nn.Module):
        def __init__(self, use_relu):
            super().__init__()
            self.use_relu = use_relu
            self.depth = 3

        def forward(self, x):
            for _ in range(self.depth):
                x = x + 1
            if self.use_relu:
                x = torch.relu(x)
            return x

    return fx.symbolic_trace(M(True)).code, fx.symbolic_trace(M(False)).code


@snippet
def submodule_called_twice(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            return self.lin(self.lin(x)) + self.lin(x)

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), gm(torch.randn(2, 3))


@snippet
def container_modules(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3)])
            self.heads = nn.ModuleDict({"a": nn.Linear(3, 2), "b": nn.Linear(3, 1)})
            self.seq = nn.Sequential(nn.Tanh(), nn.Sequential(nn.Linear(3, 3), nn.Sigmoid()))

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            x = self.seq(x)
            return {name: head(x) for name, head in self.heads.items()}, self.layers[-1](x)

    gm = fx.symbolic_trace(M())
    names = [name for name, _ in gm.named_modules()]
    return gm.code, summary(gm.graph), names, gm(torch.randn(2, 3))


@snippet
def constants_from_factories(fx):
    class M(nn.Module):
        def forward(self, x):
            return (
                x + torch.ones(3) + x.new_zeros(x.shape[0], 3) + torch.full((1, 3), 2.0) + torch.zeros(2, 3)
            )

    gm = fx.symbolic_trace(M())
    return gm.code, gm(torch.randn(2, 3))


@snippet
def math_functions_autowrapped(fx):
    class M(nn.Module):
        def forward(self, x):
            return x / math.sqrt(x.size(-1)) + math.pi + math.floor(2.5)

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), gm(torch.randn(2, 4))


@snippet
def len_wrapped_at_module_scope(fx):
    def fn(x):
        return x * len(x) + clamp_len(x)

    gm = fx.symbolic_trace(fn)
    code = gm.code
    if is_fxkit(fx):
        # Documented difference: the wrap lines name fxkit's module.
        assert 'fxkit._symbolic_trace.wrap("len")' in code
        code = code.replace("fxkit._symbolic_trace.wrap", "torch.fx._symbolic_trace.wrap")
    return code, summary(gm.graph), gm(torch.ones(3, 2))


@snippet
def wrap_used_as_decorator(fx):
    class M(nn.Module):
        def forward(self, x):
            return decorated_scale(x, 3) + 1

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), gm(torch.ones(2))


@snippet
def tensor_constant_becomes_attribute(fx):
    class M(nn.Module):
        def forward(self, x):
            return x + torch.tensor([1.0, 2.0]) * torch.tensor(3.0)

    gm = fx.symbolic_trace(M())
    constants = sorted(name for name, _ in gm.named_buffers()) + sorted(
        name for name in dir(gm) if name.startswith("_tensor_constant")
    )
    return gm.code, summary(gm.graph), constants, gm(torch.ones(2))


@snippet
def plain_tensor_attribute(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = torch.arange(4.0)

        def forward(self, x):
            return x + self.table

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), gm(torch.ones(4))


@snippet
def dropout_train_and_eval(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            return F.dropout(self.drop(x), p=0.2, training=self.training)

    module = M()
    train_code = fx.symbolic_trace(module).code
    module.eval()
    gm = fx.symbolic_trace(module)
    return train_code, gm.code, gm(torch.ones(4))


@snippet
def tensor_attribute_methods_on_proxy(fx):
    class M(nn.Module):
        def forward(self, x):
            return x.T, x.dtype, x.device, x.float().double().to(torch.float32), x.new_zeros(2)

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph)


@snippet
def builtin_operators_on_proxies(fx):
    def fn(x, y):
        return (-x, abs(x), ~(x > 0), x // 2, x % 3, x**2, 2**x, x @ y, x < y, x != y, 1 - x, 2 / x)

    gm = fx.symbolic_trace(fn)
    x = torch.arange(1.0, 5.0).reshape(2, 2)
    return gm.code, summary(gm.graph), gm(x, x)


@snippet
def non_tensor_outputs_and_nested_structures(fx):
    def fn(x):
        return {"a": [x, (x + 1, None)], "b": 3, "c": "text"}

    gm = fx.symbolic_trace(fn)
    return gm.code, str(gm.graph), gm(torch.ones(1))


@snippet
def module_with_no_inputs_uses_getattr(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Module()
            self.inner.p = nn.Parameter(torch.ones(2))

        def forward(self):
            return self.inner.p * 2

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), gm()


# ---------------------------------------------------------------------------------------------
# custom tracers


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.fc(x)) + 1


@snippet
def tracer_is_leaf_module_trace_through_linear(fx):
    class Deep(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return False

    graph = Deep().trace(TwoLayer())
    gm = fx.GraphModule(TwoLayer(), graph)
    return summary(graph), gm.code


@snippet
def tracer_is_leaf_module_custom_leaf(fx):
    class Inner(nn.Module):
        def forward(self, x):
            return x.sum(-1)

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Inner()

        def forward(self, x):
            return self.inner(x) * 2

    class LeafInner(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return isinstance(m, Inner) or super().is_leaf_module(m, qualname)

    root = Outer()
    graph = LeafInner().trace(root)
    gm = fx.GraphModule(root, graph, class_name="OuterWithLeaf")
    return summary(graph), gm.code, type(gm).__name__, gm(torch.ones(2, 3))


@snippet
def tracer_call_module_override(fx):
    seen = []

    class Recording(fx.Tracer):
        def call_module(self, m, forward, args, kwargs):
            seen.append((self.path_of_module(m), type(m).__name__))
            return super().call_module(m, forward, args, kwargs)

    graph = Recording().trace(TwoLayer())
    return seen, summary(graph)


@snippet
def tracer_create_proxy_override_adds_meta(fx):
    class Tagging(fx.Tracer):
        def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None, *rest, **kw):
            proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, *rest, **kw)
            proxy.node.meta["tag"] = kind
            return proxy

    graph = Tagging().trace(TwoLayer())
    return [(node.name, node.meta.get("tag")) for node in graph.nodes]


@snippet
def tracer_create_node_override(fx):
    class Renaming(fx.Tracer):
        def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
            node = super().create_node(kind, target, args, kwargs, name, type_expr)
            node.meta["kind"] = kind
            return node

    graph = Renaming().trace(TwoLayer())
    return [(node.name, node.meta["kind"]) for node in graph.nodes]


@snippet
def tracer_create_arg_override(fx):
    class Scale:
        def __init__(self, value):
            self.value = value

    class M(nn.Module):
        def forward(self, x):
            return x * Scale(4)

    class ScaleAware(fx.Tracer):
        def create_arg(self, a):
            if isinstance(a, Scale):
                return a.value
            return super().create_arg(a)

    graph = ScaleAware().trace(M())
    gm = fx.GraphModule(M(), graph)
    return gm.code, gm(torch.ones(2))


@snippet
def tracer_getattr_override(fx):
    looked_up = []

    class Watching(fx.Tracer):
        def getattr(self, attr, attr_val, parameter_proxy_cache):
            looked_up.append(attr)
            return super().getattr(attr, attr_val, parameter_proxy_cache)

    graph = Watching().trace(SmallNet())
    return sorted(set(looked_up)), summary(graph)


@snippet
def trace_with_concrete_args_bool(fx):
    class M(nn.Module):
        def forward(self, x, flag):
            return x + 1 if flag else x - 1

    gm = fx.symbolic_trace(M(), concrete_args={"flag": True})
    return gm.code, summary(gm.graph), gm(torch.ones(2), True)


@snippet
def trace_with_concrete_args_none(fx):
    def fn(x, mask=None):
        if mask is None:
            return x * 2
        return x * mask

    gm = fx.symbolic_trace(fn, concrete_args={"mask": None})
    return gm.code, summary(gm.graph), gm(torch.ones(2), None)


@snippet
def tracer_trace_with_concrete_args(fx):
    def fn(x, n):
        return x.repeat(n)

    graph = fx.Tracer().trace(fn, concrete_args={"n": 2})
    gm = fx.GraphModule(torch.nn.Module(), graph)
    return gm.code, gm(torch.ones(2), 2)


@snippet
def tracer_autowrap_functions(fx):
    def fn(x):
        return plus_one_leaf(x) * 2

    tracer = fx.Tracer(autowrap_functions=(plus_one_leaf,))
    graph = tracer.trace(fn)
    gm = fx.GraphModule(tracer.root, graph)
    return summary(graph), gm(torch.ones(2))


@snippet
def tracer_autowrap_modules(fx):
    def fn(x):
        return operator.add(x, 1) + math.sqrt(x.shape[0]) + math.log(x.dim())

    default_graph = fx.Tracer().trace(fn)
    no_math_graph = fx.Tracer(autowrap_modules=()).trace(lambda x: x + math.sqrt(4))
    return summary(default_graph), summary(no_math_graph)


@snippet
def tracer_param_shapes_constant(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(3, 4))

        def forward(self, x):
            return (
                x.reshape(-1, self.weight.shape[1]) @ self.weight.t()
                + self.weight.dim()
                + self.weight.numel()
            )

    default = fx.Tracer().trace(M())
    constant = fx.Tracer(param_shapes_constant=True).trace(M())
    return summary(default), summary(constant)


@snippet
def tracer_param_shapes_constant_size_with_dim(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(3, 4))

        def forward(self, x):
            return x + self.weight.size(0) + self.weight.size()[1]

    outcome = error_of(lambda: fx.Tracer(param_shapes_constant=True).trace(M()))
    if is_fxkit(fx):
        # Difference kept: torch.fx's parameter proxy takes no `dim` argument in size(); fxkit's does.
        assert outcome is None
        graph = fx.Tracer(param_shapes_constant=True).trace(M())
        assert [node.args for node in graph.nodes if node.op == "call_function"][0][1] == 3
        return "TypeError"
    return outcome[0]


@snippet
def tracer_attributes_after_trace(fx):
    tracer = fx.Tracer()
    root = SmallNet()
    graph = tracer.trace(root)
    return (
        tracer.root is root,
        tracer.graph is graph,
        type(tracer.graph).__name__,
        tracer.path_of_module(root.linear),
    )


@snippet
def symbolic_trace_leaf_modules_standard(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.bn = nn.BatchNorm2d(2)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.flat = nn.Flatten()

        def forward(self, x):
            return self.flat(self.pool(torch.relu(self.bn(self.conv(x)))))

    gm = fx.symbolic_trace(M().eval())
    return gm.code, summary(gm.graph), gm(torch.randn(1, 1, 5, 5))


# ---------------------------------------------------------------------------------------------
# proxies


@snippet
def proxy_transform_with_graph_appending_tracer(fx):
    gm = fx.symbolic_trace(AddRelu())
    new_graph = fx.Graph()
    tracer = fx.proxy.GraphAppendingTracer(new_graph)
    env = {}
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target is torch.relu:
            proxy = fx.Proxy(env[node.args[0].name], tracer)
            env[node.name] = (proxy.sigmoid() * proxy).node
        else:
            env[node.name] = new_graph.node_copy(node, lambda n: env[n.name])
    new_gm = fx.GraphModule(gm, new_graph)
    return new_gm.code, summary(new_graph), new_gm(torch.ones(2), torch.ones(2))


@snippet
def proxy_repr_and_node(fx):
    graph = fx.Graph()
    tracer = fx.proxy.GraphAppendingTracer(graph)
    x = fx.Proxy(graph.placeholder("x"), tracer)
    y = x.relu() + x.shape[0]
    graph.output(y.node)
    return repr(x), repr(y), y.node.name, str(graph)


@snippet
def proxy_keys_and_iteration_errors(fx):
    def iterate(x):
        for _item in x:
            pass

    def boolean(x):
        if x.sum() > 0:
            return x

    def to_int(x):
        return int(x)

    outcomes = []
    for fn in (iterate, boolean, to_int):
        name, message = error_of(lambda: fx.symbolic_trace(fn))
        outcomes.append((name, message[:60]))
    return outcomes


@snippet
def proxy_unpacking_with_known_length(fx):
    def fn(x):
        a, b = x.shape[:2]
        first, second = torch.split(x, 2)
        return a * b, first, second

    gm = fx.symbolic_trace(fn)
    return gm.code, gm(torch.arange(8.0).reshape(4, 2))


@snippet
def proxy_len_is_an_error(fx):
    class M(nn.Module):
        def forward(self, x):
            return torch.zeros(len(x.size()))

    return error_of(lambda: fx.Tracer().trace(M()))


def in_fresh_module(fx: Any, source: str) -> dict[str, Any]:
    """Run ``source`` as the top level of a new module whose ``fx`` is the library under test."""
    namespace = {"__name__": "parity_fresh_module", "fx": fx, "torch": torch, "nn": nn}
    exec(compile(source, "<parity>", "exec"), namespace)
    return namespace


@snippet
def len_without_wrap_is_an_error(fx):
    namespace = in_fresh_module(fx, "def fn(x):\n    return torch.zeros(len(x))\n")
    name, message = error_of(lambda: fx.symbolic_trace(namespace["fn"]))
    return name, message[:50]


@snippet
def wrap_by_name_in_fresh_module(fx):
    source = (
        "def helper(x, n):\n    return x.sum() * n if n > 1 else x\n"
        "fx.wrap('helper')\n"
        "def fn(x):\n    return helper(x, 3) + 1\n"
    )
    namespace = in_fresh_module(fx, source)
    gm = fx.symbolic_trace(namespace["fn"])
    return gm.code, summary(gm.graph), gm(torch.ones(2)), namespace["helper"](torch.ones(2), 3)


@snippet
def wrap_not_at_module_scope_is_an_error(fx):
    def inner():
        fx.wrap("something")

    name, message = error_of(inner)
    return name


# ---------------------------------------------------------------------------------------------
# interpreters and transformers


@snippet
def interpreter_run(fx):
    gm = fx.symbolic_trace(SmallNet())
    x = torch.randn(2, 4)
    return fx.Interpreter(gm).run(x), gm(x)


@snippet
def interpreter_run_node_override(fx):
    visited = []

    class Recording(fx.Interpreter):
        def run_node(self, n):
            result = super().run_node(n)
            visited.append((n.op, n.name, tuple(result.shape) if isinstance(result, torch.Tensor) else None))
            return result

    out = Recording(fx.symbolic_trace(SmallNet())).run(torch.randn(2, 4))
    return visited, out


@snippet
def interpreter_call_function_override(fx):
    class NegateRelu(fx.Interpreter):
        def call_function(self, target, args, kwargs):
            if target is torch.relu:
                return torch.neg(*args, **kwargs)
            return super().call_function(target, args, kwargs)

    gm = fx.symbolic_trace(AddRelu())
    return NegateRelu(gm).run(torch.ones(2), torch.ones(2))


@snippet
def interpreter_call_module_and_method_override(fx):
    calls = []

    class Counting(fx.Interpreter):
        def call_module(self, target, args, kwargs):
            calls.append(("module", target))
            return super().call_module(target, args, kwargs)

        def call_method(self, target, args, kwargs):
            calls.append(("method", target))
            return super().call_method(target, args, kwargs)

        def get_attr(self, target, args, kwargs):
            calls.append(("attr", target))
            return super().get_attr(target, args, kwargs)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.scale = nn.Parameter(torch.ones(2))

        def forward(self, x):
            return self.lin(x).sum(-1, keepdim=True) * self.scale

    out = Counting(fx.symbolic_trace(M())).run(torch.ones(1, 2))
    return calls, out


@snippet
def interpreter_initial_env(fx):
    gm = fx.symbolic_trace(AddRelu())
    add_node = next(node for node in gm.graph.nodes if node.name == "add")
    return fx.Interpreter(gm).run(
        torch.ones(2), torch.ones(2), initial_env={add_node: torch.tensor([-1.0, 5.0])}
    )


@snippet
def interpreter_env_after_run(fx):
    gm = fx.symbolic_trace(AddRelu())
    kept = fx.Interpreter(gm, garbage_collect_values=False)
    kept.run(torch.ones(2), torch.ones(2))
    collected = fx.Interpreter(gm)
    collected.run(torch.ones(2), torch.ones(2))
    return sorted(node.name for node in kept.env), sorted(node.name for node in collected.env)


@snippet
def interpreter_fetch_args_and_map_nodes(fx):
    class Peeking(fx.Interpreter):
        seen = []

        def run_node(self, n):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            self.seen.append((n.name, len(args), sorted(kwargs)))
            return super().run_node(n)

    Peeking.seen = []
    interpreter = Peeking(fx.symbolic_trace(SmallNet()))
    interpreter.run(torch.ones(1, 4))
    return Peeking.seen


@snippet
def interpreter_wrong_argument_count(fx):
    gm = fx.symbolic_trace(AddRelu())
    name, message = error_of(lambda: fx.Interpreter(gm).run(torch.ones(2)))
    return name


@snippet
def transformer_replaces_call_function(fx):
    class ReluToGelu(fx.Transformer):
        def call_function(self, target, args, kwargs):
            if target is torch.relu:
                return super().call_function(F.gelu, args, kwargs)
            return super().call_function(target, args, kwargs)

    new_gm = ReluToGelu(fx.symbolic_trace(AddRelu())).transform()
    return (
        new_gm.code,
        summary(new_gm.graph),
        new_gm(torch.ones(2), -torch.ones(2) * 0.5),
        type(new_gm).__name__,
    )


@snippet
def transformer_placeholder_and_get_attr_overrides(fx):
    class Rewriting(fx.Transformer):
        def placeholder(self, target, args, kwargs):
            proxy = super().placeholder(target, args, kwargs)
            return proxy * 10

        def get_attr(self, target, args, kwargs):
            proxy = super().get_attr(target, args, kwargs)
            return proxy + 1

    new_gm = Rewriting(fx.symbolic_trace(SmallNet())).transform()
    return new_gm.code, summary(new_gm.graph), new_gm(torch.ones(1, 4))


@snippet
def transformer_with_proxy_arithmetic_in_call_module(fx):
    class Doubling(fx.Transformer):
        def call_module(self, target, args, kwargs):
            return super().call_module(target, args, kwargs) * 2

    new_gm = Doubling(fx.symbolic_trace(TwoLayer())).transform()
    return new_gm.code, new_gm(torch.ones(1, 3))


# ---------------------------------------------------------------------------------------------
# graph surgery


@snippet
def inserting_before_and_after(fx):
    gm = fx.symbolic_trace(AddRelu())
    graph = gm.graph
    relu = next(node for node in graph.nodes if node.target is torch.relu)
    with graph.inserting_before(relu):
        doubled = graph.call_function(torch.mul, (relu.args[0], 2))
    relu.replace_input_with(relu.args[0], doubled)
    with graph.inserting_after(relu):
        negated = graph.call_function(torch.neg, (relu,))
    relu.replace_all_uses_with(negated, delete_user_cb=lambda user: user is not negated)
    gm.recompile()
    return gm.code, summary(graph), gm(torch.ones(2), torch.ones(2))


@snippet
def replace_all_uses_with_returns_users(fx):
    gm = fx.symbolic_trace(lambda x: (x + 1) * (x + 1) + x)
    graph = gm.graph
    x = next(iter(graph.nodes))
    with graph.inserting_after(x):
        y = graph.call_function(torch.abs, (x,))
    replaced = x.replace_all_uses_with(y, delete_user_cb=lambda user: user is not y)
    gm.recompile()
    return [node.name for node in replaced], gm.code, [user.name for user in y.users]


@snippet
def node_copy_into_new_graph(fx):
    gm = fx.symbolic_trace(SmallNet())
    new_graph = fx.Graph()
    env = {}
    for node in gm.graph.nodes:
        env[node] = new_graph.node_copy(node, lambda n: env[n])
    return str(new_graph), summary(new_graph)


@snippet
def graph_copy_with_val_map(fx):
    gm = fx.symbolic_trace(AddRelu())
    new_graph = fx.Graph()
    a = new_graph.placeholder("a")
    b = new_graph.placeholder("b")
    old_placeholders = [node for node in gm.graph.nodes if node.op == "placeholder"]
    val_map = {old_placeholders[0]: a, old_placeholders[1]: b}
    returned = new_graph.graph_copy(gm.graph, val_map)
    new_graph.output(new_graph.call_function(torch.neg, (returned,)))
    new_gm = fx.GraphModule(gm, new_graph)
    return (
        repr(returned),
        sorted(node.name for node in val_map),
        new_gm.code,
        new_gm(torch.ones(2), torch.ones(2)),
    )


@snippet
def graph_copy_return_output_node(fx):
    gm = fx.symbolic_trace(AddRelu())
    new_graph = fx.Graph()
    val_map = {}
    output_value = new_graph.graph_copy(gm.graph, val_map, return_output_node=True)
    return repr(output_value), len(val_map)


@snippet
def erase_node_and_erase_with_users(fx):
    gm = fx.symbolic_trace(lambda x: torch.relu(x).neg() + x)
    graph = gm.graph
    relu = next(node for node in graph.nodes if node.target is torch.relu)
    failure = error_of(lambda: graph.erase_node(relu))
    neg = next(iter(relu.users))
    neg.replace_all_uses_with(relu)
    graph.erase_node(neg)
    gm.recompile()
    return failure[0], "users" in failure[1], gm.code, gm(torch.tensor([-1.0, 2.0]))


@snippet
def eliminate_dead_code(fx):
    def fn(x):
        unused = x * 3
        torch.manual_seed(0)
        also_unused = unused + 1
        return x + 1

    gm = fx.symbolic_trace(fn)
    changed = gm.graph.eliminate_dead_code()
    gm.recompile()
    return changed, gm.code


@snippet
def eliminate_dead_code_custom_impure(fx):
    def fn(x):
        kept = x * 3
        dropped = x - 1
        return x + 1

    gm = fx.symbolic_trace(fn)
    changed = gm.graph.eliminate_dead_code(is_impure_node=lambda node: node.name == "mul")
    gm.recompile()
    return changed, gm.code


@snippet
def find_nodes_queries(fx):
    gm = fx.symbolic_trace(SmallNet())
    graph = gm.graph
    return (
        [n.name for n in graph.find_nodes(op="placeholder")],
        [n.name for n in graph.find_nodes(op="call_function", target=operator.mul)],
        [n.name for n in graph.find_nodes(op="get_attr")],
        [n.name for n in graph.find_nodes(op="call_module", target="linear")],
        [n.name for n in graph.find_nodes(op="call_function", target=torch.relu)],
    )


@snippet
def create_node_with_explicit_names(fx):
    graph = fx.Graph()
    x = graph.create_node("placeholder", "x")
    first = graph.create_node("call_function", torch.add, (x, 1), name="step")
    second = graph.create_node("call_function", torch.add, (first, 1), name="step")
    third = graph.create_node("call_method", "mul", (second, 2), {}, name="foo_1")
    fourth = graph.create_node("call_method", "mul", (third, 2), {}, name="foo")
    fifth = graph.call_function(operator.add, (fourth, 1))
    graph.create_node("output", "output", (fifth,))
    return summary(graph), graph.python_code("self").src


@snippet
def output_node_and_graph_navigation(fx):
    gm = fx.symbolic_trace(AddRelu())
    graph = gm.graph
    out = graph.output_node()
    nodes = list(graph.nodes)
    return (
        out.name,
        out.op,
        repr(out.args),
        out.prev.name,
        nodes[0].next.name,
        len(graph.nodes),
        [n.name for n in reversed(graph.nodes)],
        [n.name for n in nodes[2].all_input_nodes],
        list(nodes[0].users) == [nodes[2]],
        repr(nodes[2]),
        nodes[2].format_node(),
        out.format_node(),
    )


@snippet
def graph_deepcopy(fx):
    gm = fx.symbolic_trace(SmallNet())
    copied = copy.deepcopy(gm.graph)
    original_nodes = set(gm.graph.nodes)
    return (
        str(copied),
        summary(copied),
        any(node in original_nodes for node in copied.nodes),
        copied.owning_module is None,
    )


@snippet
def node_argument_editing(fx):
    gm = fx.symbolic_trace(lambda x, y: torch.add(x, y, alpha=2))
    graph = gm.graph
    x, y, add, _ = graph.nodes
    add.update_arg(1, x)
    add.update_kwarg("alpha", 3)
    add.args = (y, x)
    add.kwargs = {"alpha": 4}
    gm.recompile()
    return (
        gm.code,
        [user.name for user in x.users],
        [user.name for user in y.users],
        gm(torch.ones(1), torch.ones(1)),
    )


@snippet
def node_append_prepend(fx):
    gm = fx.symbolic_trace(lambda x: (x + 1, x * 2, x - 3))
    graph = gm.graph
    add, mul, sub = [node for node in graph.nodes if node.op == "call_function"]
    sub.prepend(mul)
    add.append(sub)
    gm.recompile()
    return gm.code, [n.name for n in graph.nodes]


@snippet
def manual_graph_with_all_ops(fx):
    root = nn.Module()
    root.lin = nn.Linear(2, 2)
    root.register_buffer("bias", torch.ones(2))
    graph = fx.Graph()
    x = graph.placeholder("x", type_expr=torch.Tensor)
    scale = graph.placeholder("scale", default_value=2.0)
    h = graph.call_module("lin", (x,))
    b = graph.get_attr("bias")
    s = graph.call_method("sum", (h,), {"dim": -1, "keepdim": True})
    out = graph.call_function(operator.mul, (graph.call_function(operator.add, (s, b)), scale))
    graph.output(out, type_expr=torch.Tensor)
    gm = fx.GraphModule(root, graph)
    graph.lint()
    return gm.code, str(graph), gm(torch.ones(1, 2)), gm(torch.ones(1, 2), 3.0)


@snippet
def node_names_colliding_with_builtins_and_keywords(fx):
    graph = fx.Graph()
    x = graph.placeholder("input")
    a = graph.call_function(operator.add, (x, 1), name="list")
    b = graph.call_function(operator.add, (a, 1), name="for")
    c = graph.call_function(operator.add, (b, 1), name="torch")
    d = graph.create_node("call_method", "view", (c, -1), name="x.y")
    graph.output(d)
    return [n.name for n in graph.nodes], graph.python_code("self").src


@snippet
def reserved_self_name_is_renamed(fx):
    graph = fx.Graph()
    x = graph.placeholder("x")
    node = graph.call_function(operator.add, (x, 1), name="self")
    graph.output(node)
    if is_fxkit(fx):
        # Documented difference: a node never takes the name `self`.
        assert node.name != "self"
        return "self"
    return node.name


@snippet
def lint_detects_use_before_definition(fx):
    graph = fx.Graph()
    x = graph.placeholder("x")
    a = graph.call_function(operator.add, (x, 1))
    b = graph.call_function(operator.mul, (a, 2))
    graph.output(b)
    a.args = (b, 1)
    return error_type_of(graph.lint)


@snippet
def graph_python_code_and_on_generate_code(fx):
    graph = fx.symbolic_trace(AddRelu()).graph
    code = graph.python_code(root_module="self")
    return code.src, sorted(code.globals), type(code).__name__


@snippet
def is_impure_and_side_effects(fx):
    def fn(x):
        x.add_(1)
        torch.manual_seed(3)
        return x.neg()

    gm = fx.symbolic_trace(fn)
    return [(node.name, node.is_impure()) for node in gm.graph.nodes]


@snippet
def map_arg_and_map_aggregate(fx):
    gm = fx.symbolic_trace(lambda x, y: torch.cat([x, y]) + y)
    cat = next(node for node in gm.graph.nodes if node.target is torch.cat)
    names = fx.node.map_arg(cat.args, lambda n: n.name)
    doubled = fx.node.map_aggregate({"a": (1, [2, 3]), "b": 4}, lambda v: v * 2)
    return names, doubled, type(fx.map_arg(cat.args, lambda n: n.name)[0]).__name__


# ---------------------------------------------------------------------------------------------
# GraphModule


@snippet
def graph_module_class_name_and_str(fx):
    gm = fx.symbolic_trace(SmallNet())
    named = fx.GraphModule(gm, gm.graph, class_name="MyNet")
    return type(named).__name__, str(named), type(gm).__name__, str(gm), named.graph.owning_module is named


@snippet
def graph_module_from_dict_root(fx):
    graph = fx.Graph()
    x = graph.placeholder("x")
    h = graph.call_module("encoder.proj", (x,))
    w = graph.get_attr("scale")
    graph.output(graph.call_function(torch.mul, (h, w)))
    root = {"encoder.proj": nn.Linear(2, 3), "scale": nn.Parameter(torch.full((3,), 2.0))}
    gm = fx.GraphModule(root, graph)
    return (
        gm.code,
        [name for name, _ in gm.named_modules()],
        [name for name, _ in gm.named_parameters()],
        list(gm.state_dict()),
        gm(torch.ones(1, 2)),
    )


@snippet
def graph_module_missing_attribute_in_root(fx):
    graph = fx.Graph()
    x = graph.placeholder("x")
    graph.output(graph.call_module("missing", (x,)))
    return error_type_of(lambda: fx.GraphModule(nn.Module(), graph))


@snippet
def add_submodule_then_call_module(fx):
    gm = fx.symbolic_trace(AddRelu())
    added = gm.add_submodule("extra.scale", nn.Linear(2, 2, bias=False))
    nn.init.ones_(gm.get_submodule("extra.scale").weight)
    out = gm.graph.output_node()
    with gm.graph.inserting_before(out):
        scaled = gm.graph.call_module("extra.scale", (out.args[0],))
    out.args = (scaled,)
    gm.recompile()
    return (
        added,
        gm.code,
        summary(gm.graph),
        gm(torch.ones(2), torch.ones(2)),
        [n for n, _ in gm.named_modules()],
    )


@snippet
def delete_submodule_and_unused(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 2)
            self.b = nn.Sequential(nn.Linear(2, 2), nn.ReLU())

        def forward(self, x):
            return self.b(self.a(x))

    gm = fx.symbolic_trace(M())
    missing = gm.delete_submodule("nope")
    gm.add_submodule("unused.deep", nn.Linear(1, 1))
    names_before = [n for n, _ in gm.named_modules()]
    gm.delete_all_unused_submodules()
    names_after = [n for n, _ in gm.named_modules()]
    deleted = gm.delete_submodule("a")
    return missing, names_before, names_after, deleted, [n for n, _ in gm.named_modules()]


@snippet
def recompile_after_edit_returns_python_code(fx):
    gm = fx.symbolic_trace(AddRelu())
    for node in gm.graph.nodes:
        if node.target is torch.relu:
            node.target = torch.sigmoid
    result = gm.recompile()
    return (
        isinstance(result, fx.graph.PythonCode),
        result.src == gm.code,
        gm.code,
        gm(torch.zeros(2), torch.zeros(2)),
    )


@snippet
def print_readable_text(fx):
    class Inner(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return self.lin(x)

    inner_gm = fx.symbolic_trace(Inner())

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.sub = inner_gm

        def forward(self, x):
            return torch.relu(x)

    outer = fx.symbolic_trace(SmallNet())
    outer.add_submodule("nested", inner_gm)
    return outer.print_readable(print_output=False), inner_gm.print_readable(False)


@snippet
def print_readable_after_shape_prop(fx):
    gm = fx.symbolic_trace(SmallNet())
    fx.passes.shape_prop.ShapeProp(gm).propagate(torch.randn(2, 4))
    return gm.print_readable(print_output=False)


@snippet
def named_members_of_traced_module(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
            self.unused = nn.Linear(5, 5)
            self.register_buffer("steps", torch.zeros(1))

        def forward(self, x):
            return self.block(x) + self.steps

    gm = fx.symbolic_trace(M())
    return (
        [n for n, _ in gm.named_modules()],
        [n for n, _ in gm.named_parameters()],
        [n for n, _ in gm.named_buffers()],
        list(gm.state_dict()),
        [n for n, _ in gm.named_children()],
    )


@snippet
def nested_graph_module_is_traced_through(fx):
    inner = fx.symbolic_trace(TwoLayer())

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x) - 1

    gm = fx.symbolic_trace(Outer())
    return gm.code, summary(gm.graph), gm(torch.ones(1, 3))


def copied_class_name(fx: Any, original: Any, copied: Any) -> str:
    """torch.fx names every copied or unpickled GraphModule class "GraphModule"; fxkit keeps the name."""
    if is_fxkit(fx):
        assert type(copied).__name__ == type(original).__name__
        return "GraphModule"
    return type(copied).__name__


@snippet
def graph_module_deepcopy(fx):
    gm = fx.symbolic_trace(lambda x: x + torch.tensor([1.0, 2.0]))
    copied = copy.deepcopy(gm)
    same_graph = copied.graph is gm.graph
    return (
        copied.code,
        same_graph,
        copied(torch.ones(2)),
        copied_class_name(fx, gm, copied),
        hasattr(copied, "_tensor_constant0"),
        copied_class_name(fx, gm, copy.copy(gm)),
    )


@snippet
def graph_module_pickle_round_trip(fx):
    gm = fx.symbolic_trace(SmallNet())
    restored = pickle.loads(pickle.dumps(gm))
    x = torch.randn(2, 4)
    return restored.code, summary(restored.graph), restored(x), gm(x), copied_class_name(fx, gm, restored)


@snippet
def graph_module_graph_setter(fx):
    gm = fx.symbolic_trace(AddRelu())
    graph = fx.Graph()
    a = graph.placeholder("a")
    graph.output(graph.call_function(torch.neg, (a,)))
    gm.graph = graph
    return gm.code, gm(torch.ones(2)), graph.owning_module is gm


@snippet
def graph_module_nested_get_attr_targets(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Module()
            self.enc.layer = nn.Linear(2, 2)
            self.enc.register_buffer("running", torch.ones(2))

        def forward(self, x):
            return x @ self.enc.layer.weight + self.enc.running

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), [n for n, _ in gm.named_modules()], list(gm.state_dict())


@snippet
def graph_module_forward_signature_and_meta(fx):
    import inspect

    gm = fx.symbolic_trace(lambda x, y=3: x + y)
    return str(inspect.signature(gm.forward)), isinstance(gm.meta, dict), gm(torch.ones(1))


@snippet
def graph_module_load_state_dict_and_modes(fx):
    source = SmallNet()
    gm = fx.symbolic_trace(source)
    other = fx.symbolic_trace(SmallNet())
    other.load_state_dict(gm.state_dict())
    x = torch.randn(2, 4)
    other.eval()
    return other(x), gm(x), other.training, gm.training


@snippet
def retrace_a_graph_module(fx):
    gm = fx.symbolic_trace(SmallNet())
    again = fx.symbolic_trace(gm)
    return again.code, summary(again.graph)


@snippet
def trace_sequential_directly(fx):
    gm = fx.symbolic_trace(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Sequential(nn.Linear(2, 1))))
    return gm.code, summary(gm.graph), gm(torch.ones(1, 2))


# ---------------------------------------------------------------------------------------------
# code generation details


@snippet
def annotations_in_generated_code(fx):
    from typing import List, Optional, Tuple

    class M(nn.Module):
        def forward(
            self, x: torch.Tensor, sizes: List[int], flag: Optional[bool] = None
        ) -> Tuple[torch.Tensor, int]:
            return x.view(sizes), 1

    gm = fx.symbolic_trace(M())
    return gm.code, str(gm.graph), [repr(node.type) for node in gm.graph.nodes]


@snippet
def special_constants_in_generated_code(fx):
    def fn(x):
        y = x.masked_fill(x > 0, float("-inf")) + float("nan")
        z = x.to(dtype=torch.float16, device=torch.device("cpu"))
        return y, z, torch.clamp(x, min=-math.inf), (slice(1, None), ...), 1e-12, complex(1, 2)

    gm = fx.symbolic_trace(fn)
    return gm.code, str(gm.graph)


@snippet
def unbound_tensor_methods_and_torch_functions(fx):
    def fn(x):
        return torch.where(x > 0, x, 0.0), F.interpolate(x[None, None], scale_factor=2.0)

    gm = fx.symbolic_trace(fn)
    unbound_method = error_of(lambda: fx.symbolic_trace(lambda x: torch.Tensor.add(x, 1)))
    return gm.code, summary(gm.graph), gm(torch.arange(4.0).reshape(2, 2))[:2], unbound_method


@snippet
def shape_comparisons_and_size_arithmetic(fx):
    def fn(x):
        n = x.shape[0] * x.shape[1]
        same = x.shape[0] == 2
        return x.reshape(n), same, x.numel(), x.size(-1) // 2

    gm = fx.symbolic_trace(fn)
    return gm.code, summary(gm.graph), gm(torch.ones(2, 3))


@snippet
def leaf_module_called_with_kwargs(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(4, 2, batch_first=True)

        def forward(self, x):
            out, _ = self.attn(x, x, x, need_weights=False)
            return out

    gm = fx.symbolic_trace(M().eval())
    x = torch.randn(1, 3, 4)
    return gm.code, summary(gm.graph)


@snippet
def submodule_paths_with_digits(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(2, 2), nn.ReLU()) for _ in range(2)])

        def forward(self, x):
            for block in self.blocks:
                x = block(x) + block[0].bias
            return x

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph)


@snippet
def node_meta_from_tracing(fx):
    gm = fx.symbolic_trace(TwoLayer())
    rows = []
    for node in gm.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        rows.append(
            (node.name, sorted(node.meta), None if stack is None else {k: v for k, v in stack.items()})
        )
    return rows


@snippet
def record_stack_traces(fx):
    tracer = fx.Tracer()
    tracer.record_stack_traces = True
    graph = tracer.trace(TwoLayer())
    traces = [(node.name, node.stack_trace is not None) for node in graph.nodes]
    relu = next(node for node in graph.nodes if node.name == "act")
    return traces, "forward" in relu.stack_trace, "return self.act(self.fc(x)) + 1" in relu.stack_trace


# ---------------------------------------------------------------------------------------------
# passes


@snippet
def shape_prop_tensor_meta(fx):
    gm = fx.symbolic_trace(SmallNet())
    fx.passes.shape_prop.ShapeProp(gm).propagate(torch.randn(2, 4))
    rows = []
    for node in gm.graph.nodes:
        meta = node.meta.get("tensor_meta")
        if meta is None:
            rows.append((node.name, None))
            continue
        rows.append(
            (
                node.name,
                tuple(meta.shape),
                str(meta.dtype),
                meta.requires_grad,
                meta.stride,
                str(meta.memory_format),
                meta.is_quantized,
                type(meta).__name__,
                node.meta["type"].__name__,
            )
        )
    return rows


@snippet
def shape_prop_on_nested_outputs(fx):
    gm = fx.symbolic_trace(lambda x: (x.chunk(2), {"s": x.sum()}))
    fx.passes.shape_prop.ShapeProp(gm).propagate(torch.randn(4, 2))
    chunk = next(node for node in gm.graph.nodes if node.name == "chunk")
    meta = chunk.meta["tensor_meta"]
    return type(meta).__name__, [tuple(m.shape) for m in meta], chunk.meta["type"].__name__


@snippet
def split_module_partitions(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.param = nn.Parameter(torch.randn(4))

        def forward(self, x, y):
            z = self.lin(x + self.param)
            w = torch.relu(z) + y
            return w.sum(), z

    root = M()
    gm = fx.symbolic_trace(root)
    partition_of = {}
    for index, node in enumerate(gm.graph.nodes):
        partition_of[node.name] = min(index // 3, 2)
    split = fx.passes.split_module.split_module(gm, root, lambda node: partition_of[node.name])
    x, y = torch.randn(2, 4), torch.randn(2, 4)
    return (
        split.code,
        [(name, type(m).__name__) for name, m in split.named_children()],
        [split.get_submodule(name).code for name, _ in split.named_children()],
        split(x, y),
        gm(x, y),
    )


@snippet
def split_module_keep_original_order(fx):
    gm = fx.symbolic_trace(lambda x: (x + 1).relu() * 2 - x.neg())
    parts = {"add": 0, "relu": 1, "mul": 1, "neg": 0, "sub": 2}
    split = fx.passes.split_module.split_module(
        gm, None, lambda node: parts[node.name], keep_original_order=True
    )
    cyclic = {"add": 0, "relu": 1, "mul": 0, "neg": 1, "sub": 0}
    name, message = error_of(
        lambda: fx.passes.split_module.split_module(gm, None, lambda node: cyclic[node.name])
    )
    return (
        split.code,
        [split.get_submodule(name).code for name, _ in split.named_children()],
        split(torch.ones(2)),
        name,
        message[:32],
    )


@snippet
def replace_pattern_return_values(fx):
    def pattern(x, y):
        return torch.relu(torch.add(x, y))

    def replacement(x, y):
        return torch.sigmoid(torch.sub(x, y))

    class M(nn.Module):
        def forward(self, a, b):
            c = torch.relu(torch.add(a, b))
            d = torch.relu(torch.add(c, a))
            return torch.relu(torch.add(d, 1)) + d

    gm = fx.symbolic_trace(M())
    matches = fx.subgraph_rewriter.replace_pattern(gm, pattern, replacement)
    rows = [
        (
            match.anchor.name,
            sorted((k.name, str(v)) for k, v in match.nodes_map.items()),
            type(match).__name__,
        )
        for match in matches
    ]
    return rows, gm.code, gm(torch.ones(2), torch.ones(2))


@snippet
def replace_pattern_with_filters_and_replacements(fx):
    def pattern(x):
        return x.neg()

    def replacement(x):
        return x * -1

    def only_first(match, original_graph, pattern_graph):
        return any(node.name == "neg" for node in match.nodes_map.values())

    gm = fx.symbolic_trace(lambda x: x.neg().neg() + 1)
    results = fx.subgraph_rewriter.replace_pattern_with_filters(
        gm, pattern, replacement, match_filters=[only_first]
    )
    return (
        [(r.anchor.name, [n.name for n in r.replacements], type(r).__name__) for r in results],
        gm.code,
    )


@snippet
def const_fold_split_const_subgraphs(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(3))

        def forward(self, x):
            folded = self.w * 2 + torch.ones(3)
            return x + folded

    folded = fx.experimental.const_fold.split_const_subgraphs(M())
    folded.run_folding()
    return folded.code, type(folded).__name__, folded(torch.zeros(3))


@snippet
def optimization_fuse_conv_bn(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 3)
            self.bn = nn.BatchNorm2d(3)

        def forward(self, x):
            return torch.relu(self.bn(self.conv(x)))

    module = M().eval()
    module.bn.running_mean.uniform_()
    fused = fx.experimental.optimization.fuse(module)
    x = torch.randn(1, 2, 5, 5)
    return fused.code, [n for n, _ in fused.named_modules()], fused(x), module(x)


# ---------------------------------------------------------------------------------------------
# errors


@snippet
def trace_error_on_assert_and_range(fx):
    def asserting(x):
        assert x.dim() == 2
        return x

    def ranging(x):
        return [x[i] for i in range(x.size(0))]

    first = error_of(lambda: fx.symbolic_trace(asserting))
    second = error_of(lambda: fx.symbolic_trace(ranging))
    return first[0], first[1][:60], second[0]


@snippet
def trace_error_class_and_hierarchy(fx):
    error_class = fx.proxy.TraceError
    return error_class.__name__, [c.__name__ for c in error_class.__mro__]


@snippet
def calling_graph_module_with_wrong_arguments(fx):
    gm = fx.symbolic_trace(AddRelu())
    too_few = error_of(lambda: gm(torch.ones(1)))
    too_many = error_of(lambda: gm(torch.ones(1), torch.ones(1), torch.ones(1)))
    return too_few[0], "missing 1 required positional argument: 'y'" in too_few[1], too_many[0]


@snippet
def concrete_args_with_unknown_name(fx):
    outcome = error_type_of(lambda: fx.symbolic_trace(lambda x: x, concrete_args={"nope": 1}))
    if is_fxkit(fx):
        # Difference kept: fxkit rejects a concrete_args name the function does not take; torch.fx ignores it.
        assert outcome == "TraceError"
        return None
    return outcome


@snippet
def get_submodule_missing(fx):
    gm = fx.symbolic_trace(TwoLayer())
    return error_type_of(lambda: gm.get_submodule("fc.nope")), error_type_of(
        lambda: gm.get_parameter("fc.nope")
    )


@snippet
def erase_node_of_other_graph_and_missing_output(fx):
    first = fx.symbolic_trace(AddRelu()).graph
    second = fx.symbolic_trace(AddRelu()).graph
    foreign = next(node for node in first.nodes if node.op == "output")
    graph = fx.Graph()
    graph.placeholder("x")
    no_output = error_type_of(lambda: graph.output_node())
    if is_fxkit(fx):
        # Difference kept: torch.fx asserts (AssertionError); fxkit raises RuntimeError saying how to fix it.
        assert no_output == "RuntimeError"
        no_output = "AssertionError"
    return error_type_of(lambda: second.erase_node(foreign)), no_output


# ---------------------------------------------------------------------------------------------
# more tracing corners


@snippet
def unpacking_sizes_and_leaf_outputs(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(3, 4, batch_first=True)

        def forward(self, x):
            b, t, f = x.size()
            out, (h, c) = self.lstm(x)
            return out.reshape(b * t, -1), h, c

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph)


@snippet
def star_unpacking_a_proxy_in_a_call(fx):
    def fn(x):
        return x.view(*x.shape[:1], -1)

    return error_of(lambda: fx.symbolic_trace(fn))[0]


@snippet(raises=(TypeError, "'Proxy' object does not support item assignment"))
def setitem_on_proxy(fx):
    def fn(x):
        y = x.clone()
        y[0] = 5.0
        y[:, 1] = y[:, 0]
        return y

    gm = fx.symbolic_trace(fn)
    return gm.code, summary(gm.graph), gm(torch.zeros(2, 2))


@snippet
def boolean_dispatch_functional(fx):
    class M(nn.Module):
        def forward(self, x):
            pooled, indices = F.max_pool2d(x, 2, return_indices=True)
            return F.max_pool2d(x, 2) + pooled, indices, F.pad(x, (1, 1)), F.adaptive_avg_pool2d(x, 1)

    gm = fx.symbolic_trace(M())
    return gm.code, gm(torch.randn(1, 1, 4, 4))


@snippet
def no_grad_block_inside_forward(fx):
    class M(nn.Module):
        def forward(self, x):
            with torch.no_grad():
                y = x * 2
            return y + 1

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph)


@snippet
def torch_factories_with_proxy_sizes(fx):
    def arange(x):
        return torch.arange(x.shape[0])

    def zeros(x):
        return torch.zeros(x.shape[0], 2)

    def full_like(x):
        return torch.full_like(x, 3), torch.empty_like(x).shape

    outcomes = []
    for fn in (arange, zeros, full_like):
        outcome = error_of(lambda: fx.symbolic_trace(fn))
        outcomes.append(outcome[0] if outcome else fx.symbolic_trace(fn).code)
    return outcomes


@snippet
def super_forward_and_inheritance(fx):
    class Base(nn.Module):
        def forward(self, x):
            return x + 1

    class Child(Base):
        def forward(self, x):
            return super().forward(x) * 2

    gm = fx.symbolic_trace(Child())
    return gm.code, gm(torch.ones(1))


@snippet
def wrapped_function_with_nested_proxy_args(fx):
    source = (
        "def combine(parts, scale=1):\n    return sum(parts) * scale\n"
        "fx.wrap('combine')\n"
        "def fn(x, y):\n    return combine([x, (y + 1)], scale=x.shape[0])\n"
    )
    namespace = in_fresh_module(fx, source)
    gm = fx.symbolic_trace(namespace["fn"])
    return summary(gm.graph), gm(torch.ones(2), torch.ones(2))


@snippet
def parameter_names_shadowing_globals(fx):
    def fn(inf, nan, device, list, math):
        return inf + nan + device + list + math

    gm = fx.symbolic_trace(fn)
    ones = [torch.ones(1)] * 5
    return gm.code, gm(*ones)


@snippet
def module_dict_keys_that_are_not_identifiers(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = nn.ModuleDict({"0": nn.Linear(2, 2), "a-b": nn.ReLU(), "x y": nn.Tanh()})
            self.a_b = nn.Identity()

        def forward(self, x):
            return self.heads["a-b"](self.heads["0"](x)) + self.heads["x y"](x) + self.a_b(x)

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), gm(torch.ones(1, 2))


@snippet
def module_dict_key_that_is_a_keyword(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = nn.ModuleDict({"class": nn.ReLU()})

        def forward(self, x):
            return self.heads["class"](x)

    outcome = error_of(lambda: fx.symbolic_trace(M()))
    if is_fxkit(fx):
        # Documented difference: torch.fx writes `self.heads.class` (a SyntaxError); fxkit uses getattr.
        assert outcome is None
        assert 'getattr(self.heads, "class")(x)' in fx.symbolic_trace(M()).code
        return "SyntaxError"
    return outcome[0]


@snippet
def custom_proxy_class_via_tracer_proxy(fx):
    class TensorProxy(fx.Proxy):
        def double(self):
            return self * 2

    class ProxyTracer(fx.Tracer):
        def proxy(self, node):
            return TensorProxy(node, self)

    def fn(x):
        return x.double() + 1

    graph = ProxyTracer().trace(fn)
    return summary(graph)


@snippet
def proxy_attribute_chains(fx):
    def fn(x):
        return x.real.abs(), x.grad, x.data.shape[0], x.T.T

    gm = fx.symbolic_trace(fn)
    return gm.code, summary(gm.graph)


@snippet
def graph_iteration_while_erasing_and_inserting(fx):
    gm = fx.symbolic_trace(lambda x: ((x + 1).relu() + 2).relu())
    graph = gm.graph
    visited = []
    for node in graph.nodes:
        visited.append(node.name)
        if node.op == "call_method" and node.target == "relu":
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
        elif node.op == "call_function" and node.name == "add":
            with graph.inserting_after(node):
                extra = graph.call_function(torch.neg, (node,))
                node.replace_all_uses_with(extra, delete_user_cb=lambda user: user is not extra)
    gm.recompile()
    return visited, gm.code


@snippet
def inserting_before_none_and_after_none(fx):
    graph = fx.Graph()
    x = graph.placeholder("x")
    graph.output(x)
    with graph.inserting_before(None):
        first = graph.call_function(torch.zeros, (2,))
    with graph.inserting_after(None):
        second = graph.call_function(torch.ones, (2,))
    return [node.name for node in graph.nodes]


@snippet
def node_copy_keeps_meta_and_type(fx):
    graph = fx.Graph()
    x = graph.placeholder("x", type_expr=torch.Tensor)
    y = graph.call_function(torch.relu, (x,), type_expr=torch.Tensor)
    y.meta["custom"] = {"a": 1}
    graph.output(y)
    other = fx.Graph()
    env = {}
    for node in graph.nodes:
        env[node] = other.node_copy(node, lambda n: env[n])
    copied = env[y]
    return (
        copied.meta,
        copied.meta is y.meta,
        copied.meta["custom"] is y.meta["custom"],
        repr(copied.type),
        copied.name,
    )


@snippet
def get_attr_warning_for_missing_reference(fx):
    import warnings

    gm = fx.symbolic_trace(AddRelu())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gm.graph.inserting_before(gm.graph.output_node()):
            gm.graph.get_attr("not_there")
            gm.graph.get_attr("linear_not_there.weight")
    # torch.fx adds a second "Failed to fetch module" warning for the dotted path; the first is common.
    return type(caught[0].message).__name__, len(caught) >= 2


@snippet
def interpreter_boxed_run_and_no_io_processing(fx):
    gm = fx.symbolic_trace(AddRelu())
    arguments = [torch.ones(2), torch.ones(2)]
    boxed = fx.Interpreter(gm).boxed_run(arguments)
    plain = fx.Interpreter(gm).run(torch.ones(2), torch.ones(2), enable_io_processing=False)
    return boxed, arguments, plain


@snippet
def interpreter_attributes(fx):
    gm = fx.symbolic_trace(TwoLayer())
    interpreter = fx.Interpreter(gm)
    return (
        interpreter.module is gm,
        sorted(interpreter.submodules),
        interpreter.garbage_collect_values,
        interpreter.graph is gm.graph,
        interpreter.extra_traceback,
    )


@snippet
def transformer_keeps_submodules_and_names(fx):
    gm = fx.symbolic_trace(SmallNet())
    new_gm = fx.Transformer(gm).transform()
    return (
        new_gm.code,
        [n for n, _ in new_gm.named_modules()],
        sorted(new_gm.state_dict()),
        [n.name for n in new_gm.graph.nodes],
        type(new_gm).__name__,
    )


@snippet
def transformer_meta_propagation(fx):
    gm = fx.symbolic_trace(AddRelu())
    for node in gm.graph.nodes:
        node.meta["stack_trace"] = f"trace of {node.name}"
        node.meta["custom"] = node.name
        node.meta["other"] = 1
    new_gm = fx.Transformer(gm).transform()
    # torch.fx also records its own provenance entries ("from_node", "seq_nr"); fxkit has no such entries.
    return [
        (
            n.name,
            sorted(set(n.meta) - {"from_node", "seq_nr"}),
            n.meta.get("stack_trace"),
            n.meta.get("custom"),
        )
        for n in new_gm.graph.nodes
    ]


@snippet
def output_of_dict_and_list(fx):
    graph = fx.Graph()
    x = graph.placeholder("x")
    y = graph.call_function(torch.neg, (x,))
    graph.output({"y": y, "both": [x, y], "nothing": None})
    gm = fx.GraphModule(nn.Module(), graph)
    return gm.code, gm(torch.ones(1))


@snippet
def split_module_with_qualname_map(fx):
    root = TwoLayer()
    gm = fx.symbolic_trace(root)
    qualname_map = {}
    split = fx.passes.split_module.split_module(
        gm, root, lambda node: 0 if node.name in ("fc", "x") else 1, qualname_map=qualname_map
    )
    return qualname_map, split.code, [n for n, _ in split.named_modules()]


@snippet
def shape_prop_returns_output_and_handles_ints(fx):
    gm = fx.symbolic_trace(lambda x: (x.sum(), x.shape[0], x.dim()))
    result = fx.passes.shape_prop.ShapeProp(gm).propagate(torch.ones(3, 2))
    return result, [
        (n.name, "tensor_meta" in n.meta, n.meta.get("type").__name__ if "type" in n.meta else None)
        for n in gm.graph.nodes
    ]


@snippet
def script_a_graph_module(fx):
    gm = fx.symbolic_trace(AddRelu())
    scripted = torch.jit.script(gm)
    return scripted(torch.ones(2), torch.ones(2)), scripted.code.strip().splitlines()[0]


# ---------------------------------------------------------------------------------------------
# tutorial-style transforms and other public corners


@snippet
def tutorial_replace_add_with_mul(fx):
    class M(nn.Module):
        def forward(self, x, y):
            return torch.add(x, y), x + y

    gm = fx.symbolic_trace(M())
    for node in gm.graph.nodes:
        if node.op == "call_function":
            if node.target is torch.add:
                node.target = torch.mul
            elif node.target is operator.add:
                node.target = operator.mul
    gm.graph.lint()
    gm.recompile()
    return gm.code, gm(torch.full((2,), 3.0), torch.full((2,), 4.0))


@snippet
def tutorial_invert_transformer(fx):
    inverses = {torch.neg: torch.neg, torch.exp: torch.log}

    class Invert(fx.Transformer):
        def call_function(self, target, args, kwargs):
            return super().call_function(inverses[target], args, kwargs)

    def fn(x):
        return torch.exp(torch.neg(x))

    inverted = Invert(fx.symbolic_trace(fn)).transform()
    return inverted.code, inverted(fn(torch.arange(3.0)))


@snippet
def print_tabular_output(fx):
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        fx.symbolic_trace(SmallNet()).graph.print_tabular()
    return buffer.getvalue()


@snippet
def graph_str_with_constants_and_kwargs(fx):
    def fn(x):
        y = torch.sum(x, dim=(0, 1), keepdim=True, dtype=torch.float64)
        z = x.to("cpu", non_blocking=False).masked_fill(x > 0.5, -1.0)
        return y, z, x.new_full([2, 2], 1.5), torch.tensor([1, 2]).shape, "text", [1, [2, (3,)]]

    gm = fx.symbolic_trace(fn)
    return str(gm.graph), [node.format_node() for node in gm.graph.nodes]


@snippet
def custom_codegen_subclass(fx):
    class ListCodeGen(fx.graph.CodeGen):
        def gen_fn_def(self, free_vars, maybe_return_annotation):
            return f"def forward(self, args_list):\n    {', '.join(free_vars)} = args_list"

        def additional_globals(self):
            return [("List", list)]

        def process_inputs(self, *inputs):
            assert len(inputs) == 1
            return inputs[0]

    gm = fx.symbolic_trace(AddRelu())
    gm.graph.set_codegen(ListCodeGen())
    gm.recompile()
    return gm.code, gm([torch.ones(2), torch.ones(2)]), fx.Interpreter(gm).run([torch.ones(2), torch.ones(2)])


@snippet
def graph_constructor_options(fx):
    root = TwoLayer()
    graph = fx.Graph(owning_module=root, tracer_cls=fx.Tracer)
    x = graph.placeholder("x")
    graph.output(graph.call_module("fc", (x,)))
    return graph.owning_module is root, str(graph), graph._tracer_cls is fx.Tracer


@snippet
def lint_failures(fx):
    def unknown_op():
        graph = fx.Graph()
        x = graph.placeholder("x")
        node = graph.call_function(torch.relu, (x,))
        graph.output(node)
        node.op = "nonsense"
        graph.lint()

    def missing_module_target():
        root = nn.Module()
        graph = fx.Graph(owning_module=root)
        x = graph.placeholder("x")
        graph.output(graph.call_module("absent", (x,)))
        graph.lint()

    def non_callable_target():
        graph = fx.Graph()
        x = graph.placeholder("x")
        graph.output(graph.call_function("relu", (x,)))
        graph.lint()

    return [
        error_type_of(case) is not None for case in (unknown_op, missing_module_target, non_callable_target)
    ]


@snippet
def create_node_with_invalid_op(fx):
    graph = fx.Graph()
    outcome = error_of(lambda: graph.create_node("not_an_op", torch.relu))
    return outcome is not None, len(graph.nodes)


@snippet
def max_and_min_on_proxies(fx):
    def fn(x):
        return max(x.shape[0], 2)

    return error_of(lambda: fx.symbolic_trace(fn))[0]


@snippet
def isinstance_checks_inside_forward(fx):
    def fn(x):
        if isinstance(x, torch.Tensor):
            return x + 1
        return x - 1

    gm = fx.symbolic_trace(fn)
    return gm.code, isinstance(fx.Proxy, type)


@snippet
def interpreter_error_inside_node(fx):
    graph = fx.Graph()
    a = graph.placeholder("a")
    graph.output(graph.call_function(torch.mm, (a, a)))
    gm = fx.GraphModule(nn.Module(), graph)
    # Messages differ on purpose (torch.fx rewrites the message, fxkit adds a note); the type is common.
    return error_type_of(lambda: fx.Interpreter(gm).run(torch.ones(2, 3))), error_type_of(
        lambda: gm(torch.ones(2, 3))
    )


@snippet
def interpreter_runs_nested_graph_modules(fx):
    inner = fx.symbolic_trace(TwoLayer())
    graph = fx.Graph()
    x = graph.placeholder("x")
    graph.output(graph.call_module("inner.act", (graph.call_module("inner", (x,)),)))
    outer = fx.GraphModule({"inner": inner, "inner.act": inner.act}, graph)
    return outer.code, fx.Interpreter(outer).run(torch.ones(1, 3)), outer(torch.ones(1, 3))


@snippet
def transformer_keeps_nested_get_attr_paths(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Linear(2, 2)

        def forward(self, x):
            return x @ self.block.weight.t() + self.block.bias

    new_gm = fx.Transformer(fx.symbolic_trace(M())).transform()
    return new_gm.code, summary(new_gm.graph), [n for n, _ in new_gm.named_parameters()]


@snippet
def replace_pattern_with_graph_module_pattern(fx):
    pattern = fx.symbolic_trace(lambda x: x.sigmoid() * x)
    replacement = fx.symbolic_trace(lambda x: F.silu(x))
    gm = fx.symbolic_trace(lambda a: (a.sigmoid() * a).sum() + (a.sigmoid() * a).mean())
    matches = fx.subgraph_rewriter.replace_pattern(gm, pattern, replacement)
    return len(matches), gm.code, gm(torch.arange(3.0))


@snippet
def replace_pattern_without_match(fx):
    gm = fx.symbolic_trace(lambda x: x.relu())
    matches = fx.subgraph_rewriter.replace_pattern(gm, lambda x: x.tanh(), lambda x: x.sigmoid())
    return matches, gm.code


@snippet
def const_fold_with_skip_function(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.ones(2))
            self.b = nn.Parameter(torch.ones(2))

        def forward(self, x):
            return x + (self.a + 1) * (self.b * 2)

    folded = fx.experimental.const_fold.split_const_subgraphs(
        M(), skip_folding_node_fn=lambda node: node.target is operator.mul
    )
    folded.run_folding()
    return folded.code, folded(torch.zeros(2))


@snippet
def optimization_remove_dropout(fx):
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.ReLU()).eval()
    cleaned = fx.experimental.optimization.remove_dropout(model)
    return cleaned.code, cleaned(torch.ones(1, 2)), model(torch.ones(1, 2))


@snippet
def graph_module_to_and_train_eval(fx):
    gm = fx.symbolic_trace(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))
    gm = gm.to(torch.float64)
    gm.eval()
    return gm(torch.ones(3, 2, dtype=torch.float64)), [m.training for m in gm.modules()], gm.code


@snippet
def proxy_torch_function_kwargs_out_and_dtype(fx):
    def fn(x):
        return (
            torch.softmax(x, dim=-1, dtype=torch.float64),
            x.sum(dtype=torch.float64),
            torch.nn.functional.one_hot(x.long(), num_classes=3),
        )

    gm = fx.symbolic_trace(fn)
    return gm.code, gm(torch.tensor([0.0, 2.0]))


@snippet
def eliminate_dead_code_keeps_impure_and_placeholders(fx):
    graph = fx.Graph()
    x = graph.placeholder("x")
    unused = graph.placeholder("unused")
    graph.call_function(torch.relu, (x,))
    graph.call_method("add_", (x, 1))
    graph.call_function(operator.setitem, (x, 0, 1.0))
    graph.call_function(torch._assert, (True, "message"))
    graph.output(x)
    changed = graph.eliminate_dead_code()
    return changed, [n.name for n in graph.nodes]


# ---------------------------------------------------------------------------------------------
# the comparison


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


def run_snippet(function: Callable[[Any], Any], library: Any) -> Any:
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


@pytest.mark.parametrize("function", SNIPPETS, ids=[function.__name__ for function in SNIPPETS])
def test_fxkit_matches_torch_fx(function: Callable[[Any], Any]) -> None:
    expected = run_snippet(function, torch.fx)
    actual = run_snippet(function, fxkit)
    assert_same(expected, actual)


def test_snippets_are_many_and_uniquely_named() -> None:
    names = [function.__name__ for function in SNIPPETS]
    assert len(names) == len(set(names)) and len(names) >= 80


def test_undeclared_errors_fail_and_declared_ones_must_happen() -> None:
    def broken(fx: Any) -> Any:
        raise ValueError("boom")

    def quiet(fx: Any) -> Any:
        return 1

    broken.expected_error = None  # type: ignore[attr-defined]
    quiet.expected_error = (TypeError, "never raised")  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="boom"):
        run_snippet(broken, torch.fx)
    with pytest.raises(pytest.fail.Exception):
        run_snippet(quiet, torch.fx)
