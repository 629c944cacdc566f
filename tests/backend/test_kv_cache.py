"""The KV cache size of every run: the formula from the config (computed here from the config's own
numbers) equals the size of the cache tensors generate() or the batch scheduler really held, for
each architecture, alone or batched, greedy or beams; and the context and timeline every run reports."""

from __future__ import annotations

import threading

import pytest

from backend.generation import GenerationDone, GenerationEngine
from backend.params import DecodingParams
from backend.playground import Playground
from tests.inspect_runs import MODELS, generate

PROMPTS = {
    "stdlib-gpt2": "Return the number of items in",
    "tiny-llama": "Return the number of",
    "tiny-bart": "The function returns a list of the values in the dictionary.",
    "tiny-marian": "La fonction renvoie une liste.",
    "tiny-t5": "The function returns a list of the values in the dictionary.",
}

#: (layers, KV heads, head dim) read by hand from each test model's config
SHAPES = {
    "stdlib-gpt2": lambda c: (c.n_layer, c.n_head, c.n_embd // c.n_head),
    "tiny-llama": lambda c: (c.num_hidden_layers, c.num_key_value_heads, c.hidden_size // c.num_attention_heads),
    "tiny-bart": lambda c: (c.decoder_layers, c.decoder_attention_heads, c.d_model // c.decoder_attention_heads),
    "tiny-marian": lambda c: (c.decoder_layers, c.decoder_attention_heads, c.d_model // c.decoder_attention_heads),
    "tiny-t5": lambda c: (c.num_decoder_layers, c.num_heads, c.d_kv),
}


@pytest.mark.parametrize("model", list(PROMPTS))
@pytest.mark.parametrize("params", [{"max_new_tokens": 9}, {"max_new_tokens": 9, "num_beams": 3}], ids=["one", "beams"])
def test_formula_equals_the_real_cache(inspect_playground: Playground, model: str, params: dict) -> None:
    run = generate(inspect_playground, model, PROMPTS[model], params)
    result = run.result
    kv = result.kv_cache
    assert kv is not None
    config = inspect_playground.registry.get(model).model.config
    layers, kv_heads, head_dim = SHAPES[model](config)
    prompt, new = result.metrics.prompt_tokens, result.metrics.new_tokens
    rows = params.get("num_beams", 1)
    steps = len(result.beam_tree.kept_per_step()) if result.beam_tree is not None else new
    if MODELS[model][1] == "encoder-decoder":  # the decoder's own tokens, and the cross-attention's source
        tokens = steps + prompt
    else:
        tokens = prompt + steps - 1  # the last new token is never fed back
    assert kv.formula_bytes == 2 * layers * kv_heads * head_dim * 4 * tokens * rows
    assert kv.measured_bytes == kv.formula_bytes
    out = run.to_json()
    assert out["kv_cache_bytes"] == kv.formula_bytes and out["kv_cache"]["formula"].startswith(f"2 × {layers} layers")
    context = out["context"]
    assert context["max"] == MODELS[model][2] and context["prompt"] == prompt and context["new"] == new
    assert context["used"] == (prompt if MODELS[model][1] == "encoder-decoder" else prompt + new)


def test_the_cache_alone_and_batched_is_the_same_size(inspect_playground: Playground) -> None:
    loaded = inspect_playground.registry.get("stdlib-gpt2")
    params = DecodingParams(max_new_tokens=10, min_new_tokens=10)
    sizes = []
    for engine in (GenerationEngine(max_batch=1), GenerationEngine(max_batch=8)):
        done = list(engine.stream(loaded, PROMPTS["stdlib-gpt2"], params, threading.Event()))[-1]
        assert isinstance(done, GenerationDone)
        sizes.append((done.result.kv_cache.formula_bytes, done.result.kv_cache.measured_bytes))
    assert sizes[0] == sizes[1] and sizes[0][0] == sizes[0][1]


def test_no_cache_no_size_and_the_timeline_splits_prefill_from_decode(inspect_playground: Playground) -> None:
    run = generate(inspect_playground, "stdlib-gpt2", PROMPTS["stdlib-gpt2"], {"max_new_tokens": 12, "use_cache": False})
    out = run.to_json()
    assert out["kv_cache"] is None and out["kv_cache_bytes"] is None
    timeline = out["timeline"]
    assert timeline["prefill_s"] == run.result.metrics.ttft_s == timeline["token_times"][0]
    assert timeline["decode_s"] == pytest.approx(timeline["total_s"] - timeline["prefill_s"])
    assert len(timeline["token_times"]) == 12 and timeline["token_times"] == sorted(timeline["token_times"])
    assert out["params"]["use_cache"] is False


def test_use_cache_must_be_true_or_false(inspect_playground: Playground) -> None:
    with pytest.raises(ValueError, match="use_cache must be true or false, got 'maybe'."):
        generate(inspect_playground, "stdlib-gpt2", "x", {"use_cache": "maybe"})
