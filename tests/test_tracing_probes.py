"""Library functions asking "is this being traced?" answer yes for fxkit's traced values, during a
trace only (transformers' ``is_tracing``), as they do for torch.fx's Proxy."""

import warnings

import pytest
import torch
import torch.fx
from torch import nn

import fxkit
from fxkit import tracer as tracer_module
from fxkit.guards import GuardError

transformers = pytest.importorskip("transformers")
from transformers.utils import import_utils  # noqa: E402
from transformers.utils.import_utils import is_tracing  # noqa: E402

BODIES = {name: getattr(import_utils, name).__code__ for name in ("is_tracing", "is_torch_fx_proxy")}


def _bodies_are_back() -> None:
    for name, body in BODIES.items():
        assert getattr(import_utils, name).__code__ is body, name
    assert tracer_module._PATCHES._patches == {}


class AsksIfTraced(nn.Module):
    def forward(self, x):
        plain = torch.ones(2)
        if is_tracing(x):
            return x + 1 + is_tracing(plain)  # a plain tensor gets the library's own answer
        return x - 1


def test_symbolic_trace_gets_the_answer_torch_fx_gets():
    model = AsksIfTraced()
    ours, theirs = fxkit.symbolic_trace(model), torch.fx.symbolic_trace(model)
    assert ours.code == theirs.code
    x = torch.randn(2)
    torch.testing.assert_close(ours(x), theirs(x))
    torch.testing.assert_close(ours(x), x + 1)
    _bodies_are_back()
    assert is_tracing(x) is False and import_utils.is_torch_fx_proxy(x) is False


def test_capture_gets_yes_for_captured_values_and_puts_the_probe_back_after_a_failure():
    captured = fxkit.capture(AsksIfTraced(), (torch.randn(2),))
    x = torch.randn(2)
    torch.testing.assert_close(captured(x), x + 1)
    _bodies_are_back()

    class Fails(nn.Module):
        def forward(self, x):
            assert is_tracing(x)
            raise RuntimeError("model failed")

    with pytest.raises(Exception, match="model failed"):
        fxkit.capture(Fails(), (x,), auto_leaves=False)
    _bodies_are_back()


def _llama():
    config = transformers.LlamaConfig(
        vocab_size=99, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).eval()


def _batch(seed, padding):
    ids = torch.randint(3, 99, (2, 7), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones(2, 7, dtype=torch.long)
    if padding:
        mask[0, -padding:] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("example_padding", [0, 2])
def test_a_captured_causal_lm_is_right_for_any_padding(example_padding):
    model = _llama()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        captured = fxkit.capture(model, _batch(1, example_padding))
        assert not [guard for guard in captured.guards if guard.data_dependent]
        for seed, padding in ((2, 0), (3, 2), (4, 5)):
            expected = model(**_batch(seed, padding)).logits
            torch.testing.assert_close(captured.graph_module(**_batch(seed, padding)).logits, expected)
    _bodies_are_back()


def test_other_values_still_meet_the_guards_they_meet_without_probes():
    class ReadsData(nn.Module):
        def forward(self, x):
            return x * 2 if bool((x > 0).all()) else x  # asks nothing: the read is guarded

    captured = fxkit.capture(ReadsData(), (torch.ones(3),))
    with pytest.raises(GuardError):
        captured(-torch.ones(3))
