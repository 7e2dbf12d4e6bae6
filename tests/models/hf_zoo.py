"""Hugging Face ``transformers`` models built from tiny configs with random weights.

Nothing is downloaded: every model is built from a config object. Each entry gives the model, an
example input, a second input of the same shapes, and inputs that take another path through the
program (used to check that a guard fires). Configs are tiny (hidden 32, 2 layers, vocab 99) so the
whole zoo builds and runs in seconds.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Tuple

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from torch import nn

from .zoo_entry import ZooEntry

VOCAB = 99
BATCH, SEQ = 2, 7

_TEXT = dict(
    vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
)
_DECODER = dict(
    _TEXT, num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2
)


def _transformers() -> Any:
    import transformers

    transformers.logging.set_verbosity_error()
    return transformers


def _from_config(model_class: str, config_class: str, **config: Any) -> Callable[[], nn.Module]:
    """A builder of ``transformers.<model_class>`` from ``<config_class>(**config)``, random weights."""

    def build() -> nn.Module:
        t = _transformers()
        return getattr(t, model_class)(getattr(t, config_class)(**config))

    build.__name__ = f"_{model_class}"
    return build


def _ids(seed: int, batch: int = BATCH, seq: int = SEQ) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB, (batch, seq), generator=generator)


def _floats(seed: int, *shape: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator)


def _text(seed: int, **extra: Any) -> Dict[str, Any]:
    return {"input_ids": _ids(seed), **extra}


def _padded_mask() -> torch.Tensor:
    mask = torch.ones(BATCH, SEQ, dtype=torch.long)
    mask[0, -2:] = 0
    return mask


def _text_entry(name: str, category: str, make: Callable[[], nn.Module], **extra: Any) -> ZooEntry:
    """A model taking ``input_ids``; the other path is an explicit padding ``attention_mask``."""
    return ZooEntry(
        name=name,
        category=category,
        build=make,
        example=lambda: _text(1, **extra),
        second=lambda: _text(2, **extra),
        other_paths=lambda: [
            _text(3, attention_mask=_padded_mask(), **extra),
            {**_text(4, **extra), "input_ids": _ids(4, seq=SEQ + 3)},
        ],
    )


# --------------------------------------------------------------------------- text encoders


_bert = _from_config("BertModel", "BertConfig", **_TEXT)


_roberta = _from_config("RobertaModel", "RobertaConfig", **_TEXT, pad_token_id=1)


_distilbert = _from_config(
    "DistilBertModel", "DistilBertConfig", vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=64
)


_albert = _from_config("AlbertModel", "AlbertConfig", **_TEXT, embedding_size=16)


_electra = _from_config("ElectraModel", "ElectraConfig", **_TEXT, embedding_size=16)


_xlm_roberta = _from_config("XLMRobertaModel", "XLMRobertaConfig", **_TEXT, pad_token_id=1)


_bert_classifier = _from_config("BertForSequenceClassification", "BertConfig", **_TEXT, num_labels=3)


_deberta_v2 = _from_config(
    "DebertaV2Model",
    "DebertaV2Config",
    **_TEXT,
    relative_attention=True,
    position_buckets=8,
    pos_att_type=["p2c", "c2p"],
)


_mpnet = _from_config("MPNetModel", "MPNetConfig", **_TEXT)


_funnel = _from_config(
    "FunnelModel",
    "FunnelConfig",
    vocab_size=VOCAB,
    d_model=32,
    n_head=4,
    d_head=8,
    d_inner=64,
    block_sizes=[1, 1],
    num_decoder_layers=1,
)


_convbert = _from_config("ConvBertModel", "ConvBertConfig", **_TEXT, embedding_size=32)


_clip_text = _from_config("CLIPTextModel", "CLIPTextConfig", **_TEXT, max_position_embeddings=64)


# --------------------------------------------------------------------------- decoders


_gpt2 = _from_config(
    "GPT2LMHeadModel",
    "GPT2Config",
    vocab_size=VOCAB,
    n_embd=32,
    n_layer=2,
    n_head=4,
    n_positions=64,
    bos_token_id=1,
    eos_token_id=2,
)


_llama = _from_config("LlamaForCausalLM", "LlamaConfig", **_DECODER)


_mistral = _from_config("MistralForCausalLM", "MistralConfig", **_DECODER, sliding_window=4)


_qwen2 = _from_config("Qwen2ForCausalLM", "Qwen2Config", **_DECODER)


_phi = _from_config("PhiForCausalLM", "PhiConfig", **_DECODER)


_gpt_neox = _from_config(
    "GPTNeoXForCausalLM", "GPTNeoXConfig", **{k: v for k, v in _DECODER.items() if k != "num_key_value_heads"}
)


def _opt() -> nn.Module:
    t = _transformers()
    return t.OPTForCausalLM(
        t.OPTConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            ffn_dim=64,
            max_position_embeddings=64,
            word_embed_proj_dim=32,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
        )
    )


_gemma = _from_config("GemmaForCausalLM", "GemmaConfig", **_DECODER, head_dim=8)


_bloom = _from_config(
    "BloomForCausalLM", "BloomConfig", vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=4
)


_falcon_alibi = _from_config(
    "FalconForCausalLM",
    "FalconConfig",
    vocab_size=VOCAB,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    alibi=True,
)


_gptj = _from_config(
    "GPTJForCausalLM",
    "GPTJConfig",
    vocab_size=VOCAB,
    n_embd=32,
    n_layer=2,
    n_head=4,
    rotary_dim=4,
    n_positions=64,
)


def _gpt_neo() -> nn.Module:
    t = _transformers()
    return t.GPTNeoForCausalLM(
        t.GPTNeoConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_layers=2,
            num_heads=4,
            attention_types=[[["global", "local"], 1]],
            window_size=4,
            max_position_embeddings=64,
        )
    )


_codegen = _from_config(
    "CodeGenForCausalLM",
    "CodeGenConfig",
    vocab_size=VOCAB,
    n_embd=32,
    n_layer=2,
    n_head=4,
    rotary_dim=4,
    n_positions=64,
)


_stablelm = _from_config("StableLmForCausalLM", "StableLmConfig", **_DECODER)


_phi3 = _from_config("Phi3ForCausalLM", "Phi3Config", **_DECODER)


_gemma2 = _from_config("Gemma2ForCausalLM", "Gemma2Config", **_DECODER, head_dim=8, sliding_window=4)


_mpt = _from_config(
    "MptForCausalLM", "MptConfig", vocab_size=VOCAB, d_model=32, n_layers=2, n_heads=4, max_seq_len=64
)


_mixtral = _from_config(
    "MixtralForCausalLM", "MixtralConfig", **_DECODER, num_local_experts=4, num_experts_per_tok=2
)


def _qwen2_moe() -> nn.Module:
    t = _transformers()
    return t.Qwen2MoeForCausalLM(
        t.Qwen2MoeConfig(
            **_DECODER,
            num_experts=4,
            num_experts_per_tok=2,
            moe_intermediate_size=32,
            shared_expert_intermediate_size=32,
        )
    )


def _granite_moe() -> nn.Module:
    # Its forward takes use_cache only through **kwargs.
    t = _transformers()
    return t.GraniteMoeForCausalLM(t.GraniteMoeConfig(**_DECODER, num_local_experts=4, num_experts_per_tok=2))


class DecoderWithCache(nn.Module):
    """A causal LM stepping one token past a cache given as flat key/value tensors.

    The cache object of transformers is built inside ``forward`` from plain tensors, and the new
    keys/values come back as plain tensors, so the captured graph has tensor inputs and outputs.
    """

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(
        self, input_ids: torch.Tensor, past_keys: torch.Tensor, past_values: torch.Tensor
    ) -> Tuple[torch.Tensor, ...]:
        from transformers import DynamicCache

        cache = DynamicCache(config=self.lm.config)
        for layer in range(past_keys.shape[0]):
            cache.update(past_keys[layer], past_values[layer], layer)
        out = self.lm(input_ids=input_ids, cache=cache, use_cache=True)
        keys = torch.stack([layer.keys for layer in out.cache.layers])
        values = torch.stack([layer.values for layer in out.cache.layers])
        return out.logits, keys, values


def _cache_inputs(seed: int, past: int = 5, step: int = 1) -> Dict[str, Any]:
    # 2 layers, 2 key/value heads of width 8.
    return {
        "input_ids": _ids(seed, seq=step),
        "past_keys": _floats(seed + 100, 2, BATCH, 2, past, 8),
        "past_values": _floats(seed + 200, 2, BATCH, 2, past, 8),
    }


def _cached_entry(name: str, make: Callable[[], nn.Module]) -> ZooEntry:
    return ZooEntry(
        name=name,
        category="decoder+cache",
        build=lambda: DecoderWithCache(make()),
        example=lambda: _cache_inputs(1),
        second=lambda: _cache_inputs(2),
        other_paths=lambda: [_cache_inputs(3, past=5, step=3), _cache_inputs(4, past=9)],
    )


# --------------------------------------------------------------------------- encoder-decoders


def _t5() -> nn.Module:
    t = _transformers()
    return t.T5ForConditionalGeneration(
        t.T5Config(
            vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, decoder_start_token_id=0
        )
    )


def _bart() -> nn.Module:
    t = _transformers()
    return t.BartForConditionalGeneration(
        t.BartConfig(
            vocab_size=VOCAB,
            d_model=32,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            max_position_embeddings=64,
        )
    )


def _bart_like(model_class: str, config_class: str, **extra: Any) -> nn.Module:
    t = _transformers()
    config = getattr(t, config_class)(
        vocab_size=VOCAB,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
        **extra,
    )
    return getattr(t, model_class)(config)


def _long_t5() -> nn.Module:
    t = _transformers()
    return t.LongT5ForConditionalGeneration(
        t.LongT5Config(
            vocab_size=VOCAB,
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            decoder_start_token_id=0,
            local_radius=2,
            global_block_size=4,
        )
    )


def _seq2seq(seed: int, seq: int = SEQ, **extra: Any) -> Dict[str, Any]:
    return {"input_ids": _ids(seed), "decoder_input_ids": _ids(seed + 50, seq=seq - 2), **extra}


def _seq2seq_entry(name: str, make: Callable[[], nn.Module], **extra: Any) -> ZooEntry:
    return ZooEntry(
        name=name,
        category="encoder-decoder",
        build=make,
        example=lambda: _seq2seq(1, **extra),
        second=lambda: _seq2seq(2, **extra),
        other_paths=lambda: [
            _seq2seq(3, attention_mask=_padded_mask(), **extra),
            _seq2seq(4, seq=SEQ + 4, **extra),
        ],
    )


# --------------------------------------------------------------------------- vision


_vit = _from_config(
    "ViTModel",
    "ViTConfig",
    **{k: v for k, v in _TEXT.items() if k != "vocab_size"},
    image_size=16,
    patch_size=4,
)


_deit = _from_config(
    "DeiTModel",
    "DeiTConfig",
    **{k: v for k, v in _TEXT.items() if k != "vocab_size"},
    image_size=16,
    patch_size=4,
)


_resnet = _from_config(
    "ResNetModel", "ResNetConfig", embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic"
)


_convnext = _from_config(
    "ConvNextModel", "ConvNextConfig", hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, patch_size=2
)


_swin = _from_config(
    "SwinModel",
    "SwinConfig",
    image_size=32,
    patch_size=4,
    embed_dim=16,
    depths=[1, 1],
    num_heads=[2, 2],
    window_size=4,
)


_mobilenet_v2 = _from_config("MobileNetV2Model", "MobileNetV2Config", image_size=32, depth_multiplier=0.25)


_VISION_TEXT = {k: v for k, v in _TEXT.items() if k != "vocab_size"}


_beit = _from_config(
    "BeitModel", "BeitConfig", **_TEXT, image_size=16, patch_size=4, use_relative_position_bias=True
)


_dinov2 = _from_config("Dinov2Model", "Dinov2Config", **_VISION_TEXT, image_size=16, patch_size=4)


_clip_vision = _from_config(
    "CLIPVisionModel", "CLIPVisionConfig", **_VISION_TEXT, image_size=16, patch_size=4
)


_siglip_vision = _from_config(
    "SiglipVisionModel", "SiglipVisionConfig", **_VISION_TEXT, image_size=16, patch_size=4
)


_yolos = _from_config(
    "YolosModel", "YolosConfig", **_VISION_TEXT, image_size=[16, 16], patch_size=4, num_detection_tokens=2
)


def _segformer() -> nn.Module:
    t = _transformers()
    return t.SegformerModel(
        t.SegformerConfig(
            num_encoder_blocks=2,
            depths=[1, 1],
            sr_ratios=[2, 1],
            hidden_sizes=[8, 16],
            num_attention_heads=[1, 2],
            patch_sizes=[7, 3],
            strides=[4, 2],
            mlp_ratios=[2, 2],
        )
    )


def _poolformer() -> nn.Module:
    t = _transformers()
    return t.PoolFormerModel(
        t.PoolFormerConfig(
            num_encoder_blocks=2,
            depths=[1, 1],
            hidden_sizes=[8, 16],
            patch_sizes=[7, 3],
            strides=[4, 2],
            padding=[2, 1],
        )
    )


_regnet = _from_config(
    "RegNetModel", "RegNetConfig", embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], groups_width=8
)


_efficientnet = _from_config(
    "EfficientNetModel",
    "EfficientNetConfig",
    image_size=32,
    width_coefficient=0.1,
    depth_coefficient=0.1,
    hidden_dim=128,
)


_convnext_v2 = _from_config(
    "ConvNextV2Model", "ConvNextV2Config", hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, patch_size=2
)


_mobilevit = _from_config(
    "MobileViTModel",
    "MobileViTConfig",
    image_size=32,
    hidden_sizes=[16, 16, 16],
    neck_hidden_sizes=[8, 8, 8, 8, 8, 8, 16],
)


def _levit() -> nn.Module:
    t = _transformers()
    return t.LevitModel(
        t.LevitConfig(
            image_size=32,
            hidden_sizes=[16, 24, 32],
            num_attention_heads=[1, 2, 2],
            depths=[1, 1, 1],
            key_dim=[8, 8, 8],
            patch_size=16,
        )
    )


def _pixels(seed: int, size: int, channels: int = 3) -> Dict[str, Any]:
    return {"pixel_values": _floats(seed, BATCH, channels, size, size)}


def _vision_entry(name: str, make: Callable[[], nn.Module], size: int) -> ZooEntry:
    return ZooEntry(
        name=name,
        category="vision",
        build=make,
        example=lambda: _pixels(1, size),
        second=lambda: _pixels(2, size),
        other_paths=lambda: [_pixels(3, size, channels=4), _pixels(4, size * 2)],
    )


def _vision_flag_entry(name: str, make: Callable[[], nn.Module], size: int, flag: str) -> ZooEntry:
    """A vision model whose other path is a keyword flag (these have no data-dependent branch to guard)."""
    return ZooEntry(
        name=name,
        category="vision",
        build=make,
        example=lambda: _pixels(1, size),
        second=lambda: _pixels(2, size),
        other_paths=lambda: [_pixels(3, size * 2), {**_pixels(4, size * 2), flag: True}],
    )


# --------------------------------------------------------------------------- audio


def _whisper() -> nn.Module:
    t = _transformers()
    return t.WhisperForConditionalGeneration(
        t.WhisperConfig(
            vocab_size=VOCAB,
            d_model=32,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            num_mel_bins=8,
            max_source_positions=16,
            max_target_positions=32,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            decoder_start_token_id=1,
            suppress_tokens=None,
            begin_suppress_tokens=None,
        )
    )


def _whisper_inputs(seed: int, frames: int = 32, seq: int = 5) -> Dict[str, Any]:
    return {
        "input_features": _floats(seed, BATCH, 8, frames),
        "decoder_input_ids": _ids(seed + 50, seq=seq),
        "use_cache": False,
    }


def _wav2vec2() -> nn.Module:
    t = _transformers()
    return t.Wav2Vec2Model(
        t.Wav2Vec2Config(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            conv_dim=(16, 16),
            conv_stride=(5, 2),
            conv_kernel=(10, 3),
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=4,
            do_stable_layer_norm=False,
        )
    )


def _hubert() -> nn.Module:
    t = _transformers()
    return t.HubertModel(
        t.HubertConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            conv_dim=(16, 16),
            conv_stride=(5, 2),
            conv_kernel=(10, 3),
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=4,
        )
    )


_AUDIO = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    conv_dim=(16, 16),
    conv_stride=(5, 2),
    conv_kernel=(10, 3),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
)


_data2vec_audio = _from_config("Data2VecAudioModel", "Data2VecAudioConfig", **_AUDIO)


_sew = _from_config("SEWModel", "SEWConfig", **_AUDIO, squeeze_factor=2)


_unispeech = _from_config("UniSpeechModel", "UniSpeechConfig", **_AUDIO)


def _waveform(seed: int, samples: int = 400) -> Dict[str, Any]:
    return {"input_values": _floats(seed, BATCH, samples)}


def _audio_entry(name: str, make: Callable[[], nn.Module]) -> ZooEntry:
    return ZooEntry(
        name=name,
        category="audio",
        build=make,
        example=lambda: _waveform(1),
        second=lambda: _waveform(2),
        other_paths=lambda: [
            {**_waveform(3), "attention_mask": _padded_mask_audio()},
            _waveform(4, samples=1000),
        ],
    )


def _padded_mask_audio() -> torch.Tensor:
    mask = torch.ones(BATCH, 400, dtype=torch.long)
    mask[0, -100:] = 0
    return mask


# --------------------------------------------------------------------------- the list


def hf_entries() -> List[ZooEntry]:
    """Every transformers architecture of the zoo, in a fixed order."""
    return [
        _text_entry("bert", "text-encoder", _bert),
        _text_entry("bert-classifier", "text-encoder", _bert_classifier),
        _text_entry("roberta", "text-encoder", _roberta),
        _text_entry("xlm-roberta", "text-encoder", _xlm_roberta),
        _text_entry("distilbert", "text-encoder", _distilbert),
        _text_entry("albert", "text-encoder", _albert),
        _text_entry("electra", "text-encoder", _electra),
        _text_entry("deberta-v2", "text-encoder", _deberta_v2),
        _text_entry("mpnet", "text-encoder", _mpnet),
        _text_entry("funnel", "text-encoder", _funnel),
        _text_entry("convbert", "text-encoder", _convbert),
        _text_entry("clip-text", "text-encoder", _clip_text),
        _text_entry("gpt2", "decoder", _gpt2, use_cache=False),
        _text_entry("llama", "decoder", _llama, use_cache=False),
        _text_entry("mistral", "decoder", _mistral, use_cache=False),
        _text_entry("qwen2", "decoder", _qwen2, use_cache=False),
        _text_entry("phi", "decoder", _phi, use_cache=False),
        _text_entry("gpt-neox", "decoder", _gpt_neox, use_cache=False),
        _text_entry("opt", "decoder", _opt, use_cache=False),
        _text_entry("gemma", "decoder", _gemma, use_cache=False),
        _text_entry("bloom", "decoder", _bloom, use_cache=False),
        _text_entry("falcon-alibi", "decoder", _falcon_alibi, use_cache=False),
        _text_entry("mpt", "decoder", _mpt, use_cache=False),
        _text_entry("gpt-j", "decoder", _gptj, use_cache=False),
        _text_entry("gpt-neo", "decoder", _gpt_neo, use_cache=False),
        _text_entry("codegen", "decoder", _codegen, use_cache=False),
        _text_entry("stablelm", "decoder", _stablelm, use_cache=False),
        _text_entry("phi3", "decoder", _phi3, use_cache=False),
        _text_entry("gemma2", "decoder", _gemma2, use_cache=False),
        _text_entry("mixtral", "decoder", _mixtral, use_cache=False),
        _text_entry("qwen2-moe", "decoder", _qwen2_moe, use_cache=False),
        _text_entry("granite-moe", "decoder", _granite_moe, use_cache=False),
        _cached_entry("llama+cache", _llama),
        _cached_entry("qwen2+cache", _qwen2),
        _seq2seq_entry("t5", _t5, use_cache=False),
        _seq2seq_entry("bart", _bart, use_cache=False),
        _seq2seq_entry(
            "mbart", lambda: _bart_like("MBartForConditionalGeneration", "MBartConfig"), use_cache=False
        ),
        _seq2seq_entry(
            "pegasus", lambda: _bart_like("PegasusForConditionalGeneration", "PegasusConfig"), use_cache=False
        ),
        _seq2seq_entry("marian", lambda: _bart_like("MarianMTModel", "MarianConfig"), use_cache=False),
        _seq2seq_entry(
            "bigbird-pegasus",
            lambda: _bart_like(
                "BigBirdPegasusForConditionalGeneration",
                "BigBirdPegasusConfig",
                attention_type="original_full",
            ),
            use_cache=False,
        ),
        _seq2seq_entry("long-t5", _long_t5, use_cache=False),
        _vision_entry("vit", _vit, 16),
        _vision_entry("deit", _deit, 16),
        _vision_entry("resnet", _resnet, 32),
        _vision_entry("convnext", _convnext, 32),
        _vision_entry("swin", _swin, 32),
        _vision_entry("mobilenet-v2", _mobilenet_v2, 32),
        _vision_entry("beit", _beit, 16),
        _vision_entry("dinov2", _dinov2, 16),
        _vision_entry("clip-vision", _clip_vision, 16),
        _vision_flag_entry("siglip-vision", _siglip_vision, 16, "interpolate_pos_encoding"),
        _vision_entry("yolos", _yolos, 16),
        _vision_flag_entry("segformer", _segformer, 32, "output_hidden_states"),
        _vision_flag_entry("poolformer", _poolformer, 32, "output_hidden_states"),
        _vision_entry("regnet", _regnet, 32),
        _vision_flag_entry("efficientnet", _efficientnet, 32, "output_hidden_states"),
        _vision_entry("convnext-v2", _convnext_v2, 32),
        _vision_entry("mobilevit", _mobilevit, 32),
        _vision_entry("levit", _levit, 32),
        ZooEntry(
            name="whisper",
            category="audio",
            build=_whisper,
            example=lambda: _whisper_inputs(1),
            second=lambda: _whisper_inputs(2),
            other_paths=lambda: [_whisper_inputs(3, frames=30), _whisper_inputs(4, seq=9)],
        ),
        _audio_entry("wav2vec2", _wav2vec2),
        _audio_entry("hubert", _hubert),
        _audio_entry("data2vec-audio", _data2vec_audio),
        _audio_entry("sew", _sew),
        _audio_entry("unispeech", _unispeech),
    ]
