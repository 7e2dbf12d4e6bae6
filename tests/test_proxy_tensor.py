"""make_fx against torch.fx's make_fx: same code, node names, meta keys, attributes and results."""

from __future__ import annotations

import math
import operator
import warnings
from typing import Any, Callable, Dict, Tuple

import pytest
import torch
from torch._decomp import get_decompositions
from torch.fx.experimental.proxy_tensor import make_fx as torch_make_fx

from fxkit import GraphModule, zoo
from fxkit.experimental.proxy_tensor import make_fx


def matmul_relu_sum(x, y):
    z = x @ y
    return torch.relu(z).sum(dim=0) + x.shape[0], z.t()


def splits_factories_constants(x, *rest):
    a, b = torch.split(x, 2)
    values, indices = torch.max(x, dim=0)
    ones = torch.ones(3) * 2
    constant = torch.tensor([1.0, 2.0, 3.0])
    x = x.clone()
    x.add_(1)
    return a + b, values, indices, ones + constant, x.view(-1)[0]


def dict_out(x, y):
    return {"s": x + y, "p": [x * 2]}


def dict_in(batch):
    return batch["a"] * batch["b"][0]


def detach_twice(x):
    return torch.zeros(2).detach() + x


def like_factories(x):
    made = torch.ones_like(x) + torch.zeros_like(x, dtype=torch.float64).float() + torch.full_like(x, 3)
    return made + torch.ones_like(x).detach()


CASES: Dict[str, Tuple[Callable[..., Any], Callable[[], Tuple[Any, ...]], Dict[str, Any]]] = {
    "like-factories": (like_factories, lambda: (torch.randn(2, 2),), {}),
    "matmul": (matmul_relu_sum, lambda: (torch.randn(3, 3), torch.randn(3, 3)), {}),
    "splits-factories-constants": (
        splits_factories_constants,
        lambda: (torch.randn(4, 3), torch.randn(2)),
        {},
    ),
    "dict-out": (dict_out, lambda: (torch.randn(2), torch.randn(2)), {}),
    "dict-in": (dict_in, lambda: ({"a": torch.randn(2), "b": [torch.randn(2)]},), {}),
    "identity": (lambda x: x, lambda: (torch.randn(2),), {}),
    "tuple-with-constant": (lambda x: (x, x.sin(), 3), lambda: (torch.randn(2),), {}),
    "python-scalar-input": (lambda x, y: x + y, lambda: (torch.randn(2), 3), {}),
    "user-detach-of-factory": (detach_twice, lambda: (torch.randn(2),), {}),
    "decomposition-table": (
        lambda x: torch.nn.functional.silu(x),
        lambda: (torch.randn(3),),
        {"decomposition_table": get_decompositions([torch.ops.aten.silu])},
    ),
    "linear-module": (torch.nn.Linear(3, 2), lambda: (torch.randn(4, 3),), {}),
    "batchnorm-training": (
        torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)),
        lambda: (torch.randn(4, 3),),
        {},
    ),
}


def _trace(make: Callable[..., Any], case: str, mode: str) -> Any:
    fn, inputs, options = CASES[case]
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return make(fn, tracing_mode=mode, **options)(*inputs())
        except Exception as error:  # compared below: both sides must fail the same way
            return error


def _summary(gm: Any) -> Any:
    return (
        gm.code,
        [(n.name, n.op, str(n.target), sorted(n.meta)) for n in gm.graph.nodes],
        [name for name, _ in gm.named_parameters()],
        [name for name, _ in gm.named_buffers()],
    )


@pytest.mark.parametrize("mode", ["real", "fake", "symbolic"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_same_graph_as_torch_fx(case: str, mode: str) -> None:
    expected = _trace(torch_make_fx, case, mode)
    actual = _trace(make_fx, case, mode)
    if isinstance(expected, Exception):
        assert isinstance(actual, type(expected)), (expected, actual)
        return
    assert isinstance(actual, GraphModule)
    assert _summary(actual) == _summary(expected)


@pytest.mark.parametrize("case", sorted(CASES))
def test_graph_computes_what_the_function_computes(case: str) -> None:
    fn, inputs, _ = CASES[case]
    gm = _trace(make_fx, case, "real")
    if isinstance(gm, Exception):
        pytest.skip(f"not traceable in torch.fx either: {gm}")
    torch.manual_seed(1)
    args = inputs()
    torch.manual_seed(1)
    expected = fn(*inputs())
    torch.testing.assert_close(gm(*args), expected)


@pytest.mark.parametrize("mode", ["real", "fake"])
@pytest.mark.parametrize("name", zoo.list_models())
def test_zoo_models_match_torch_fx(name: str, mode: str) -> None:
    model = zoo.get_model(name).eval()
    args = zoo.example_inputs(name)
    expected = torch_make_fx(model, tracing_mode=mode, _allow_non_fake_inputs=True)(*args)
    actual = make_fx(model, tracing_mode=mode, _allow_non_fake_inputs=True)(*args)
    assert _summary(actual) == _summary(expected)
    if mode == "real":
        torch.testing.assert_close(actual(*args), model(*args))


def test_fake_mode_reads_no_data_and_keeps_shapes() -> None:
    gm = make_fx(lambda x: (x @ x.t()).relu(), tracing_mode="fake")(torch.empty(1000, 64))
    (node,) = [n for n in gm.graph.nodes if n.name == "relu"]
    assert node.meta["val"].shape == (1000, 1000)
    assert node.meta["tensor_meta"].dtype == torch.float32


def test_value_of_a_traced_tensor_is_refused_with_the_node_named() -> None:
    with pytest.raises(RuntimeError, match="get value out of a tracing tensor.*sum_1"):
        make_fx(lambda x: x * x.sum().item())(torch.ones(3))
    with pytest.raises(RuntimeError, match="tracing tensor"):
        torch_make_fx(lambda x: x * x.sum().item())(torch.ones(3))


def test_data_dependent_value_baked_in_only_when_asked() -> None:
    gm = make_fx(lambda x: x * x.sum().item(), _error_on_data_dependent_ops=False)(torch.ones(3))
    torch.testing.assert_close(gm(torch.ones(3)), torch.full((3,), 3.0))


def test_wrong_argument_count_is_reported_as_torch_fx_does() -> None:
    def two(a, b=None):
        return a

    for make in (make_fx, torch_make_fx):
        with pytest.raises(RuntimeError, match="expected 2 arguments but got 1"):
            make(two)(torch.ones(1))


def test_unsupported_modes_are_refused_with_a_reason() -> None:
    with pytest.raises(NotImplementedError, match="pre_dispatch"):
        make_fx(torch.sin, pre_dispatch=True)
    with pytest.raises(AssertionError, match="Unexpected tracing type"):
        make_fx(torch.sin, tracing_mode="nope")


def test_no_mode_left_active_after_an_error() -> None:
    from torch.utils._python_dispatch import _get_current_dispatch_mode

    def fails(x):
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        make_fx(fails, tracing_mode="fake")(torch.ones(2))
    assert _get_current_dispatch_mode() is None


# ---------------------------------------------------------------- tracing_mode="symbolic"

SYMBOLIC: Dict[str, Tuple[Callable[..., Any], Tuple[Tuple[int, ...], ...], Tuple[Tuple[int, ...], ...]]] = {
    # name: (function, example input shapes, shapes of other inputs the graph must handle)
    "view-batch": (lambda x: x.view(x.shape[0], -1), ((4, 6),), ((3, 10),)),
    "new-zeros-size": (lambda x: x.new_zeros(x.size(1)), ((3, 5),), ((2, 7),)),
    "cat-dynamic-dim": (lambda x, y: torch.cat([x, y], 0), ((2, 3), (4, 3)), ((5, 2), (1, 2))),
    "cat-then-view": (
        lambda x, y: torch.cat([x, y], 1).view(x.shape[0], -1),
        ((4, 5), (4, 3)),
        ((2, 3), (2, 6)),
    ),
    "reduction": (lambda x: x.sum(0) * x.amax(1).mean(), ((3, 4),), ((6, 2),)),
    "size-arithmetic": (lambda x: x.view(x.shape[0] * 2, -1) + 1, ((4, 6),), ((3, 8),)),
    "reflected-floordiv-add": (
        lambda x: x.new_zeros(2 * x.shape[0], x.shape[1] // 2 + 1),
        ((3, 5),),
        ((5, 9),),
    ),
    "sizes-of-two-inputs": (
        lambda x, y: x.new_zeros(y.shape[0] + x.shape[1]),
        ((3, 5), (2,)),
        ((4, 1), (7,)),
    ),
    "product-of-sizes": (lambda x: x.new_zeros(x.shape[0] * x.shape[1]), ((4, 5),), ((2, 3),)),
    "factory-and-size-output": (lambda x: (torch.ones(x.shape[0], 3), x.shape[0] - 1), ((4, 5),), ((7, 5),)),
    "unused-size-arithmetic": (lambda x: (x.shape[0] * 2, x.new_zeros(x.shape[1]))[1], ((4, 6),), ((2, 3),)),
    "size-of-a-result": (lambda x: x.sum(0).new_zeros(x.sum(0).shape[0]), ((4, 6),), ((2, 3),)),
    "expand-clone": (lambda x: x.expand(x.shape[0], x.shape[1]).clone(), ((4, 6),), ((2, 3),)),
    "split-unique": (lambda x: torch.split(x, 2)[0].nonzero().unique(), ((5,),), ((7,),)),
    "guarded-comparison": (
        lambda x: x.new_zeros(x.shape[0] - 1) if x.shape[0] > 2 else x,
        ((4, 6),),
        ((5, 2),),
    ),
    "linear-3d-size-made-in-cpp": (
        lambda x, w: torch.nn.functional.linear(x, w),
        ((2, 8, 32), (4, 32)),
        ((3, 5, 7), (2, 7)),
    ),
    # Sizes as floats and booleans become graph values too (not the example's constants).
    "float-size-arithmetic": (lambda x: x * (x.shape[0] / 2.0) + (x.shape[1] + 0.5), ((6, 4),), ((3, 5),)),
    "int-true-division": (lambda x: x * (x.shape[0] / x.shape[1]), ((6, 4),), ((3, 5),)),
    "size-comparison-as-value": (lambda x: x * (x.shape[0] == x.shape[1]), ((6, 4),), ((3, 3),)),
    "pow-max-min": (
        lambda x: x.new_zeros(
            x.shape[1] ** 2 + torch.sym_max(x.shape[0], x.shape[1]) - torch.sym_min(*x.shape)
        ),
        ((6, 4),),
        ((3, 5),),
    ),
    "ceil-floor-trunc": (
        lambda x: x.new_zeros(
            math.ceil(x.shape[0] / 4) + math.floor(x.shape[1] / 3) + torch.sym_int(x.shape[0] / 5)
        ),
        ((6, 4),),
        ((11, 7),),
    ),
    "neg-lshift": (lambda x: x.new_zeros(3 - (-x.shape[0]) + (x.shape[1] << 1)), ((6, 4),), ((3, 5),)),
    # Arithmetic done in C++ (chunk's split size, narrow's end) is recorded as it happens.
    "chunk-split-size-made-in-cpp": (lambda x: [c.sum(0) for c in x.chunk(3)], ((6, 4),), ((9, 2),)),
    "narrow-end-made-in-cpp": (lambda x: x.narrow(0, 1, x.shape[0] - 1), ((5, 2),), ((7, 3),)),
    "numel-stride-offset": (
        lambda x: x.new_zeros(x.numel() + x.stride(0) + x[1:].storage_offset()),
        ((6, 4),),
        ((3, 5),),
    ),
}


def _symbolic_summary(gm: Any) -> Any:
    meta = [(n.name, n.op, str(n.target), sorted(n.meta), str(n.meta.get("val"))) for n in gm.graph.nodes]
    return gm.code, meta, [str(n.meta.get("tensor_meta")) for n in gm.graph.nodes]


@pytest.mark.parametrize("case", sorted(SYMBOLIC))
def test_symbolic_graph_matches_torch_fx_and_runs_on_other_sizes(case: str) -> None:
    fn, shapes, other_shapes = SYMBOLIC[case]
    example = [torch.randn(shape) for shape in shapes]
    expected = torch_make_fx(fn, tracing_mode="symbolic")(*example)
    actual = make_fx(fn, tracing_mode="symbolic")(*example)
    assert _symbolic_summary(actual) == _symbolic_summary(expected)
    other = [torch.randn(shape) for shape in other_shapes]
    torch.testing.assert_close(actual(*other), fn(*other))
    torch.testing.assert_close(actual(*other), expected(*other))


def test_symbolic_meta_holds_fake_tensors_and_symints() -> None:
    from torch._subclasses.fake_tensor import FakeTensor

    gm = make_fx(lambda x: x.new_zeros(x.shape[0] + 1), tracing_mode="symbolic")(torch.randn(4))
    nodes = {n.name: n for n in gm.graph.nodes}
    assert nodes["sym_size_int"].target is torch.ops.aten.sym_size.int
    assert nodes["add"].target is operator.add
    assert isinstance(nodes["add"].meta["val"], torch.SymInt)
    assert isinstance(nodes["new_zeros"].meta["val"], FakeTensor)
    assert isinstance(nodes["new_zeros"].meta["val"].shape[0], torch.SymInt)
    assert gm.shape_env is nodes["add"].meta["val"].node.shape_env


def test_symbolic_trace_leaves_symint_arithmetic_as_it_was() -> None:
    from torch.fx.experimental.sym_node import SymNode

    methods = {name: SymNode.__dict__.get(name) for name in ("add", "mul", "floordiv", "sym_float", "eq")}

    def fails(x):
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        make_fx(fails, tracing_mode="symbolic")(torch.ones(2))
    make_fx(lambda x: x.view(x.shape[0] * 1, -1), tracing_mode="symbolic")(torch.ones(2, 2))
    assert {name: SymNode.__dict__.get(name) for name in methods} == methods


def test_symbolic_size_of_a_data_dependent_result_is_read_from_that_result() -> None:
    def fn(x):
        y = x.nonzero()
        return y.new_zeros(y.shape[0])

    gm = make_fx(fn, tracing_mode="symbolic")(torch.randn(5))
    expected = torch_make_fx(fn, tracing_mode="symbolic")(torch.randn(5))
    assert _symbolic_summary(gm) == _symbolic_summary(expected)
    bindings = [n.meta.get("unbacked_bindings") for n in gm.graph.nodes]
    assert list(map(str, bindings)) == [str(n.meta.get("unbacked_bindings")) for n in expected.graph.nodes]
    x = torch.tensor([0.0, 1.0, 0.0, 2.0])
    torch.testing.assert_close(gm(x), fn(x))


@pytest.mark.parametrize("name", zoo.list_models())
def test_symbolic_zoo_models_run_ops_of_torch_fx_and_other_batch_sizes(name: str) -> None:
    # Names of size nodes may differ: torch.fx also records size arithmetic done in C++ kernels.
    model = zoo.get_model(name).eval()
    args = zoo.example_inputs(name)
    expected = torch_make_fx(model, tracing_mode="symbolic", _allow_non_fake_inputs=True)(*args)
    actual = make_fx(model, tracing_mode="symbolic", _allow_non_fake_inputs=True)(*args)

    def tensor_ops(gm: Any) -> Any:
        return [
            n.target
            for n in gm.graph.nodes
            if isinstance(n.target, torch._ops.OpOverload) and n.target.name() != "aten::sym_size.int"
        ]

    assert tensor_ops(actual) == tensor_ops(expected)
    bigger = [torch.cat([a, a[:1]]) for a in args]  # one more batch row
    torch.testing.assert_close(actual(*bigger), model(*bigger))


def test_symbolic_traces_on_several_threads_record_only_their_own_size_arithmetic() -> None:
    import threading

    def halves(x):
        return x.view(x.shape[0] // 2, -1)

    def doubles(x):
        return x.new_zeros(x.shape[0] * 2 + 1)

    methods = {name: value for name, value in vars(torch.SymInt).items() if name.startswith("__")}
    expected = {
        fn.__name__: make_fx(fn, tracing_mode="symbolic")(torch.randn(4, 3)).code for fn in (halves, doubles)
    }
    codes: dict = {"halves": [], "doubles": []}

    def work(fn) -> None:
        for _ in range(10):
            codes[fn.__name__].append(make_fx(fn, tracing_mode="symbolic")(torch.randn(4, 3)).code)

    threads = [threading.Thread(target=work, args=(fn,)) for fn in (halves, doubles, halves, doubles)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(code == expected[name] for name, found in codes.items() for code in found)
    assert {name: value for name, value in vars(torch.SymInt).items() if name.startswith("__")} == methods


def _backed_symint(value: int) -> torch.SymInt:
    """A SymInt with a hint, as callers build one to trace with a symbolic index."""
    from torch._dynamo.source import ConstantSource
    from torch.fx.experimental.sym_node import SymNode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    shape_env = ShapeEnv()
    symbol = shape_env.create_symbol(value, source=ConstantSource("__testing_only0"))
    return torch.SymInt(SymNode(symbol, shape_env, int, hint=value))


def select_by_index(x, index):
    return torch.select(x, 0, index).clone().add(1), index


def test_symint_input_in_real_mode_becomes_a_placeholder_as_in_torch_fx() -> None:
    x = torch.randn(4, 3)
    ours = make_fx(select_by_index)(x, _backed_symint(2))
    oracle = torch_make_fx(select_by_index)(x, _backed_symint(2))
    assert _summary(ours) == _summary(oracle)
    for index in (1, 3):
        torch.testing.assert_close(ours(x, index), oracle(x, index))
