"""experimental.meta_tracer against torch.fx's MetaTracer (on programs torch.fx's can trace) and
against eager execution."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
from torch.fx.experimental import meta_tracer as oracle

import fxkit as fx
from fxkit.experimental import meta_tracer
from fxkit.experimental.meta_tracer import MetaTracer, symbolic_trace


def shapes_and_devices(x, y):
    if x.shape[0] > 2:
        x = x[:2]
    rows, cols = x.shape
    if x.dim() == 2 and x.dtype == torch.float32:
        x = x * cols
    ones = torch.ones(rows, device=x.device)
    return torch.relu(x).abs() + y.size(1) + ones.view(-1, 1), torch.where(x > 0, x, y[:rows, :cols])


def stateless_module(x):
    return nn.ReLU()(x) + 1


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.mark.parametrize("fn", [shapes_and_devices, stateless_module])
def test_functions_match_torch_fx(fn) -> None:
    inputs = (torch.randn(4, 3), torch.randn(4, 3))
    meta_args = {name: value.to("meta") for name, value in zip(("x", "y"), inputs)}
    meta_args = {name: meta_args[name] for name in list(meta_args)[: fn.__code__.co_argcount]}
    inputs = inputs[: fn.__code__.co_argcount]
    ours = _quiet(symbolic_trace, fn, meta_args=meta_args)
    expected = _quiet(oracle.symbolic_trace, fn, meta_args=meta_args)
    assert ours.code == expected.code
    assert type(ours).__name__ == type(expected).__name__ == fn.__name__
    assert [name for name, _ in ours.named_modules()] == [name for name, _ in expected.named_modules()]
    torch.testing.assert_close(ours(*inputs), fn(*inputs))


class Model(nn.Module):
    """Modules with parameters feeding shape-dependent code: torch.fx's MetaTracer loses the
    meta values at the first module with parameters (its meta run mixes cpu weights and meta
    inputs) and then fails on the shape test; fxkit's computes them."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.ln, self.lin = nn.Embedding(10, 4), nn.LayerNorm(4), nn.Linear(4, 4)
        self.register_buffer("bias", torch.ones(4))

    def forward(self, ids, x):
        h = self.ln(self.emb(ids))
        if h.shape[1] > 2:
            h = h[:, :2]
        batch, steps, _ = h.shape
        y = torch.relu(self.lin(h + x[:, :steps])) + self.bias + torch.zeros(batch, steps, 4)
        if y.size(-1) == 4:
            y = y * 2
        return y.sum(-1) + torch.arange(batch, device=y.device).view(-1, 1)


def test_modules_with_parameters() -> None:
    model, ids, x = Model(), torch.randint(0, 10, (3, 5)), torch.randn(3, 5, 4)
    meta_args = {"ids": ids.to("meta"), "x": x.to("meta")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every meta value is computed: no warning
        gm = symbolic_trace(model, meta_args=meta_args)
    torch.testing.assert_close(gm(ids, x), model(ids, x))
    assert "arange" in gm.code and "h.shape" not in gm.code
    with pytest.raises(torch.fx.proxy.TraceError):
        _quiet(oracle.symbolic_trace, model, meta_args=meta_args)


def test_size_with_a_dimension() -> None:
    """``x.size(0)`` is the size of dimension 0 (torch.fx's MetaProxy returns the whole shape
    for dimension 0)."""

    def first_dim(x):
        return x.reshape(x.size(0), -1) * x.size(1)

    x = torch.randn(2, 3, 4)
    gm = symbolic_trace(first_dim, meta_args={"x": x.to("meta")})
    torch.testing.assert_close(gm(x), first_dim(x))
    assert "reshape(2, -1)" in gm.code and "mul(3)" not in gm.code and "* 3" in gm.code


def test_data_dependent_control_flow_still_fails_and_patches_are_undone() -> None:
    def data_dependent(x):
        if x.sum() > 0:
            return torch.zeros(x.size(0), 2)
        return x

    originals = {name: getattr(torch, name) for name in MetaTracer._TORCH_METHODS_TO_PATCH}
    with pytest.raises(fx.proxy.TraceError):
        symbolic_trace(data_dependent, meta_args={"x": torch.randn(2, device="meta")})
    assert {name: getattr(torch, name) for name in originals} == originals
    with pytest.raises(AssertionError, match="Expected dict for meta_args"):
        symbolic_trace(data_dependent)


def test_missing_meta_values_warn_and_trace_on() -> None:
    def no_meta_for_y(x, y):
        return x + y.size(1)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = symbolic_trace(no_meta_for_y, meta_args={"x": torch.randn(2, 3, device="meta")})
    assert "Could not compute metadata for call_method target size" in str(caught[0].message)
    expected = _quiet(oracle.symbolic_trace, no_meta_for_y, meta_args={"x": torch.randn(2, 3, device="meta")})
    assert ours.code == expected.code


def test_helpers_match_torch_fx() -> None:
    assert set(map(str, meta_tracer.manual_meta_overrides)) == set(map(str, oracle.manual_meta_overrides))
    assert MetaTracer._TORCH_METHODS_TO_PATCH == oracle.MetaTracer._TORCH_METHODS_TO_PATCH
    assert MetaTracer.allow_insert_stateless_mods == oracle.MetaTracer.allow_insert_stateless_mods
    wrapper, target = meta_tracer.gen_constructor_wrapper(torch.zeros)
    assert target is torch.zeros and torch.equal(wrapper(2, 3), torch.zeros(2, 3))
    assert meta_tracer.proxys_to_metas([1, "a"]) == [1, "a"]
    embedding = nn.Embedding(10, 7)
    ids = torch.zeros(2, 5, dtype=torch.long, device="meta")
    for module in (meta_tracer, oracle):
        assert module.embedding_override(embedding, ids).shape == (2, 5, 7)
        assert module.torch_where_override(ids > 0, torch.ones(5), torch.ones(2, 1)).shape == (2, 5)


class UsesItsWeight(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(4, 4))

    def forward(self, x):
        return torch.matmul(x, self.weight).relu()


def test_a_parameter_read_in_forward_is_one_get_attr_with_its_meta() -> None:
    x = torch.randn(2, 4, device="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Could not compute metadata" warning
        ours = meta_tracer.symbolic_trace(UsesItsWeight(), meta_args={"x": x})
    theirs = oracle.symbolic_trace(UsesItsWeight(), meta_args={"x": x})
    assert ours.code == theirs.code
