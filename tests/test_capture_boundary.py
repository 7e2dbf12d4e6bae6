"""fxkit.capture at the boundary: the call replayed as made, and any structure in and out.

Every captured module is compared with eager execution of the same model, on the example and on
other inputs of the same structure; inputs of another structure must raise a GuardError.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
import typing

import pytest
import torch
import torch.fx
import torch.utils._pytree as pytree
from torch import nn

import fxkit
from fxkit.guards import CaptureError, GuardError, GuardKind

# Every capture test runs with the per-class patches (the fast path) and with nn.Module's.
pytestmark = pytest.mark.usefixtures("both_patch_kinds")


class DictIn(nn.Module):
    def forward(self, batch):
        return batch["a"] * batch["b"]


def test_a_dict_of_tensors_is_an_input_not_a_constant():
    model = DictIn()
    result = fxkit.capture(model, ({"a": torch.ones(2), "b": torch.full((2,), 3.0)},))
    for _ in range(2):
        other = {"a": torch.randn(2), "b": torch.randn(2)}
        torch.testing.assert_close(result(other), model(other))
    [guard] = result.guards
    assert guard.kind is GuardKind.STRUCTURE and guard.argument == "batch"
    with pytest.raises(GuardError, match=r"\['b'\] is missing"):
        result({"a": torch.randn(2)})
    with pytest.raises(GuardError, match=r"\['c'\] was not there during capture"):
        result({"a": torch.randn(2), "b": torch.randn(2), "c": torch.randn(2)})


@dataclasses.dataclass
class Batch:
    x: torch.Tensor
    scale: float
    extra: list


class Mode(enum.Enum):
    ADD = "add"
    MUL = "mul"


class Pair(typing.NamedTuple):
    left: torch.Tensor
    right: torch.Tensor


class Nested(nn.Module):
    def forward(self, batch, pair, mode):
        y = batch.x * batch.scale + batch.extra[0] + batch.extra[1]["k"]
        y = y + pair.left if mode is Mode.ADD else y * pair.right
        return Pair(y, -y), {"sum": y.sum(), "parts": [y, batch.extra[0]]}


def _nested_inputs(scale=2.0, mode=Mode.ADD):
    batch = Batch(torch.randn(2), scale, [torch.randn(2), {"k": torch.randn(2)}])
    return batch, Pair(torch.randn(2), torch.randn(2)), mode


def _assert_same(actual, expected):
    assert type(actual) is type(expected)
    flat_actual, spec_actual = pytree.tree_flatten(actual)
    flat_expected, spec_expected = pytree.tree_flatten(expected)
    assert spec_actual == spec_expected
    for left, right in zip(flat_actual, flat_expected):
        torch.testing.assert_close(left, right)


def test_dataclasses_namedtuples_enums_and_nesting_in_and_out():
    model = Nested()
    result = fxkit.capture(model, _nested_inputs())
    for _ in range(2):
        inputs = _nested_inputs()
        _assert_same(result(*inputs), model(*inputs))
    with pytest.raises(GuardError, match=r"\.scale is 3\.0, expected 2\.0"):
        result(*_nested_inputs(scale=3.0))
    with pytest.raises(GuardError, match="mode == <Mode.ADD"):
        result(*_nested_inputs(mode=Mode.MUL))
    batch, pair, mode = _nested_inputs()
    batch.extra = [torch.randn(2)]
    with pytest.raises(GuardError, match=r"\.extra\[1\] is missing"):
        result(batch, pair, mode)


class ToyLayer:
    def __init__(self):
        self.keys = None
        self.is_initialized = False

    def update(self, keys):
        if not self.is_initialized:
            self.keys = keys
            self.is_initialized = True
        else:
            self.keys = torch.cat([self.keys, keys], dim=0)
        return self.keys


class ToyCache:
    """Like a transformers cache: plain attributes, layers appended lazily, updated in place."""

    def __init__(self):
        self.layers = []

    def update(self, index, keys):
        while len(self.layers) <= index:
            self.layers.append(ToyLayer())
        return self.layers[index].update(keys)


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, x, cache=None):
        if cache is None:
            cache = ToyCache()
        keys = cache.update(0, self.proj(x))
        return keys.sum(0), cache


def test_a_cache_passed_in_is_updated_in_place_as_eager_does():
    model = Decoder().requires_grad_(False)
    prefilled = ToyCache()
    model(torch.randn(3, 4), prefilled)
    result = fxkit.capture(model, (torch.randn(1, 4), copy.deepcopy(prefilled)))
    for _ in range(2):
        x = torch.randn(1, 4)
        eager_cache, captured_cache = copy.deepcopy(prefilled), copy.deepcopy(prefilled)
        expected, returned_eager = model(x, eager_cache)
        actual, returned = result(x, captured_cache)
        torch.testing.assert_close(actual, expected)
        assert returned is captured_cache and returned_eager is eager_cache
        torch.testing.assert_close(captured_cache.layers[0].keys, eager_cache.layers[0].keys)
    with pytest.raises(GuardError, match=r"\.layers\[0\]\.keys is None, expected a tensor"):
        result(torch.randn(1, 4), _empty_layer_cache())


def _empty_layer_cache():
    cache = ToyCache()
    cache.layers.append(ToyLayer())
    return cache


def test_a_cache_built_by_the_model_is_returned_with_its_type_and_an_empty_one_filled_in_place():
    model = Decoder()
    x = torch.randn(2, 4)
    built = fxkit.capture(model, (x,))
    actual, cache = built(x)
    expected, eager_cache = model(x)
    torch.testing.assert_close(actual, expected)
    assert type(cache) is ToyCache and type(cache.layers[0]) is ToyLayer and cache.layers[0].is_initialized
    torch.testing.assert_close(cache.layers[0].keys, eager_cache.layers[0].keys)
    filled = fxkit.capture(model, (x, ToyCache()))
    mine = ToyCache()
    filled(x, mine)
    assert len(mine.layers) == 1 and torch.equal(mine.layers[0].keys, eager_cache.layers[0].keys)


def test_the_example_inputs_are_not_changed_by_the_capture():
    model = Decoder().requires_grad_(False)
    cache = ToyCache()
    model(torch.randn(3, 4), cache)
    before = cache.layers[0].keys
    fxkit.capture(model, (torch.randn(1, 4), cache))
    assert cache.layers[0].keys is before and len(cache.layers) == 1


class Registered:
    """A class registered with torch.utils._pytree: capture flattens it with the registered functions."""

    def __init__(self, a, b):
        self.a, self.b = a, b


pytree.register_pytree_node(
    Registered,
    lambda value: ([value.a, value.b], None),
    lambda children, _: Registered(*children),
)


def test_types_registered_with_pytree_are_honoured():
    def add(pair):
        return pair.a + pair.b

    result = fxkit.capture(add, (Registered(torch.ones(2), torch.ones(2)),))
    assert "fxkit._structure.part_of" in result.graph_module.code
    other = Registered(torch.randn(2), torch.randn(2))
    torch.testing.assert_close(result(other), add(other))


def _renames_deprecated_keyword(forward):
    """Like transformers' deprecation decorators: ``past`` is moved to ``cache`` unless ``cache`` is given."""

    @functools.wraps(forward)
    def wrapper(self, *args, **kwargs):
        if "past" in kwargs:
            past = kwargs.pop("past")
            kwargs.setdefault("cache", past)
        return forward(self, *args, **kwargs)

    return wrapper


class Renamed(nn.Module):
    @_renames_deprecated_keyword
    def forward(self, x, cache=None, past=None):
        return x if cache is None else x + cache


def test_the_call_is_replayed_as_made_without_defaults():
    model = Renamed()
    x, cache = torch.randn(3), torch.randn(3)
    result = fxkit.capture(model, (), {"x": x, "past": cache})
    other_x, other_cache = torch.randn(3), torch.randn(3)
    torch.testing.assert_close(result(x=other_x, past=other_cache), model(x=other_x, past=other_cache))
    assert not torch.equal(model(x=other_x, past=other_cache), other_x)
    with pytest.raises(GuardError, match="cache is not given"):
        result(x=other_x, past=other_cache, cache=None)


def test_a_leaf_that_receives_a_structured_input_is_refused_with_the_reason():
    class Leafy(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Decoder()

        def forward(self, x, cache):
            return self.block(x, cache)[0]

    cache = ToyCache()
    Decoder()(torch.randn(2, 4), cache)
    with pytest.raises(CaptureError, match="holding traced tensors is passed to a call kept as one node"):
        fxkit.capture(Leafy(), (torch.randn(1, 4), cache), leaf_modules=["block"])


def test_symbolic_trace_returns_dataclasses_as_torch_fx_does():
    @dataclasses.dataclass
    class Out:
        a: torch.Tensor
        b: torch.Tensor

    class Model(nn.Module):
        def forward(self, x):
            return Out(x + 1, x * 2)

    ours, theirs = fxkit.symbolic_trace(Model()), torch.fx.symbolic_trace(Model())
    assert ours.code == theirs.code
    out = ours(torch.ones(2))
    assert type(out) is Out and torch.equal(out.b, torch.full((2,), 2.0))


def test_gpt2_decode_step_with_its_cache_matches_eager():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=99, n_positions=64)
    lm = transformers.GPT2LMHeadModel(config).eval()
    ids = torch.randint(0, 99, (1, 5))
    with torch.no_grad():
        default = fxkit.capture(lm, {"input_ids": ids})
        out, ref = default(input_ids=ids), lm(input_ids=ids)
        assert type(out) is type(ref) and type(out.past_key_values) is type(ref.past_key_values)
        torch.testing.assert_close(out.logits, ref.logits)
        for mine, theirs in zip(out.past_key_values.layers, ref.past_key_values.layers):
            torch.testing.assert_close(mine.keys, theirs.keys)
            torch.testing.assert_close(mine.values, theirs.values)
        token = torch.randint(0, 99, (1, 1))
        step = fxkit.capture(
            lm, (), {"input_ids": token, "past_key_values": copy.deepcopy(ref.past_key_values)}
        )
        for _ in range(2):
            eager_cache, captured_cache = (
                copy.deepcopy(ref.past_key_values),
                copy.deepcopy(ref.past_key_values),
            )
            token = torch.randint(0, 99, (1, 1))
            expected = lm(input_ids=token, past_key_values=eager_cache)
            actual = step(input_ids=token, past_key_values=captured_cache)
            torch.testing.assert_close(actual.logits, expected.logits)
            assert actual.past_key_values is captured_cache
            for mine, theirs in zip(captured_cache.layers, eager_cache.layers):
                torch.testing.assert_close(mine.keys, theirs.keys)
                torch.testing.assert_close(mine.values, theirs.values)
        assert not torch.allclose(lm(input_ids=token).logits, actual.logits)


def test_explain_reports_structure_and_left_out_arguments():
    class Model(nn.Module):
        def forward(self, batch, mask=None):
            return batch["a"] * 2

    report = fxkit.capture(Model(), ({"a": torch.ones(2)},)).explain()
    kinds = [entry.summary for entry in report.guards]
    assert "structure" in kinds[0] and "mask is not given" in kinds[1]
    assert "capture once per structure" in report.guards[0].suggestion
    assert "capture with an example that passes it" in report.guards[1].suggestion
    assert "a dict of 1 parts" in str(report)


def test_a_structured_capture_pickles_with_its_guards():
    import pickle

    class Model(nn.Module):
        def forward(self, batch, mask=None):
            return batch["a"] * 2

    result = fxkit.capture(Model(), ({"a": torch.ones(2)},))
    loaded = pickle.loads(pickle.dumps(result.graph_module))
    torch.testing.assert_close(loaded({"a": torch.full((2,), 3.0)}), torch.full((2,), 6.0))
    with pytest.raises(GuardError, match="mask is not given"):
        loaded({"a": torch.ones(2)}, None)
    with pytest.raises(GuardError, match="is missing"):
        loaded({})


def scaled_sum(x, *rest, scale=2.0):
    return x * scale + sum(rest)


class Concatenates(nn.Module):
    def forward(self, *inputs):
        return torch.cat(inputs, 0)


def test_inputs_through_star_args_are_one_structured_input():
    a, b, c = torch.randn(3), torch.randn(3), torch.randn(3)
    result = fxkit.capture(scaled_sum, (a, b, c))
    assert "def forward(self, x, *rest, " in result.graph_module.code
    torch.testing.assert_close(result(b, c, a), scaled_sum(b, c, a))
    with pytest.raises(GuardError, match=r"rest has the example's structure \(a tuple of 2 parts\)"):
        result(a, b)
    model = Concatenates()
    captured = fxkit.capture(model, (a, b))
    torch.testing.assert_close(captured(c, a), model(c, a))
