"""The KV cache of a run, made visible: how many bytes the keys and values of its past tokens
take, by the formula from the model's config and, where the cache can be read, by the real
tensors' sizes.

    bytes = 2 (keys and values) x layers x KV heads x head dim x bytes per value x tokens

For a decoder the cache holds every token fed to the model: the prompt and the new tokens but the
last (it is never fed back). An encoder-decoder's decoder also keeps, in every layer, the keys and
values of its cross-attention over the source. Beam search keeps one cache per beam.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from backend.registry import Family, LoadedModel


@dataclass(frozen=True)
class CacheShape:
    """What one token costs in a model's cache."""

    layers: int
    kv_heads: int
    head_dim: int
    bytes_per_value: int

    @property
    def bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * self.bytes_per_value

    def describe(self, tokens: int) -> str:
        return (
            f"2 × {self.layers} layers × {self.kv_heads} KV heads × {self.head_dim} dims × "
            f"{self.bytes_per_value} bytes × {tokens} tokens"
        )


@dataclass(frozen=True)
class CacheSize:
    tokens: int  # positions the cache holds per sequence (the decoder's own, for a seq2seq model)
    formula_bytes: int  # from the config (cross-attention over the source included)
    formula: str  # the product, spelled out
    measured_bytes: int | None  # the real tensors' sizes, where they could be read
    sequences: int  # rows decoded together: one cache per beam (or per returned sequence)
    cross_tokens: int  # source tokens the decoder's cross-attention keeps (encoder-decoder)

    def to_json(self) -> dict[str, Any]:
        return {
            "tokens": self.tokens,
            "formula_bytes": self.formula_bytes,
            "formula": self.formula,
            "measured_bytes": self.measured_bytes,
            "sequences": self.sequences,
            "cross_tokens": self.cross_tokens,
        }


def _first(config: Any, *names: str) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def cache_shape(loaded: LoadedModel) -> CacheShape | None:
    """Per-token cache cost from the config (None when the config does not say enough)."""
    config = loaded.model.config
    encoder_decoder = loaded.spec.family is Family.ENCODER_DECODER
    if encoder_decoder:
        layers = _first(config, "decoder_layers", "num_decoder_layers", "num_layers")
        heads = _first(config, "decoder_attention_heads", "num_heads")
    else:
        layers = _first(config, "num_hidden_layers", "n_layer", "num_layers")
        heads = _first(config, "num_attention_heads", "n_head", "num_heads")
    kv_heads = _first(config, "num_key_value_heads") or heads
    hidden = _first(config, "hidden_size", "n_embd", "d_model")
    head_dim = _first(config, "head_dim", "d_kv") or (hidden // heads if hidden and heads else None)
    if not (layers and kv_heads and head_dim):
        return None
    element = next(loaded.model.parameters()).element_size()
    return CacheShape(layers, kv_heads, head_dim, element)


def cache_size(
    loaded: LoadedModel, prompt_tokens: int, new_tokens: int, *, sequences: int = 1, measured: int | None = None
) -> CacheSize | None:
    shape = cache_shape(loaded)
    if shape is None:
        return None
    if loaded.spec.family is Family.ENCODER_DECODER:
        tokens = max(new_tokens, 0)  # the decoder start token and the new tokens but the last
        cross = prompt_tokens
    else:
        tokens = max(prompt_tokens + new_tokens - 1, 0)
        cross = 0
    formula_bytes = shape.bytes_per_token * (tokens + cross) * sequences
    formula = shape.describe(tokens + cross) + (f" × {sequences} sequences" if sequences > 1 else "")
    return CacheSize(tokens, formula_bytes, formula, measured, sequences, cross)


def measured_bytes(cache: Any) -> int | None:
    """The bytes a transformers cache's key and value tensors take (None if it has none)."""
    if cache is None:
        return None
    parts = [getattr(cache, "self_attention_cache", None), getattr(cache, "cross_attention_cache", None)]
    caches = [c for c in parts if c is not None] or [cache]
    total = 0
    for part in caches:
        for layer in getattr(part, "layers", []):
            for tensor in (getattr(layer, "keys", None), getattr(layer, "values", None)):
                if isinstance(tensor, torch.Tensor):
                    total += tensor.numel() * tensor.element_size()
    return total or None
