"""make_fx against torch.fx's make_fx: same code, node names, meta keys, attributes and results."""

from __future__ import annotations

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


CASES: Dict[str, Tuple[Callable[..., Any], Callable[[], Tuple[Any, ...]], Dict[str, Any]]] = {
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


@pytest.mark.parametrize("mode", ["real", "fake"])
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
    with pytest.raises(NotImplementedError, match="symbolic"):
        make_fx(torch.sin, tracing_mode="symbolic")
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
