"""A captured decode step driven by a greedy loop gives the tokens of eager ``generate``.

The step (one token in, the cache in, logits and the cache out) is captured once from a real
cache, then run for every new token, its cache growing by one position each time, exactly as a
user's generation loop runs it.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, List

import pytest
import torch
from torch import nn

import fxkit

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.models

PROMPT, NEW_TOKENS, VOCAB = 5, 8, 99


def _llama() -> nn.Module:
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    return transformers.LlamaForCausalLM(config)


def _gpt2() -> nn.Module:
    # A wide initialisation, so that greedy decoding does not repeat one token.
    config = transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64, initializer_range=1.0
    )
    return transformers.GPT2LMHeadModel(config)


def _greedy(step: Callable[..., Any], prompt_output: Any, keyword: str) -> List[int]:
    cache = prompt_output.cache
    token = prompt_output.logits[:, -1:].argmax(-1)
    tokens = [int(token)]
    for _ in range(NEW_TOKENS - 1):
        output = step(input_ids=token, **{keyword: cache})
        cache = output.cache
        token = output.logits[:, -1:].argmax(-1)
        tokens.append(int(token))
    return tokens


@pytest.mark.parametrize("keyword", ["cache", "past_key_values"])
@pytest.mark.parametrize("build", [_llama, _gpt2], ids=["llama", "gpt2"])
def test_captured_decode_step_generates_the_tokens_of_generate(build, keyword):
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    model = build().eval()
    prompt = torch.randint(3, VOCAB, (1, PROMPT), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        generated = model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            do_sample=False,
            pad_token_id=0,
        )[0, PROMPT:].tolist()
        prompt_output = model(input_ids=prompt)
        first = prompt_output.logits[:, -1:].argmax(-1)
        example = {"input_ids": first, keyword: copy.deepcopy(prompt_output.cache)}
        step = fxkit.capture(model, example).graph_module
        tokens = _greedy(step, prompt_output, keyword)
    assert len(set(generated)) > 1, "the model repeats one token: the comparison would be weak"
    assert tokens == generated


def test_a_static_cache_passed_in_is_updated_in_place_by_the_captured_step():
    torch.manual_seed(0)
    model = _llama().eval()
    config = model.config
    prompt = torch.randint(0, VOCAB, (1, PROMPT))
    caches = [transformers.StaticCache(config=config, max_cache_len=16) for _ in range(3)]
    with torch.no_grad():
        for cache in caches:
            model(input_ids=prompt, cache=cache)
        example, eager_cache, captured_cache = caches
        step = fxkit.capture(
            model,
            (),
            {"input_ids": prompt[:, :1], "cache": example, "cache_position": torch.tensor([PROMPT])},
        )
        assert step.leaves == []
        for position in range(PROMPT, PROMPT + 3):
            token, where = torch.randint(0, VOCAB, (1, 1)), torch.tensor([position])
            expected = model(input_ids=token, cache=eager_cache, cache_position=where)
            actual = step.graph_module(input_ids=token, cache=captured_cache, cache_position=where)
            torch.testing.assert_close(actual.logits, expected.logits)
            for mine, theirs in zip(captured_cache.layers, eager_cache.layers):
                torch.testing.assert_close(mine.keys, theirs.keys)
                torch.testing.assert_close(mine.values, theirs.values)
