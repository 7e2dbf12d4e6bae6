"""Tracer behaviour beyond graph equality: hooks for subclasses, wrap, patch hygiene,
threads, stack traces, concrete_args checks and decorated forwards."""

from __future__ import annotations

import functools
import math
import threading
from typing import Any, Callable, Optional

import pytest
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

import fxkit
from fxkit import zoo
from fxkit.proxy import ParameterProxy, TraceError
from fxkit.tracer import PH, Tracer, symbolic_trace, use_fast_patches, wrap

THIS_FILE = __file__


@pytest.fixture(autouse=True, params=["call-impl", "dunder-call"])
def call_patch(request):
    """Every test runs with ``nn.Module._call_impl`` patched (the fast path) and with
    ``nn.Module.__call__`` patched (the plain version, as torch.fx does)."""
    with use_fast_patches(request.param == "call-impl"):
        yield request.param


def scaled_by_three(x):
    return x * 3


wrap("scaled_by_three")


@wrap
def decorated_wrapped(x, n):
    return torch.randn(n) + x


def _globals_snapshot():
    return (
        nn.Module.__call__,
        nn.Module._call_impl,
        nn.Module.__getattr__,
        math.sqrt,
        math.floor,
        globals().get("scaled_by_three"),
        globals().get("decorated_wrapped"),
        "len" in globals(),
    )


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 2, 1)
        self.inner = nn.Sequential(nn.Linear(2, 2))

    def forward(self, x):
        return self.conv1(x)


def test_leaf_modules_keep_full_qualified_paths():
    gm = symbolic_trace(zoo.get_model("resnet"))
    targets = [n.target for n in gm.graph.nodes if n.op == "call_module"]
    assert "layer1.0.conv1" in targets and "layer2.0.downsample.0" in targets
    assert all(isinstance(gm.get_submodule(t), nn.Module) for t in targets)


def test_is_leaf_module_override():
    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()

        def forward(self, x):
            return self.block(x) + 1

    class BlockLeafTracer(Tracer):
        def is_leaf_module(self, m, qualified_name):
            return isinstance(m, Block) or super().is_leaf_module(m, qualified_name)

    class EverythingTracer(Tracer):
        def is_leaf_module(self, m, qualified_name):
            return False

    graph = BlockLeafTracer().trace(Outer())
    assert [(n.op, n.target) for n in graph.nodes if n.op == "call_module"] == [("call_module", "block")]
    graph = EverythingTracer().trace(Outer())
    assert [n.target for n in graph.nodes if n.op in ("call_function", "get_attr")][:3] == [
        "block.conv1.weight",
        "block.conv1.bias",
        torch.conv2d,
    ]


def test_custom_create_node_sees_every_node_and_call_module_hook():
    seen = []
    calls = []

    class Recording(Tracer):
        def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
            node = super().create_node(kind, target, args, kwargs, name, type_expr)
            seen.append(node.op)
            return node

        def call_module(self, m, forward, args, kwargs):
            calls.append(self.path_of_module(m))
            return super().call_module(m, forward, args, kwargs)

    Recording().trace(zoo.get_model("mlp"))
    assert seen[0] == "placeholder" and seen[-1] == "output"
    assert calls == ["layers.0", "layers.1", "layers.2"]


def test_wrap_by_name_and_decorator_record_one_node():
    def f(x):
        return scaled_by_three(x) + decorated_wrapped(x, 3)

    gm = symbolic_trace(f)
    calls = [n for n in gm.graph.nodes if n.op == "call_function" and n.target is not operator_add()]
    assert [n.target for n in calls] == [
        scaled_by_three,
        decorated_wrapped.__wrapped__ if hasattr(decorated_wrapped, "__wrapped__") else decorated_wrapped,
    ]
    assert all(n.meta.get("is_wrapped") for n in calls)
    x = torch.zeros(3)
    torch.manual_seed(1)
    expected = f(x)
    torch.manual_seed(1)
    torch.testing.assert_close(gm(x), expected)


def operator_add():
    import operator

    return operator.add


def test_wrap_must_be_at_module_scope_and_checks_its_argument():
    with pytest.raises(NotImplementedError, match="top level of a module"):
        wrap("len")
    with pytest.raises(RuntimeError, match="callable or string"):
        exec("import fxkit\nfxkit.wrap(3)", {})


def test_nothing_stays_patched_even_when_tracing_fails():
    before = _globals_snapshot()

    def bad(x):
        y = scaled_by_three(x) + math.sqrt(2)
        if y.sum() > 0:
            return y
        return -y

    with pytest.raises(TraceError):
        symbolic_trace(bad)
    assert _globals_snapshot() == before
    symbolic_trace(zoo.get_model("transformer"))
    assert _globals_snapshot() == before


def test_module_calls_outside_a_trace_are_untouched_while_another_thread_traces(call_patch):
    model = zoo.get_model("mlp")
    inputs = zoo.example_inputs("mlp")
    expected = model(*inputs)
    started, release = threading.Event(), threading.Event()

    class SlowTracer(Tracer):
        def call_module(self, m, forward, args, kwargs):
            started.set()
            release.wait(10)
            return super().call_module(m, forward, args, kwargs)

    results = {}

    def trace_slowly():
        with use_fast_patches(call_patch == "call-impl"):  # the switch is per thread
            results["graph"] = SlowTracer().trace(zoo.get_model("mlp"))

    worker = threading.Thread(target=trace_slowly)
    worker.start()
    assert started.wait(10)
    try:
        # a trace is running: the patch is in place
        assert (nn.Module.__call__, nn.Module._call_impl) != (before_call, before_call_impl)
        torch.testing.assert_close(model(*inputs), expected)  # and this thread is not traced
    finally:
        release.set()
        worker.join(10)
    assert (nn.Module.__call__, nn.Module._call_impl) == (before_call, before_call_impl)
    assert [n.op for n in results["graph"].nodes].count("call_module") == 3


before_call, before_call_impl = nn.Module.__call__, nn.Module._call_impl


def test_two_threads_trace_at_once_and_get_their_own_graphs():
    names = ["mlp", "resnet", "transformer"] * 2
    expected = {name: str(symbolic_trace(zoo.get_model(name)).graph) for name in set(names)}
    barrier = threading.Barrier(len(names))
    results, errors = {}, []

    def work(index, name):
        try:
            barrier.wait(10)
            results[index] = str(symbolic_trace(zoo.get_model(name)).graph)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, n)) for i, n in enumerate(names)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert all(results[i] == expected[name] for i, name in enumerate(names))
    assert (nn.Module.__call__, nn.Module._call_impl) == (before_call, before_call_impl)
    assert math.sqrt.__module__ == "math"


def test_parameters_are_found_by_path_and_cached():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return x + self.lin.weight + self.lin.weight

    gm = symbolic_trace(M())
    assert [n.target for n in gm.graph.nodes if n.op == "get_attr"] == ["lin.weight"]


def test_foreign_module_or_parameter_is_a_clear_error():
    stranger = nn.Linear(2, 2)

    class M(nn.Module):
        def forward(self, x):
            return stranger(x)

    with pytest.raises(NameError, match="not installed as a submodule"):
        symbolic_trace(M())

    class P(nn.Module):
        def forward(self, x):
            return x + stranger.weight

    with pytest.raises(NameError, match="not a member"):
        symbolic_trace(P())


def test_param_shapes_constant_gives_concrete_shapes():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(3, 4))

        def forward(self, x):
            return x.reshape(self.weight.shape[0], -1) + self.weight.size()[1] + self.weight.dim()

    graph = Tracer(param_shapes_constant=True).trace(M())
    assert str(graph) == str(torch.fx.Tracer(param_shapes_constant=True).trace(M()))
    reshape = next(n for n in graph.nodes if n.op == "call_method")
    assert reshape.args[1:] == (3, -1)  # the shape is a constant, not a getattr node
    assert len(graph.find_nodes(op="get_attr")[0].users) == 0
    proxies = []

    class Capture(Tracer):
        def getattr(self, attr, attr_val, cache):
            value = super().getattr(attr, attr_val, cache)
            proxies.append(value)
            return value

    Capture(param_shapes_constant=True).trace(M())
    assert isinstance(proxies[0], ParameterProxy) and proxies[0].shape == torch.Size([3, 4])


def test_autowrap_functions_and_modules():
    def f(x):
        return torch.sigmoid(x) + my_helper(x)

    tracer = Tracer(autowrap_functions=(my_helper,))
    graph = tracer.trace(f)
    assert my_helper in [n.target for n in graph.nodes]
    plain = Tracer(autowrap_modules=()).trace(lambda x: x / math.sqrt(4))
    assert math.sqrt not in [n.target for n in plain.nodes]


def my_helper(x):
    return x.flip(0) if x.dim() else x


def test_record_stack_traces_names_user_lines_and_module_stack():
    class Sub(nn.Module):
        def forward(self, x):
            return x * 2  # sub line

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.sub = Sub()

        def forward(self, x):
            return self.sub(x).relu()  # outer line

    tracer = Tracer()
    tracer.record_stack_traces = True
    graph = tracer.trace(M())
    mul = next(n for n in graph.nodes if n.name == "mul")
    relu = next(n for n in graph.nodes if n.name == "relu")
    assert "x * 2  # sub line" in mul.stack_trace and "self.sub(x).relu()" in mul.stack_trace
    assert mul.stack_trace.startswith(f'File "{THIS_FILE}"')
    assert "fxkit" not in mul.stack_trace.replace(THIS_FILE, "")
    assert list(mul.meta["nn_module_stack"]) == ["sub"] and "nn_module_stack" not in relu.meta
    assert relu.meta["stack_trace"] == relu.stack_trace
    plain = Tracer().trace(M())
    assert all(n.stack_trace is None for n in plain.nodes)


def test_concrete_args_check_at_run_time():
    def f(x, flag, bias=None):
        return x * 2 if flag else x

    gm = symbolic_trace(f, concrete_args={"flag": True, "bias": None})
    x = torch.randn(3)
    torch.testing.assert_close(gm(x, True), x * 2)
    with pytest.raises(AssertionError, match="flag has been specialized to have value True"):
        gm(x, False)
    with pytest.raises(AssertionError, match="bias has been specialized to have value None"):
        gm(x, True, 1.0)
    with pytest.raises(TraceError, match="not parameters"):
        symbolic_trace(f, concrete_args={"nope": 1})


def test_concrete_args_as_tuple_and_ph_in_containers():
    def f(x, parts):
        return x + parts["a"] * parts["b"][0]

    gm = symbolic_trace(f, concrete_args={"parts": {"a": PH, "b": [PH]}})
    x, a, b = torch.randn(2), torch.randn(2), torch.randn(2)
    torch.testing.assert_close(gm(x, {"a": a, "b": [b]}), f(x, {"a": a, "b": [b]}))
    graph = Tracer().trace(lambda x, y: x + y, concrete_args=(PH, 2))
    assert [n.name for n in graph.nodes if n.op == "placeholder"] == ["x_1", "y_1"]


def test_dynamic_control_flow_error_points_at_user_code():
    def func_to_trace(x):
        if x.sum() > 0:  # dynamic
            return torch.relu(x)
        return torch.neg(x)

    with pytest.raises(TraceError) as info:
        symbolic_trace(func_to_trace)
    assert f"{THIS_FILE}:" in str(info.value) and "if x.sum() > 0:  # dynamic" in str(info.value)
    with pytest.raises(torch.fx.proxy.TraceError):
        torch.fx.symbolic_trace(func_to_trace)


def _passthrough(forward):
    @functools.wraps(forward)
    def wrapper(self, *args, **kwargs):
        kwargs.setdefault("scale", 2.0)  # what HF-style decorators do with kwargs
        return forward(self, *args, **kwargs)

    return wrapper


class Decorated(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)

    @_passthrough
    def forward(self, x: torch.Tensor, mask=None, *, scale: float = 1.0, **kwargs) -> torch.Tensor:
        out = self.lin(x) * scale
        return out if mask is None else out * mask


def test_decorated_forward_traces_with_the_visible_signature():
    model = Decorated()
    with pytest.raises(Exception):
        torch.fx.symbolic_trace(Decorated())  # torch.fx patches the wrapper's code and fails
    gm = symbolic_trace(model, concrete_args={"mask": None})
    placeholders = [n.target for n in gm.graph.nodes if n.op == "placeholder"]
    assert placeholders == ["x", "mask_1", "scale"]
    x = torch.randn(2, 3)
    torch.testing.assert_close(gm(x, None, 2.0), model(x))


def test_decorated_forward_with_real_data_dependence_still_raises():
    class Branchy(nn.Module):
        @_passthrough
        def forward(self, x, **kwargs):
            if x.max() > 0:
                return x
            return -x

    with pytest.raises(TraceError, match="control flow"):
        symbolic_trace(Branchy())


def test_dropout_training_gotcha_both_variants():
    class DropoutRepro(nn.Module):
        def forward(self, x):
            return F.dropout(x, training=self.training)

    class DropoutRepro2(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout()

        def forward(self, x):
            return self.drop(x)

    traced = symbolic_trace(DropoutRepro())
    assert "training = True" in traced.code
    traced.eval()
    x = torch.randn(5, 3)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(traced(x), x)
    traced2 = symbolic_trace(DropoutRepro2())
    traced2.eval()
    torch.testing.assert_close(traced2(x), x)


def test_trace_of_a_large_model_scales_and_keeps_names_unique():
    gm = symbolic_trace(zoo.deep_mlp(300))
    names = [n.name for n in gm.graph.nodes]
    assert len(names) == len(set(names)) == 2 + 2 * 300
    x = torch.randn(2, 4)
    torch.testing.assert_close(gm(x), zoo.deep_mlp(300)(x))


def test_alias_module_reexports_the_tracer():
    from fxkit import _symbolic_trace

    assert _symbolic_trace.Tracer is Tracer and _symbolic_trace.wrap is wrap and _symbolic_trace.PH is PH


def test_nn_module_stack_meta_matches_torch_fx():
    class Inner(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(2, 2)

        def forward(self, x):
            return torch.relu(self.proj(x))

    class Outer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Inner()

        def forward(self, x):
            return self.inner(x) + 1

    def stacks(library):
        traced = library.symbolic_trace(Outer())
        return [(node.name, dict(node.meta.get("nn_module_stack", {}))) for node in traced.graph.nodes]

    assert stacks(fxkit) == stacks(torch.fx)


class _Pair(metaclass=fxkit.ProxyableClassMeta):
    def __init__(self, left, right):
        self.left, self.right = left, right

    def total(self):
        return self.left + self.right


class _TorchFxPair(metaclass=torch.fx.ProxyableClassMeta):
    def __init__(self, left, right):
        self.left, self.right = left, right

    def total(self):
        return self.left + self.right


def test_proxyable_class_construction_is_one_node_like_torch_fx():
    def build(pair_class):
        def use(x, y):
            return pair_class(x, y).total()

        return use

    ours = fxkit.symbolic_trace(build(_Pair))
    theirs = torch.fx.symbolic_trace(build(_TorchFxPair))
    assert [n.op for n in ours.graph.nodes] == [n.op for n in theirs.graph.nodes]
    assert [n.name for n in ours.graph.nodes][2] == "_pair"
    assert ours.graph.find_nodes(op="call_function", target=_Pair)
    x, y = torch.randn(3), torch.randn(3)
    torch.testing.assert_close(ours(x, y), x + y)
    assert _Pair(1, 2).total() == 3  # plain values construct normally


class _Level(nn.Module):
    """One level of a deep module hierarchy: calls its child, then adds one."""

    def __init__(self, child: Optional[nn.Module]) -> None:
        super().__init__()
        self.child = child

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.child(x) + 1 if self.child is not None else torch.relu(x)


def _nested(depth: int) -> nn.Module:
    model: Optional[nn.Module] = None
    for _ in range(depth):
        model = _Level(model)
    assert model is not None
    return model


def _deepest_traceable(trace: Callable[[nn.Module], Any]) -> int:
    """The deepest ``_nested`` model ``trace`` handles at the current recursion limit."""
    low, high = 1, 600
    while low < high:
        middle = (low + high + 1) // 2
        try:
            trace(_nested(middle))
            low = middle
        except RecursionError:
            high = middle - 1
    return low


def test_deep_hierarchy_that_torch_fx_traces_at_the_default_limit_traces_with_fxkit() -> None:
    theirs = _deepest_traceable(torch.fx.symbolic_trace)
    model = _nested(theirs)
    traced = fxkit.symbolic_trace(model)  # fxkit spends fewer frames per module level
    x = torch.randn(3)
    torch.testing.assert_close(traced(x), model(x))
    assert _deepest_traceable(fxkit.symbolic_trace) > theirs
    assert fxkit.tracer._PATCHES._patches == {}  # RecursionError mid-trace left nothing patched


# ---------------------------------------------------------------------------------------------
# is_fx_tracing / is_fx_symbolic_tracing and PH subclasses carrying attributes
# ---------------------------------------------------------------------------------------------


def test_is_fx_tracing_flags_match_torch_fx() -> None:
    import torch.fx._symbolic_trace as oracle

    import fxkit._symbolic_trace as ours

    def observe(module: Any, fx: Any) -> list:
        seen = [module.is_fx_tracing(), module.is_fx_symbolic_tracing()]

        def f(x: torch.Tensor) -> torch.Tensor:
            seen.extend([module.is_fx_tracing(), module.is_fx_symbolic_tracing()])
            return x + 1

        fx.symbolic_trace(f)
        seen.extend([module.is_fx_tracing(), module.is_fx_symbolic_tracing()])
        return seen

    assert observe(ours, fxkit) == observe(oracle, torch.fx) == [False, False, True, True, False, False]


def test_ph_subclass_attributes_land_on_placeholders_like_torch_fx() -> None:
    def placeholders(fx: Any) -> list:
        module = __import__(fx.__name__ + "._symbolic_trace", fromlist=["PHWithMeta"])

        class Tagged(module.PHBase):
            tag = "class-level"

            def method(self) -> None:  # methods are not copied
                pass

        tagged = Tagged()
        tagged.extra = 5

        def f(x: torch.Tensor, d: dict) -> torch.Tensor:
            return x + d["a"] + d["b"]

        gm = fx.symbolic_trace(
            f, concrete_args={"x": module.PHWithMeta("key_x"), "d": {"a": tagged, "b": fx.PH}}
        )
        return [
            (n.name, getattr(n, "ph_key", None), getattr(n, "tag", None), getattr(n, "extra", None),
             hasattr(n, "method"))
            for n in gm.graph.nodes
        ] + [module.PHWithMeta().ph_key]  # fmt: skip

    assert placeholders(fxkit) == placeholders(torch.fx)


def test_ph_attributes_do_not_overwrite_what_create_node_set_like_torch_fx() -> None:
    def tags(fx: Any) -> list:
        module = __import__(fx.__name__ + "._symbolic_trace", fromlist=["PHBase"])

        class TaggingTracer(fx.Tracer):
            def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
                node = super().create_node(kind, target, args, kwargs, name)
                node.tag = "from-create-node"
                return node

        class Tagged(module.PHBase):
            def __init__(self, tag: str) -> None:
                super().__init__()
                self.tag, self.other = tag, tag + "-other"

        def f(a, b):
            return a + b

        graph = TaggingTracer().trace(f, concrete_args={"a": Tagged("x"), "b": Tagged("y")})
        return [(n.name, n.tag, getattr(n, "other", None)) for n in graph.nodes]

    assert tags(fxkit) == tags(torch.fx)


def test_a_submodule_compiled_in_place_is_still_seen_as_a_module_call():
    class Inner(nn.Module):
        def forward(self, x):
            return x.relu()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Inner()

        def forward(self, x):
            return self.inner(x) + 1

    def scopes(library):
        net = Net()
        # What module.compile() installs, minus dynamo: __call__ then skips _call_impl.
        net.inner._compiled_call_impl = functools.partial(nn.Module._call_impl, net.inner)
        graph = library.symbolic_trace(net).graph
        return [(node.name, list(node.meta.get("nn_module_stack", {}))) for node in graph.nodes]

    assert scopes(fxkit) == scopes(torch.fx)
    assert ("relu", ["inner"]) in scopes(fxkit)


def test_per_class_getattr_patches_are_removed_after_the_trace():
    model = zoo.get_model("resnet")
    classes = {type(module) for module in model.modules()}
    symbolic_trace(model)
    assert not [cls for cls in classes if "__getattr__" in vars(cls)]


def test_symbolic_trace_module_names_match_torch_fx() -> None:
    import torch.fx._symbolic_trace as oracle

    import fxkit._symbolic_trace as ours

    names = ["PH", "PHBase", "PHWithMeta", "ProxyableClassMeta", "Tracer", "Proxy", "ParameterProxy", "TracerBase",
             "Scope", "ScopeContextManager", "map_aggregate", "is_fx_tracing", "is_fx_symbolic_tracing",
             "is_fx_tracing_warning", "symbolic_trace", "wrap"]  # fmt: skip
    assert [hasattr(ours, name) for name in names] == [hasattr(oracle, name) for name in names]
    assert ours.Proxy is fxkit.Proxy and ours.map_aggregate is fxkit.map_aggregate


def test_proxyable_class_instance_built_from_plain_values_is_a_constant_like_torch_fx() -> None:
    def trace(fx: Any) -> Any:
        class TensorPair(metaclass=fx.ProxyableClassMeta):
            def __init__(self, left, right):
                self.left, self.right = left, right

            def add(self, other):
                return TensorPair(self.left + other.left, self.right + other.right)

        def use_literal(x: TensorPair):
            zeros = TensorPair(torch.zeros(2), torch.zeros(2))
            return x.add(zeros).add(zeros)

        gm = fx.symbolic_trace(use_literal)
        out = gm(TensorPair(torch.ones(2), torch.ones(2)))
        return gm.code.replace(fx.__name__, "FX"), [n.name for n in gm.graph.nodes], out.left.tolist()

    assert trace(fxkit) == trace(torch.fx)


def test_wrapped_methods_to_patch_records_indexing_a_buffer_with_traced_values_like_torch_fx() -> None:
    class GetItem(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pe = nn.Buffer(torch.arange(64.0).reshape(8, 8))

        def forward(self, x):
            return self.pe[:, : x.size(0)] + self.pe[x.size(0)].sum()

    def trace(fx: Any) -> Any:
        registry = __import__(fx.__name__ + "._symbolic_trace", fromlist=["_"])._wrapped_methods_to_patch
        registry.append((torch.Tensor, "__getitem__"))
        try:
            gm = fx.symbolic_trace(GetItem())
        finally:
            registry.pop()
        return gm.code, gm(torch.zeros(3)).tolist()

    assert trace(fxkit) == trace(torch.fx)
