"""Tracing parity sweep: corner cases real models hit while being traced, each written once as a
snippet taking the library module as ``fx`` and run with torch.fx (the oracle) and with fxkit.

Snippets return plain data (generated code, node summaries, outputs, error type names); the
comparison helpers come from tests/test_parity.py.
"""

from __future__ import annotations

import collections
import functools
import math
import operator
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

import fxkit
from fxkit.tracer import use_fast_patches
from tests.test_parity import assert_same, error_of, error_type_of, is_fxkit, run_snippet, summary

SNIPPETS: list[Callable[[Any], Any]] = []


def snippet(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Register a snippet for this sweep."""
    SNIPPETS.append(function)
    return function


def trace_error(fx: Any, action: Callable[[], Any]) -> tuple[str, str] | None:
    """The error ``action`` raises while tracing, as (type name, torch.fx's message).

    fxkit adds a line naming the user's file:line and source to trace-time errors (team rule: errors
    say where); that extra line is checked here and dropped so the rest compares with torch.fx.
    """
    outcome = error_of(action)
    if outcome is None:
        return None
    error_type, message = outcome
    if is_fxkit(fx):
        head, _, location = message.rpartition("\n  at ")
        assert head and location.startswith(__file__), f"no user location in {message!r}"
        message = head
    return error_type, message


def traced(fx: Any, root: Any, *inputs: Any, **trace_kwargs: Any) -> tuple[str, list, Any]:
    """Trace ``root`` and return its code, node summary and output on ``inputs``."""
    gm = fx.symbolic_trace(root, **trace_kwargs)
    return gm.code, summary(gm.graph), gm(*inputs)


# Module-scope helpers wrapped by both libraries.
def halve_last_dim(x, scale):
    return x[..., : x.shape[-1] // 2] * scale


torch.fx.wrap("halve_last_dim")
fxkit.wrap("halve_last_dim")


@torch.fx.wrap
@fxkit.wrap
def scaled_add(x, y, alpha=1.0):
    return x + alpha * y


def autowrapped_norm(x):
    return x / (x.norm() + 1)


# ---------------------------------------------------------------------------------------------
# recurrent and attention modules as leaves


@snippet
def multihead_attention_leaf_tuple_unpacked(fx):
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            out, weights = self.attn(x, x, x, need_weights=True)
            return out + 1, weights

    return traced(fx, Block().eval(), torch.randn(2, 3, 8))


@snippet
def lstm_leaf_nested_tuple_unpacked(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 5, batch_first=True)

        def forward(self, x):
            out, (h, c) = self.lstm(x)
            return out[:, -1] + h[0], c

    return traced(fx, Net(), torch.randn(2, 3, 4))


@snippet
def gru_leaf_with_initial_state(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(4, 5, num_layers=2)

        def forward(self, x, h0):
            out, h = self.gru(x, h0)
            return out.sum(0), h[-1]

    return traced(fx, Net(), torch.randn(3, 2, 4), torch.zeros(2, 2, 5))


@snippet
def transformer_encoder_layer_leaf(fx):
    class Leafy(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return isinstance(m, nn.TransformerEncoderLayer) or super().is_leaf_module(m, qualname)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)

        def forward(self, x, mask):
            return self.layer(x, src_key_padding_mask=mask)

    net = Net().eval()
    graph = Leafy().trace(net)
    gm = fx.GraphModule(net, graph)
    mask = torch.tensor([[False, False, True], [False, False, False]])
    return gm.code, summary(graph), gm(torch.randn(2, 3, 8), mask)


# ---------------------------------------------------------------------------------------------
# shapes and sizes


@snippet
def shape_unpacked_with_fixed_count(fx):
    def fn(x):
        b, c, h, w = x.shape
        return x.view(b, c, h * w).mean(-1) * w

    return traced(fx, fn, torch.randn(2, 3, 4, 5))


@snippet
def shape_unpacked_with_star(fx):
    def fn(x):
        b, *rest = x.shape
        return x.reshape(b, -1), rest

    return error_type_of(lambda: fx.symbolic_trace(fn))


@snippet
def size_iterated_without_count_raises(fx):
    def fn(x):
        return [d for d in x.size()]

    outcome = error_of(lambda: fx.symbolic_trace(fn))
    return outcome[0], "iterate" in outcome[1] or "iter" in outcome[1]


@snippet
def shape_negative_index_and_floordiv(fx):
    def fn(x):
        half = x.size(-1) // 2
        return x[..., :half] * x.shape[-1]

    return traced(fx, fn, torch.randn(2, 6))


@snippet
def torch_size_arithmetic(fx):
    def fn(x, y):
        shape = x.shape[:-1] + (y.shape[-1],)
        return torch.zeros(shape) + y.sum()

    return traced(fx, fn, torch.randn(2, 3, 4), torch.randn(5))


@snippet
def view_batch_flatten(fx):
    def fn(x):
        return x.view(x.size(0), -1)

    return traced(fx, fn, torch.randn(2, 3, 4))


@snippet
def new_zeros_and_arange_from_sizes(fx):
    def fn(x):
        positions = torch.arange(x.size(1))
        return x.new_zeros(x.size(0), x.size(1)) + positions, x.new_ones((2,)), x.new_full((1,), 3.0)

    return traced(fx, fn, torch.randn(2, 3))


@snippet
def dtype_and_device_attributes(fx):
    def fn(x, other):
        y = x.to(other.dtype)
        z = torch.ones(3, dtype=x.dtype, device=x.device)
        return y + other, z * x

    return traced(fx, fn, torch.ones(3, dtype=torch.float32), torch.arange(3, dtype=torch.float64))


@snippet
def numel_dim_and_ndim(fx):
    def fn(x):
        return x.reshape(x.numel()) * x.dim() + x.ndim

    return traced(fx, fn, torch.randn(2, 3))


# ---------------------------------------------------------------------------------------------
# functional calls


@snippet
def where_masked_fill_and_boolean_mask(fx):
    def fn(x):
        mask = x > 0
        y = torch.where(mask, x, torch.zeros_like(x))
        z = x.masked_fill(~mask, float("-inf"))
        return y, z.softmax(-1), x[mask]

    return traced(fx, fn, torch.tensor([[1.0, -2.0], [-3.0, 4.0]]))


@snippet
def einsum_and_scaled_dot_product_attention(fx):
    def fn(q, k, v):
        scores = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.size(-1))
        return scores.softmax(-1), F.scaled_dot_product_attention(q, k, v, is_causal=True)

    return traced(fx, fn, torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4))


@snippet
def interpolate_and_pad_with_kwargs(fx):
    def fn(x):
        up = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return F.pad(up, (1, 1, 2, 0), mode="constant", value=0.5)

    return traced(fx, fn, torch.randn(1, 1, 2, 2))


@snippet
def functional_with_many_kwargs(fx):
    def fn(x, w):
        y = F.conv2d(x, w, bias=None, stride=1, padding=1, dilation=1, groups=1)
        y = F.layer_norm(y, y.shape[-2:], eps=1e-6)
        return F.dropout(F.gelu(y, approximate="tanh"), p=0.0, training=False)

    return traced(fx, fn, torch.randn(1, 2, 4, 4), torch.randn(3, 2, 3, 3))


@snippet
def getitem_with_proxy_index(fx):
    def fn(x, idx):
        return x[idx], x[:, idx[0]], x[idx.argmax()]

    return traced(fx, fn, torch.arange(12.0).reshape(3, 4), torch.tensor([2, 0]))


@snippet
def getitem_with_none_ellipsis_and_steps(fx):
    def fn(x):
        return x[None, ..., ::2], x[:, None, 1:-1], x[..., -1]

    return traced(fx, fn, torch.randn(3, 5))


# ---------------------------------------------------------------------------------------------
# parameters, buffers and submodule structure


@snippet
def parameter_in_arithmetic(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.full((3,), 2.0))
            self.shift = nn.Parameter(torch.ones(3))

        def forward(self, x):
            return x * self.scale - self.shift / 2 + self.scale.sum()

    return traced(fx, Net(), torch.ones(3))


@snippet
def buffer_updated_in_place(fx):
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("steps", torch.zeros(1))

        def forward(self, x):
            self.steps.add_(1)
            return x + self.steps

    gm = fx.symbolic_trace(Counter())
    first = gm(torch.zeros(2))
    second = gm(torch.zeros(2))
    return gm.code, summary(gm.graph), first, second, gm.steps


@snippet
def identity_modules_are_leaves(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.skip = nn.Identity()
            self.body = nn.Sequential(nn.Identity(), nn.Linear(2, 2))

        def forward(self, x):
            return self.skip(x) + self.body(x)

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def nested_containers_numeric_and_string_keys(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stages = nn.ModuleList([nn.Sequential(nn.Linear(2, 2), nn.ReLU()), nn.Linear(2, 2)])
            self.heads = nn.ModuleDict({"cls": nn.Linear(2, 1), "0": nn.Linear(2, 3)})
            self.seq = nn.Sequential(collections.OrderedDict(box=nn.Sequential(nn.Tanh())))

        def forward(self, x):
            for stage in self.stages:
                x = stage(x)
            x = self.seq(x)
            return {name: head(x) for name, head in self.heads.items()}

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def shared_submodule_called_twice(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return self.lin(self.lin(x)) + self.lin(x)

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def shared_module_under_two_names(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.first = nn.Linear(2, 2)
            self.second = self.first

        def forward(self, x):
            return self.second(self.first(x))

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def len_of_module_list_and_range_loop(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(2, 2) for _ in range(3))
            self.n = 2

        def forward(self, x):
            for index in range(self.n):
                x = self.layers[index](x) + index
            return x * len(self.layers)

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def module_list_sliced_and_negative_index(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(2, 2) for _ in range(4))

        def forward(self, x):
            for layer in self.layers[1:3]:
                x = layer(x)
            return self.layers[-1](x)

    return traced(fx, Net(), torch.ones(1, 2))


# ---------------------------------------------------------------------------------------------
# forward shapes: helpers, kwargs, static/class methods, partials, lambdas


@snippet
def forward_calls_helper_method(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def project(self, x, scale=2):
            return self.lin(x) * scale

        def forward(self, x):
            return self.project(x) + self.project(x, scale=3)

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def forward_with_var_keyword(fx):
    class Net(nn.Module):
        def forward(self, x, **kwargs):
            return x + 1

    gm = fx.symbolic_trace(Net())
    return gm.code, summary(gm.graph), gm(torch.ones(1), extra=2)


@snippet
def len_of_var_keyword_proxy_raises(fx):
    class Net(nn.Module):
        def forward(self, x, **kwargs):
            return x + len(kwargs)

    return trace_error(fx, lambda: fx.symbolic_trace(Net()))


@snippet
def forward_with_var_positional(fx):
    class Net(nn.Module):
        def forward(self, x, *args):
            return x * 2

    gm = fx.symbolic_trace(Net())
    return gm.code, summary(gm.graph)


@snippet
def static_and_class_method_helpers(fx):
    class Net(nn.Module):
        factor = 3

        @staticmethod
        def double(x):
            return x * 2

        @classmethod
        def triple(cls, x):
            return x * cls.factor

        def forward(self, x):
            return self.double(x) + Net.triple(x)

    return traced(fx, Net(), torch.ones(2))


@snippet
def partial_and_lambda_attributes(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.act = functools.partial(F.leaky_relu, negative_slope=0.2)
            self.square = lambda t: t * t

        def forward(self, x):
            return self.square(self.act(x))

    return traced(fx, Net(), torch.tensor([-1.0, 2.0]))


@snippet
def partial_of_torch_function_called_directly(fx):
    softmax_last = functools.partial(torch.softmax, dim=-1)

    def fn(x):
        return softmax_last(x)

    return traced(fx, fn, torch.randn(2, 3))


# ---------------------------------------------------------------------------------------------
# python control around tensors


@snippet
def grad_mode_contexts_inside_forward(fx):
    def fn(x):
        with torch.no_grad():
            y = x * 2
        with torch.enable_grad():
            z = y + 1
        return z

    return traced(fx, fn, torch.ones(2))


@snippet
def assert_on_shape_raises(fx):
    def fn(x):
        assert x.shape[0] == 2, "batch must be 2"
        return x

    return error_type_of(lambda: fx.symbolic_trace(fn))


@snippet
def isinstance_tensor_check(fx):
    def fn(x):
        if isinstance(x, torch.Tensor):
            return x + 1
        return x

    return traced(fx, fn, torch.ones(2))


@snippet
def isinstance_proxy_check(fx):
    def fn(x):
        return isinstance(x, fx.Proxy)

    gm = fx.symbolic_trace(fn)
    return gm.code, gm(torch.ones(1))


@snippet
def control_flow_on_proxy_raises(fx):
    def fn(x):
        if x.sum() > 0:
            return x
        return -x

    outcome = error_of(lambda: fx.symbolic_trace(fn))
    return outcome[0], "symbolically traced variables cannot be used as inputs to control flow" in outcome[1]


@snippet
def bool_and_int_of_proxy_raise(fx):
    def as_int(x):
        return torch.zeros(int(x.size(0)))

    def as_float(x):
        return float(x.sum())

    return error_type_of(lambda: fx.symbolic_trace(as_int)), error_type_of(
        lambda: fx.symbolic_trace(as_float)
    )


# ---------------------------------------------------------------------------------------------
# outputs


@snippet
def dict_list_tuple_outputs(fx):
    def fn(x):
        return {"a": [x, (x + 1, x * 2)], "b": (x.sum(),)}

    return traced(fx, fn, torch.ones(2))


Pair = collections.namedtuple("Pair", ["left", "right"])


@snippet
def namedtuple_output(fx):
    def fn(x):
        return Pair(x + 1, right=x - 1)

    code, nodes, out = traced(fx, fn, torch.ones(2))
    return code, nodes, tuple(out), type(out).__name__


@snippet
def none_output_and_input_returned_unchanged(fx):
    def returns_none(x):
        x.add_(1)

    def returns_input(x, y):
        return x

    gm_none = fx.symbolic_trace(returns_none)
    gm_same = fx.symbolic_trace(returns_input)
    x = torch.ones(2)
    return gm_none.code, gm_none(x), x, gm_same.code, gm_same(x, x)


@snippet
def constant_output(fx):
    def fn(x):
        return 3, "text", None

    return traced(fx, fn, torch.ones(1))


# ---------------------------------------------------------------------------------------------
# concrete_args, defaults, wrapping


@snippet
def concrete_args_nested_dict_with_placeholders(fx):
    def fn(inputs):
        return inputs["x"] + inputs["pair"][0] * inputs["pair"][1]

    gm = fx.symbolic_trace(fn, concrete_args={"inputs": {"x": fx.PH, "pair": (fx.PH, fx.PH)}})
    out = gm({"x": torch.ones(2), "pair": (torch.ones(2) * 2, torch.ones(2) * 3)})
    return gm.code, summary(gm.graph), out


@snippet
def concrete_args_bool_flag_and_none(fx):
    def fn(x, flag, extra=None):
        if flag:
            x = x * 2
        if extra is not None:
            x = x + extra
        return x

    gm = fx.symbolic_trace(fn, concrete_args={"flag": True, "extra": None})
    return gm.code, summary(gm.graph), gm(torch.ones(2), True, None)


@snippet
def function_with_default_args(fx):
    def fn(x, scale=2.0, bias=None, mode="add"):
        return x * scale

    gm = fx.symbolic_trace(fn)
    return gm.code, summary(gm.graph), gm(torch.ones(2)), gm(torch.ones(2), 3.0)


@snippet
def autowrap_functions_on_tracer(fx):
    def fn(x):
        return autowrapped_norm(x) + 1

    tracer = fx.Tracer(autowrap_functions=(autowrapped_norm,))
    graph = tracer.trace(fn)
    gm = fx.GraphModule(tracer.root, graph)
    return gm.code, summary(graph), gm(torch.ones(2))


@snippet
def wrapped_functions_with_proxies_and_constants(fx):
    def fn(x, y):
        return scaled_add(x, y, alpha=0.5)[..., :2] + halve_last_dim(x, 3)

    return traced(fx, fn, torch.ones(2, 4), torch.ones(2, 4))


@snippet
def wrapped_function_called_with_constants_only(fx):
    def fn(x):
        return x + scaled_add(1.0, 2.0)

    return traced(fx, fn, torch.ones(2))


@snippet
def math_functions_on_sizes(fx):
    def fn(x):
        return x * math.sqrt(x.size(-1)) if False else x / x.size(-1) ** 0.5

    return traced(fx, fn, torch.ones(2, 4))


@snippet
def operator_on_proxy_sizes(fx):
    def fn(x):
        return x.reshape(-1, x.size(1) * x.size(2)), -x.size(0), x.size(0) % 2

    return traced(fx, fn, torch.ones(2, 3, 4))


# ---------------------------------------------------------------------------------------------
# unpacking, iteration and in-place operations


@snippet
def split_chunk_unbind_unpacked(fx):
    def fn(x):
        a, b = x.split(2, dim=-1)
        c, d = x.chunk(2)
        e, f = x.unbind(0)
        return a * b, c - d, e + f

    return traced(fx, fn, torch.arange(8.0).reshape(2, 4))


@snippet
def loop_over_unbind_raises(fx):
    def fn(x):
        return [row.sum() for row in x.unbind(0)]

    return error_type_of(lambda: fx.symbolic_trace(fn))


@snippet
def star_expansion_of_shape_in_call(fx):
    def fn(x, y):
        return y.expand(*x.shape)

    return error_type_of(lambda: fx.symbolic_trace(fn))


@snippet
def list_and_tuple_of_shape(fx):
    def as_list(x):
        return x.new_zeros(list(x.shape))

    def as_tuple(x):
        return x.new_zeros(tuple(x.shape))

    return error_type_of(lambda: fx.symbolic_trace(as_list)), error_type_of(
        lambda: fx.symbolic_trace(as_tuple)
    )


@snippet
def shape_slices_and_comparisons(fx):
    def fn(x, y):
        same = x.shape == y.shape
        return x.reshape(x.size()[:1] + (-1,)), same, x.size(0) == 2

    return traced(fx, fn, torch.ones(2, 3), torch.ones(2, 3))


@snippet
def augmented_assignment_and_item_assignment(fx):
    def fn(x):
        y = x.clone()
        y += 1
        y *= 2
        y -= x
        return y

    def assigns_item(x):
        x[0] = 0.5
        return x

    return traced(fx, fn, torch.ones(2, 2)), error_of(lambda: fx.symbolic_trace(assigns_item))


@snippet
def inplace_functional_and_module(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.act = nn.ReLU(inplace=True)

        def forward(self, x):
            y = x * 1
            return F.relu(self.act(y), inplace=True).add_(1)

    return traced(fx, Net(), torch.tensor([-1.0, 2.0]))


@snippet
def min_max_of_sizes_raise(fx):
    def fn(x):
        return x[: min(x.size(0), 4)]

    return error_type_of(lambda: fx.symbolic_trace(fn))


@snippet
def tensor_attributes_as_nodes(fx):
    def fn(x):
        return x.T, x.mT, x.requires_grad, x.is_floating_point()

    gm = fx.symbolic_trace(fn)
    return gm.code, summary(gm.graph), gm(torch.ones(2, 3))


@snippet
def conversions_and_layout_methods(fx):
    def fn(x, y):
        return x.float().type_as(y).permute(1, 0).contiguous(), torch.flatten(x.double(), 1), x.long().dtype

    return traced(fx, fn, torch.ones(2, 3, dtype=torch.int32), torch.ones(1, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------
# constants and attributes created or read in forward


@snippet
def tensor_constant_created_in_forward(fx):
    def fn(x):
        return x + torch.tensor([1.0, 2.0]) * torch.tensor(3.0)

    gm = fx.symbolic_trace(fn)
    return gm.code, summary(gm.graph), gm(torch.ones(2)), sorted(name for name, _ in gm.named_buffers())


@snippet
def plain_tensor_attribute_and_nonpersistent_buffer(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = torch.arange(3.0)
            self.register_buffer("mask", torch.tensor([1.0, 0.0, 1.0]), persistent=False)

        def forward(self, x):
            return (x + self.table) * self.mask

    gm = fx.symbolic_trace(Net())
    return gm.code, summary(gm.graph), gm(torch.ones(3))


@snippet
def dynamic_submodule_lookup_by_name(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            for index in range(2):
                setattr(self, f"block{index}", nn.Linear(2, 2))
            self.heads = nn.ModuleDict({"a": nn.Linear(2, 1), "b": nn.Linear(2, 1)})

        def forward(self, x):
            for index in range(2):
                x = getattr(self, f"block{index}")(x)
            return sum(self.heads[key](x) for key in ("b", "a"))

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def embedding_leaf_and_functional(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(5, 3, padding_idx=0)

        def forward(self, ids):
            return self.embed(ids) + F.embedding(ids, self.embed.weight, padding_idx=0)

    return traced(fx, Net(), torch.tensor([[0, 3], [4, 1]]))


@snippet
def keyword_only_forward_argument(fx):
    class Net(nn.Module):
        def forward(self, x, *, scale=2.0):
            return x * scale

    gm = fx.symbolic_trace(Net())
    return gm.code, summary(gm.graph), gm(torch.ones(2), scale=3.0)


@snippet
def jit_scripting_checks_and_torch_assert(fx):
    def fn(x):
        if torch.jit.is_scripting():
            return x
        torch._assert(x.dim() == 2, "two dims")
        return x + 1

    return traced(fx, fn, torch.ones(1, 2))


@snippet
def stack_cat_of_proxy_lists(fx):
    def fn(x, y):
        return torch.stack([x.sum(), y.mean()]), torch.cat([x, y, x], dim=-1), torch.cat((x,) * 2)

    return traced(fx, fn, torch.ones(2, 2), torch.ones(2, 1))


@snippet
def creation_ops_from_shape(fx):
    def fn(x):
        return (
            torch.full((x.size(0),), 1.5),
            torch.zeros(x.shape, dtype=torch.int64),
            torch.ones_like(x, dtype=torch.bool),
        )

    return traced(fx, fn, torch.ones(2, 3))


@snippet
def custom_leaf_tuple_output_indexed(fx):
    class Pairing(nn.Module):
        def forward(self, x):
            return x + 1, x - 1

    class Leafy(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return isinstance(m, Pairing) or super().is_leaf_module(m, qualname)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.pair = Pairing()

        def forward(self, x):
            out = self.pair(x)
            first, second = self.pair(out[0])
            return out[1] * first + second

    net = Net()
    graph = Leafy().trace(net)
    gm = fx.GraphModule(net, graph)
    return gm.code, summary(graph), gm(torch.ones(2))


@snippet
def sequential_traced_directly_and_nested(fx):
    model = nn.Sequential(
        nn.Sequential(nn.Linear(2, 3), nn.ReLU()),
        nn.ModuleList([nn.Identity()])[0],
        nn.Flatten(),
        nn.Linear(3, 1),
    )
    return traced(fx, model, torch.ones(4, 2))


@snippet
def batchnorm_eval_and_dropout_leaf(fx):
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1)
    )
    model.eval()
    return traced(fx, model, torch.randn(1, 1, 4, 4))


# ---------------------------------------------------------------------------------------------
# names, operators and structured inputs


@snippet
def placeholders_shadowing_builtins(fx):
    def fn(input, list, sum, x_1):
        return input + list * sum - x_1

    ones = torch.ones(1)
    return traced(fx, fn, ones, ones, ones, ones)


@snippet
def nested_parameter_and_clashing_attribute_names(fx):
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()
            self.block_lin_weight = nn.Parameter(torch.ones(2, 2))
            self.layers = nn.ModuleList([nn.Linear(2, 2)])
            self.layers_0 = nn.Linear(2, 2)

        def forward(self, x):
            y = x @ self.block.lin.weight + self.block_lin_weight.sum()
            return self.layers[0](y) + self.layers_0(y) + self.block.lin(x)

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def all_operators_and_reflected_forms(fx):
    def fn(x, y):
        return (1 - x, 2**x, x @ y, -x, abs(x), x // 2, x % 3, 3 / x, +x, x**2, x > y, 1 < x, x != y, x == 1)

    return traced(fx, fn, torch.arange(1.0, 5.0).reshape(2, 2), torch.ones(2, 2))


@snippet
def bitwise_and_shift_operators(fx):
    def fn(x, y):
        return ~x, x & y, x | y, x ^ y, x << 1, x >> 1, 1 & x

    return traced(fx, fn, torch.tensor([1, 6]), torch.tensor([3, 2]))


@snippet
def unbound_tensor_methods_and_dunders(fx):
    def fn(x, y):
        return x.__mul__(y), x.__radd__(1), getattr(x, "shape")

    def unbound(x, y):
        return torch.Tensor.add(x, y)

    return traced(fx, fn, torch.ones(2, 2), torch.ones(2, 2)), error_type_of(
        lambda: fx.symbolic_trace(unbound)
    )


@snippet
def dict_and_tuple_inputs_indexed(fx):
    def fn(batch, pair):
        return batch["x"] * pair[0] + pair[1]

    gm = fx.symbolic_trace(fn)
    return gm.code, summary(gm.graph), gm({"x": torch.ones(2)}, (torch.ones(2), torch.ones(2)))


@snippet
def double_star_of_proxy_raises_or_records(fx):
    def takes(**kwargs):
        return kwargs

    def fn(batch):
        return takes(**batch)

    return trace_error(fx, lambda: fx.symbolic_trace(fn))


@snippet
def reductions_returning_named_results(fx):
    def fn(x):
        values, indices = x.topk(2)
        best = x.max(dim=1)
        return values + best.values.unsqueeze(-1), indices, torch.max(x, dim=0)[1], x.sort(descending=True)[0]

    return traced(fx, fn, torch.tensor([[1.0, 3.0, 2.0], [0.0, -1.0, 5.0]]))


@snippet
def leaf_called_with_keyword_argument(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return self.lin(input=x)

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def unregistered_module_in_plain_list_raises(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = [nn.Linear(2, 2)]

        def forward(self, x):
            return self.hidden[0](x)

    error_type, message = error_of(lambda: fx.symbolic_trace(Net()))
    return error_type, "not installed as a submodule" in message


@snippet
def attribute_set_on_module_during_trace(fx):
    class Net(nn.Module):
        def forward(self, x):
            self.cache = x * 2
            return self.cache + 1

    net = Net()
    gm = fx.symbolic_trace(net)
    return gm.code, summary(gm.graph), gm(torch.ones(2)), type(net.cache).__name__


@snippet
def zip_enumerate_reversed_over_containers(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.mix = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
            self.gates = nn.ModuleList([nn.Sigmoid(), nn.Tanh()])

        def forward(self, x):
            for index, (mix, gate) in enumerate(zip(self.mix, self.gates)):
                x = gate(mix(x)) * (index + 1)
            for mix in reversed(self.mix):
                x = mix(x)
            return x

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def module_with_overridden_call(fx):
    class Scaled(nn.Module):
        def __call__(self, x):
            return super().__call__(x) * 2

        def forward(self, x):
            return x + 1

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Scaled()

        def forward(self, x):
            return self.inner(x)

    return traced(fx, Net(), torch.ones(2))


@snippet
def out_keyword_and_method_on_size(fx):
    def fn(x):
        return x.reshape(x.shape.numel()), torch.add(x, 1, alpha=2)

    return traced(fx, fn, torch.ones(2, 2))


@snippet
def concrete_int_used_in_arithmetic(fx):
    def fn(x, heads):
        return x.reshape(x.size(0), heads, -1).transpose(0, 1) * heads

    gm = fx.symbolic_trace(fn, concrete_args={"heads": 2})
    return gm.code, summary(gm.graph), gm(torch.ones(3, 4), 2)


@snippet
def concrete_tensor_placeholder_and_tracer_trace(fx):
    def fn(x, y):
        return x + y

    tracer = fx.Tracer()
    graph = tracer.trace(fn, concrete_args={"y": fx.PH})
    gm = fx.GraphModule(tracer.root, graph)
    return gm.code, summary(graph), gm(torch.ones(1), torch.ones(1))


# ---------------------------------------------------------------------------------------------
# leaf rules, retracing, metadata and unusual signatures


class UserLinear(nn.Linear):
    """A user subclass of a torch.nn module: it lives outside torch.nn, so it is traced through."""

    def forward(self, x):
        return super().forward(x) * 2


@snippet
def user_subclass_of_torch_module_is_traced_through(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = UserLinear(2, 2)
            self.seq = nn.Sequential(nn.Linear(2, 2))

        def forward(self, x):
            return self.seq(self.proj(x))

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def retracing_a_graph_module(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return torch.relu(self.lin(x)) + self.lin(x).sum(-1, keepdim=True)

    first = fx.symbolic_trace(Net())
    second = fx.symbolic_trace(first)
    return first.code, second.code, summary(second.graph), second(torch.ones(1, 2))


@snippet
def nn_module_stack_and_stack_traces(fx):
    class Inner(nn.Module):
        def forward(self, x):
            return x * 2

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Inner()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return self.lin(self.inner(x))

    tracer = fx.Tracer()
    tracer.record_stack_traces = True
    graph = tracer.trace(Net())
    rows = []
    for node in graph.nodes:
        stack = node.meta.get("nn_module_stack")
        rows.append((node.name, None if stack is None else list(stack), node.stack_trace is None))
        if is_fxkit(fx) and node.op == "call_function":
            # Documented difference (docs/tracing.md): fxkit's stack traces hold the user's frames
            # only, ending at the traced line; torch.fx's end in its own tracing internals.
            assert node.stack_trace.strip().splitlines()[-1].strip() == "return x * 2"
    return rows


@snippet
def param_shapes_constant_size_and_shape(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(3, 2))

        def forward(self, x):
            return x.new_zeros(self.weight.size()) + self.weight.shape[0] + x

    tracer = fx.Tracer(param_shapes_constant=True)
    graph = tracer.trace(Net())
    gm = fx.GraphModule(tracer.root, graph)
    return gm.code, summary(graph), gm(torch.ones(3, 2))


@snippet
def lambda_and_positional_only_traced(fx):
    def positional_only(x, y, /):
        return x - y

    square = fx.symbolic_trace(lambda x: x * x)
    difference = fx.symbolic_trace(positional_only)
    return square.code, square(torch.ones(2) * 3), difference.code, difference(torch.ones(1), torch.ones(1))


@snippet
def tensor_default_argument(fx):
    def fn(x, bias=torch.ones(2)):
        return x + bias

    # Both libraries put the tensor constant's attribute name as the default in the signature,
    # which the generated code cannot resolve: torch.fx fails while tracing, fxkit on first call.
    return error_type_of(lambda: fx.symbolic_trace(fn)(torch.zeros(2)))


@snippet
def odd_constants_in_output(fx):
    def fn(x):
        return x.dtype, torch.float16, torch.device("cpu"), slice(1, None), Ellipsis

    gm = fx.symbolic_trace(fn)
    return gm.code, summary(gm.graph), gm(torch.ones(1))[1:]


@snippet
def unsupported_output_type_raises(fx):
    class Box:
        def __init__(self, value):
            self.value = value

    def fn(x):
        return Box(x)

    return error_type_of(lambda: fx.symbolic_trace(fn))


@snippet
def range_and_finfo_of_proxies_raise(fx):
    def loops(x):
        for _ in range(x.size(0)):
            x = x + 1
        return x

    def finfo(x):
        return x.clamp(min=torch.finfo(x.dtype).min)

    return error_type_of(lambda: fx.symbolic_trace(loops)), error_type_of(lambda: fx.symbolic_trace(finfo))


@snippet
def softmax_with_dtype_and_stacklevel(fx):
    def fn(x):
        return F.softmax(x, dim=-1, _stacklevel=5, dtype=torch.float64), F.log_softmax(x, 1)

    return traced(fx, fn, torch.ones(2, 3))


@snippet
def same_module_traced_twice_gives_same_code(fx):
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    return fx.symbolic_trace(model).code == fx.symbolic_trace(model).code


@snippet
def sequential_subclass_with_custom_forward(fx):
    class Stack(nn.Sequential):
        def forward(self, x):
            for module in self:
                x = module(x) + x
            return x

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stack = Stack(nn.Linear(2, 2), nn.Tanh())

        def forward(self, x):
            return self.stack(x)

    return traced(fx, Net(), torch.ones(1, 2))


# ---------------------------------------------------------------------------------------------
# awkward attribute names and printing proxies


@snippet
def module_dict_keys_that_are_not_identifiers(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = nn.ModuleDict({"a-b": nn.Linear(2, 2), "7": nn.ReLU()})

        def forward(self, x):
            return self.heads["7"](self.heads["a-b"](x))

    return traced(fx, Net(), torch.ones(1, 2))


def keyword_named_attributes_outcome(fx: Any, root: nn.Module, *inputs: Any) -> Any:
    """Trace a module whose attribute paths contain Python keywords.

    Documented difference (docs/graph.md): torch.fx writes them as plain attribute accesses
    (``self.heads.class``), which is a SyntaxError; fxkit writes ``getattr(..., "class")``.
    """
    outcome = error_of(lambda: fx.symbolic_trace(root))
    if not is_fxkit(fx):
        assert outcome is not None and outcome[0] == "SyntaxError", outcome
        return root(*inputs)
    assert outcome is None, outcome
    gm = fx.symbolic_trace(root)
    assert "getattr(self." in gm.code
    return gm(*inputs)


@snippet
def module_dict_keys_that_are_python_keywords(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = nn.ModuleDict({"class": nn.Linear(2, 2), "lambda": nn.ReLU()})

        def forward(self, x):
            return self.heads["lambda"](self.heads["class"](x))

    return keyword_named_attributes_outcome(fx, Net(), torch.ones(1, 2))


@snippet
def parameter_list_and_dict(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.scales = nn.ParameterList([nn.Parameter(torch.full((2,), 2.0)), nn.Parameter(torch.ones(2))])
            self.biases = nn.ParameterDict(
                {"first": nn.Parameter(torch.ones(2)), "if": nn.Parameter(torch.zeros(2))}
            )

        def forward(self, x):
            for scale in self.scales:
                x = x * scale
            return x + self.biases["first"]

    class WithKeyword(nn.Module):
        def __init__(self):
            super().__init__()
            self.biases = nn.ParameterDict({"if": nn.Parameter(torch.full((2,), 3.0))})

        def forward(self, x):
            return x + self.biases["if"]

    return traced(fx, Net(), torch.ones(2)), keyword_named_attributes_outcome(
        fx, WithKeyword(), torch.ones(2)
    )


@snippet
def leaf_attributes_read_in_forward(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 3)

        def forward(self, x):
            return (x @ self.lin.weight.T) * self.lin.in_features + self.lin.bias

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def names_colliding_with_placeholders_and_self(fx):
    def fn(add, mul):
        return add + mul, (add * mul) * 2

    def takes_self(self, x):
        return self + x

    gm = fx.symbolic_trace(fn)
    named_self = fx.symbolic_trace(takes_self)
    placeholder_name = next(iter(named_self.graph.nodes)).name
    # Documented difference (docs/graph.md): fxkit never names a node "self".
    assert placeholder_name == ("self_1" if is_fxkit(fx) else "self")
    # Either way the signature's first parameter is the module's own self, so a function whose
    # first argument is called self gives a module taking one argument fewer.
    calling_error = error_type_of(lambda: named_self(torch.ones(1), torch.ones(1)))
    return gm.code, summary(gm.graph), gm(torch.ones(1), torch.ones(1)), calling_error


@snippet
def printing_and_formatting_proxies(fx):
    import contextlib
    import io

    def fn(x):
        print(x, x.shape, x.size(0))
        return x + 1

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        gm = fx.symbolic_trace(fn)
    return buffer.getvalue(), gm.code


@snippet
def tensor_constants_mixed_with_sizes(fx):
    def fn(x):
        return torch.ones(1) + x * x.size(0), x.size(0) * torch.arange(2.0)

    gm = fx.symbolic_trace(fn)
    return gm.code, summary(gm.graph), gm(torch.ones(2))


@snippet
def tensor_from_proxy_size_raises(fx):
    def fn(x):
        return torch.tensor([x.size(0)])

    return error_type_of(lambda: fx.symbolic_trace(fn))


@snippet
def custom_tracer_overriding_call_module(fx):
    class Counting(fx.Tracer):
        def __init__(self):
            super().__init__()
            self.calls = []

        def call_module(self, m, forward, args, kwargs):
            self.calls.append(self.path_of_module(m))
            return super().call_module(m, forward, args, kwargs)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
            self.head = nn.Linear(2, 1)

        def forward(self, x):
            return self.head(self.body(x))

    tracer = Counting()
    graph = tracer.trace(Net())
    return tracer.calls, summary(graph)


# ---------------------------------------------------------------------------------------------
# math autowrapping, sizes as outputs, more concrete_args


@snippet
def math_functions_on_proxy_sizes_are_recorded(fx):
    def fn(x):
        scale = math.sqrt(x.size(-1))
        rows = math.floor(x.size(0) / 2) + math.ceil(x.size(0) / 3)
        return x / scale, x[:rows]

    return traced(fx, fn, torch.ones(4, 4))


@snippet
def autowrap_modules_extended(fx):
    def fn(x):
        return F.relu(x) + operator.neg(x)

    tracer = fx.Tracer(autowrap_modules=(math, operator))
    graph = tracer.trace(fn)
    gm = fx.GraphModule(tracer.root, graph)
    return gm.code, summary(graph), gm(torch.tensor([-1.0, 2.0]))


@snippet
def sizes_and_torch_size_constants_as_outputs(fx):
    def fn(x):
        return x.size(), x.shape[1:], torch.Size([2, 3]), x.size(1)

    return traced(fx, fn, torch.ones(2, 3))


@snippet
def split_with_sizes_and_unflatten(fx):
    def fn(x):
        a, b = torch.split(x, [1, 2], dim=1)
        return a.unflatten(0, (2, -1)), F.linear(b, torch.ones(1, 2))

    return traced(fx, fn, torch.ones(4, 3))


@snippet
def dict_output_with_integer_keys(fx):
    def fn(x):
        return {0: x, 1: x + 1, "two": [x]}

    return traced(fx, fn, torch.ones(1))


@snippet
def concrete_args_list_of_placeholders_and_tensor(fx):
    def fn(tensors, weight):
        return tensors[0] * weight + tensors[1]

    gm = fx.symbolic_trace(fn, concrete_args={"tensors": [fx.PH, fx.PH]})
    return gm.code, summary(gm.graph), gm([torch.ones(1), torch.ones(1) * 2], torch.ones(1) * 3)


@snippet
def concrete_args_mismatch_fails_at_call(fx):
    def fn(x, flag):
        return x * 2 if flag else x

    gm = fx.symbolic_trace(fn, concrete_args={"flag": False})
    return gm.code, gm(torch.ones(1), False), error_type_of(lambda: gm(torch.ones(1), True))


@snippet
def leaf_called_with_star_list_and_functional_linear(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            inputs = [x]
            return self.lin(*inputs) + F.linear(x, self.lin.weight, self.lin.bias)

    return traced(fx, Net(), torch.ones(1, 2))


@snippet
def wrapped_function_called_from_module_forward(fx):
    class Net(nn.Module):
        def forward(self, x):
            return x + halve_last_dim(x, 2.0).sum()

    return traced(fx, Net(), torch.ones(2, 4))


class _OwnCallImpl(nn.Module):
    """Runs ``forward`` from its own ``_call_impl``: only a patched ``__call__`` sees its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.full((2,), 2.0))

    def _call_impl(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, x):
        return x * self.w


@snippet
def submodule_with_its_own_call_impl(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = _OwnCallImpl()

        def forward(self, x):
            return self.inner(x) + 1

    gm = fx.symbolic_trace(Net())
    # Whether the call was seen shows in the scopes recorded on the nodes.
    scopes = [list(node.meta.get("nn_module_stack", {})) for node in gm.graph.nodes]
    return gm.code, summary(gm.graph), gm(torch.ones(2)), scopes


@snippet
def submodule_with_its_own_getattr_reading_a_parameter(fx):
    class Aliased(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.full((2,), 3.0))

        def __getattr__(self, name):
            return super().__getattr__("w" if name == "alias" else name)

        def forward(self, x):
            return x * self.alias

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Aliased()

        def forward(self, x):
            return self.inner(x) - self.inner.alias

    return traced(fx, Net(), torch.ones(2))


@snippet
def parameter_of_a_plain_module_container_read_in_forward(fx):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.holder = nn.Module()
            self.holder.w = nn.Parameter(torch.full((2,), 4.0))

        def forward(self, x):
            return x + self.holder.w

    return traced(fx, Net(), torch.ones(2))


# ---------------------------------------------------------------------------------------------
# the comparison


@pytest.mark.parametrize("patches", ["fast", "plain"])
@pytest.mark.parametrize("function", SNIPPETS, ids=[function.__name__ for function in SNIPPETS])
def test_fxkit_matches_torch_fx_when_tracing(function: Callable[[Any], Any], patches: str) -> None:
    """Each snippet with fxkit's fast patches (``_call_impl``, ``__getattr__`` per class) and with the
    plain ones (``nn.Module.__call__`` and ``__getattr__``, as torch.fx patches them)."""
    expected = run_snippet(function, torch.fx)
    with use_fast_patches(patches == "fast"):
        actual = run_snippet(function, fxkit)
    assert_same(expected, actual)


def test_tracing_snippets_are_many_and_uniquely_named() -> None:
    names = [function.__name__ for function in SNIPPETS]
    assert len(names) == len(set(names)) and len(names) >= 40
