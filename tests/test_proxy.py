"""Proxy, Attribute, GraphAppendingTracer and the trace errors, checked against torch.fx."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import torch.fx
import torch.nn.functional as F

import fxkit
from fxkit.proxy import Attribute, GraphAppendingTracer, Proxy, TraceError, TracerBase

THIS_FILE = __file__


def _record(lib, fn, n_inputs=1):
    """Apply ``fn`` to Proxies over fresh placeholders of a graph of ``lib`` and return the graph."""
    graph = lib.Graph()
    tracer = lib.proxy.GraphAppendingTracer(graph)
    proxies = [lib.Proxy(graph.placeholder(f"x{i}"), tracer) for i in range(n_inputs)]
    result = fn(*proxies)
    graph.output(tracer.create_arg(result))
    return graph


def _same_as_oracle(fn, n_inputs=1):
    ours = str(_record(fxkit, fn, n_inputs))
    expected = str(_record(torch.fx, fn, n_inputs))
    assert ours == expected
    return ours


OPERATOR_CASES = {
    "binary": lambda a, b: (
        a + b,
        a - b,
        a * b,
        a / b,
        a // b,
        a % b,
        a**b,
        a @ b,
        a & b,
        a | b,
        a ^ b,
        a << b,
        a >> b,
    ),
    "reflected": lambda a, b: (
        1 + a,
        1 - a,
        2 * a,
        1 / a,
        3 // a,
        3 % a,
        2**a,
        1 & a,
        1 | a,
        1 ^ a,
        1 << a,
        1 >> a,
    ),
    "unary": lambda a, b: (-a, +a, ~a, abs(a)),
    "comparisons": lambda a, b: (a == b, a != b, a < b, a > b, a <= b, a >= b, 1 < a, 2 >= a),
    "indexing": lambda a, b: (a[0], a[1:2], a[..., None], a[b], a[:, b, 1:-1:2], a[None, ..., 0]),
    "attribute_and_methods": lambda a, b: (a.shape, a.T, a.view(-1), a.sum(dim=1, keepdim=True), a.shape[0]),
    "torch_functions": lambda a, b: (
        torch.relu(a),
        torch.cat([a, b], 1),
        torch.add(a, b, alpha=2),
        F.gelu(a),
    ),
    "functional_defaults": lambda a, b: (F.relu(a), F.dropout(a, 0.3), F.softmax(a, dim=-1)),
    "call_proxy": lambda a, b: a(b, 3),
}


@pytest.mark.parametrize("case", sorted(OPERATOR_CASES))
def test_operators_record_like_torch_fx(case):
    _same_as_oracle(OPERATOR_CASES[case], n_inputs=2)


def test_unpacking_with_fixed_count_records_getitems():
    text = _same_as_oracle(lambda a: tuple(a.chunk(3)[i] for i in range(3)) + tuple(x for x in [a]))
    assert "getitem" in text

    def unpack(a):
        first, second, third = a.split(1)
        return third, first

    text = _same_as_oracle(unpack)
    assert text.count("operator.getitem") == 3


def test_attribute_node_is_created_only_when_used():
    graph = _record(fxkit, lambda a: (a.shape, a.view(-1)))
    ops = [(n.op, n.target) for n in graph.nodes]
    assert ops == [
        ("placeholder", "x0"),
        ("call_method", "view"),
        ("call_function", getattr),
        ("output", "output"),
    ]
    unused = _record(fxkit, lambda a: (a.some_attribute, a)[1])
    assert [n.op for n in unused.nodes] == ["placeholder", "output"]


def test_proxy_without_tracer_appends_to_the_node_graph():
    graph = fxkit.Graph()
    x = Proxy(graph.placeholder("x"))
    assert isinstance(x.tracer, GraphAppendingTracer)
    assert repr(x) == "Proxy(x)"
    y = torch.relu(x) * 2
    graph.output(y.node)
    assert [n.name for n in graph.nodes] == ["x", "relu", "mul", "output"]


def test_real_tensor_with_proxy_becomes_a_call_method_on_a_constant():
    const = torch.ones(2)
    graph = fxkit.Graph()
    tracer = GraphAppendingTracer(graph)
    x = Proxy(graph.placeholder("x"), tracer)
    with pytest.raises(NotImplementedError):
        # A plain GraphAppendingTracer keeps tensors as constants in args, like torch.fx.
        tracer.create_arg(object())
    y = const.add(x)
    assert y.node.op == "call_method" and y.node.target == "add" and y.node.args[0] is const


def test_multiple_tracers_in_one_call_are_rejected():
    g1, g2 = fxkit.Graph(), fxkit.Graph()
    a = Proxy(g1.placeholder("a"))
    b = Proxy(g2.placeholder("b"))
    with pytest.raises(RuntimeError, match="multiple different tracers"):
        torch.add(a, b)


def test_bool_raises_trace_error_naming_the_user_line():
    graph = fxkit.Graph()
    x = Proxy(graph.placeholder("x"))
    with pytest.raises(TraceError) as info:
        if x.sum() > 0:  # the line the error must point at
            pass
    message = str(info.value)
    assert message.startswith("symbolically traced variables cannot be used as inputs to control flow")
    assert f"{THIS_FILE}:" in message and "if x.sum() > 0:" in message
    assert issubclass(TraceError, ValueError) and issubclass(torch.fx.proxy.TraceError, ValueError)


def test_iteration_and_len_errors_match_torch_fx_and_name_the_line():
    expected = {}
    for lib in (torch.fx, fxkit):
        graph = lib.Graph()
        x = lib.Proxy(graph.placeholder("x"))
        for kind, action in (
            ("iter", lambda: [v for v in x]),
            ("len", lambda: len(x)),
            ("int", lambda: int(x)),
        ):
            with pytest.raises(Exception) as info:
                action()
            if lib is torch.fx:
                expected[kind] = info.value
            else:
                assert type(info.value) is (TraceError if kind == "iter" else type(expected[kind]))
                assert str(info.value).startswith(str(expected[kind]))
                assert f"{THIS_FILE}:" in str(info.value)


def test_keys_records_a_keys_call_and_star_star_needs_iteration():
    graph = fxkit.Graph()
    x = Proxy(graph.placeholder("x"))
    keys = x.keys()
    assert keys.node.op == "call_method" and keys.node.target == "keys"
    with pytest.raises(TraceError, match="cannot be iterated"):
        dict(**x)


def test_custom_tracer_keys_enables_double_star():
    class KeyedTracer(GraphAppendingTracer):
        def keys(self, obj):
            return ["a", "b"]

    graph = fxkit.Graph()
    tracer = KeyedTracer(graph)
    x = Proxy(graph.placeholder("x"), tracer)
    spread = dict(**x)
    assert list(spread) == ["a", "b"]
    assert [n.args[1] for n in graph.nodes if n.op == "call_function"] == ["a", "b"]


def test_proxies_hash_and_copy():
    graph = fxkit.Graph()
    x = Proxy(graph.placeholder("x"))
    assert {x: 1}[x] == 1
    clone = copy.copy(x)
    assert clone.node is x.node and clone.tracer is x.tracer
    # deepcopy copies node and tracer as torch.fx does (tests/test_behaviours_tracer_copy.py)
    deep = copy.deepcopy(x)
    assert deep.node is not x.node and deep.node.name == x.node.name and deep.tracer is not x.tracer
    assert [n.op for n in graph.nodes] == ["placeholder"]


def test_attribute_is_a_proxy_and_calls_become_call_method():
    graph = fxkit.Graph()
    x = Proxy(graph.placeholder("x"))
    attr = x.transpose
    assert isinstance(attr, Attribute) and isinstance(attr, Proxy)
    out = attr(0, 1)
    assert (out.node.op, out.node.target, out.node.args) == ("call_method", "transpose", (x.node, 0, 1))


def test_tracer_base_create_arg_handles_containers():
    graph = fxkit.Graph()
    tracer = GraphAppendingTracer(graph)
    x = Proxy(graph.placeholder("x"), tracer)
    arg = tracer.create_arg({"a": [x, (1, slice(None, x, 2))], "b": range(3), "c": torch.float32, "d": ...})
    assert arg == {"a": [x.node, (1, slice(None, x.node, 2))], "b": range(3), "c": torch.float32, "d": ...}
    assert isinstance(TracerBase(), TracerBase)


def _meta_proxy_run(fx: Any) -> list:
    from torch._subclasses.fake_tensor import FakeTensorMode

    graph = fx.Graph()
    tracer = fx.proxy.GraphAppendingTracer(graph)
    fake_mode = FakeTensorMode()
    x = graph.placeholder("x")
    with fake_mode:
        x.meta["val"] = torch.empty(2, 3)
    proxy = fx.proxy.MetaProxy(x, tracer, fake_mode)
    relu = torch.relu(proxy)  # torch functions compute the fake value
    summed = torch.sum(relu, 1)
    added = proxy + 1  # operators go through Proxy and give a plain Proxy
    seen = [repr(proxy), proxy.fake_mode is fake_mode, type(relu).__name__, repr(relu)]
    seen += [tuple(n.meta["val"].shape) for n in (relu.node, summed.node)]
    seen += [type(added).__name__, "val" in added.node.meta, str(graph)]
    with pytest.raises((TypeError, AttributeError)):
        torch.relu(fx.proxy.MetaProxy(x, tracer))  # no fake mode to compute with
    return seen


def test_meta_proxy_matches_torch_fx() -> None:
    assert _meta_proxy_run(fxkit) == _meta_proxy_run(torch.fx)


def test_assert_fn_matches_torch_fx() -> None:
    import fxkit.proxy

    for module in (torch.fx.proxy, fxkit.proxy):
        module.assert_fn(True)
        with pytest.raises(AssertionError):
            module.assert_fn(0)
    assert fxkit.proxy.immutable_dict is fxkit.immutable_collections.immutable_dict


def test_check_mutable_operations_refuses_what_torch_fx_refuses() -> None:
    def out_variant(x):
        y = torch.rand_like(x)
        torch.sigmoid(x, out=y)
        return y

    def ambiguous_out(x):
        return torch.add(x, 1, out=x)

    def in_place_function(x):
        torch.relu_(x)
        return x

    def in_place_method(x):
        x.add_(1)
        return x

    def outcome(fx, fn, flag):
        class Checking(fx.Tracer):
            check_mutable_operations = flag

        try:
            Checking().trace(fn)
        except RuntimeError as error:
            return str(error)
        return "traced"

    for fn in (out_variant, ambiguous_out, in_place_function, in_place_method):
        for flag in (True, False):
            assert outcome(fxkit, fn, flag) == outcome(torch.fx, fn, flag), fn.__name__
