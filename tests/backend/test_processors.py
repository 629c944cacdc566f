"""The decoding chain: the custom presence/frequency penalty against a hand computation, the
faster top-p and min_new_tokens against transformers' own, and the order of the stages."""

from __future__ import annotations

import math

import torch
from transformers import MinNewTokensLengthLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from backend.params import DecodingParams
from backend.processors import (
    MinNewTokensLogitsProcessor,
    ModelRules,
    PresenceFrequencyPenaltyLogitsProcessor,
    SortedTopPLogitsWarper,
    build_chain,
)


def test_presence_frequency_penalty_matches_hand_computation() -> None:
    # prompt = [5, 1]; generated = [1, 1, 3] -> counts: 1 -> 2, 3 -> 1 (the prompt's 5 does not count)
    input_ids = torch.tensor([[5, 1, 1, 1, 3]])
    scores = torch.tensor([[0.5, 2.0, -1.0, 1.0, 0.0, 3.0]])
    out = PresenceFrequencyPenaltyLogitsProcessor(presence_penalty=0.5, frequency_penalty=0.25, prompt_length=2)(
        input_ids, scores.clone()
    )
    expected = [
        0.5,  # token 0: unseen
        2.0 - 0.5 - 0.25 * 2,  # token 1: seen twice in the output
        -1.0,  # token 2: unseen
        1.0 - 0.5 - 0.25 * 1,  # token 3: seen once
        0.0,  # token 4: unseen
        3.0,  # token 5: only in the prompt
    ]
    assert torch.allclose(out, torch.tensor([expected]))


def test_penalty_is_per_row_and_negative_values_reward() -> None:
    input_ids = torch.tensor([[0, 2, 2], [0, 1, 0]])
    scores = torch.zeros(2, 3)
    out = PresenceFrequencyPenaltyLogitsProcessor(-1.0, 0.0, prompt_length=1)(input_ids, scores)
    assert out.tolist() == [[0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]


def test_nothing_generated_yet_changes_nothing() -> None:
    scores = torch.randn(1, 7)
    out = PresenceFrequencyPenaltyLogitsProcessor(1.0, 1.0, prompt_length=3)(torch.tensor([[1, 2, 3]]), scores)
    assert torch.equal(out, scores)


def test_chain_order_is_penalties_then_temperature_then_truncations() -> None:
    params = DecodingParams(
        temperature=0.7, top_k=20, top_p=0.9, min_p=0.05, typical_p=0.95, repetition_penalty=1.2,
        presence_penalty=0.3, frequency_penalty=0.1, no_repeat_ngram_size=3, min_new_tokens=2,
    )
    chain = build_chain(params, prompt_length=4, eos_token_ids=[0])
    assert chain.names == [
        "repetition penalty", "presence/frequency penalty", "no-repeat n-gram", "min new tokens",
        "temperature", "top-k", "top-p", "min-p", "typical-p",
    ]


def test_checkpoint_rules_sit_where_generate_puts_them() -> None:
    """GenerationMixin._get_logits_processor's order: penalties, bans, the length rule, the forcing
    rules, then the warpers. A forced end of sequence comes after the bans and overrides them."""
    rules = ModelRules(
        bad_words_ids=((5,),), min_length=3, forced_bos_token_id=0, forced_eos_token_ids=(2,), suppress_tokens=(7,)
    )
    params = DecodingParams(
        temperature=0.7, top_k=5, repetition_penalty=1.2, no_repeat_ngram_size=1, min_new_tokens=1, max_new_tokens=4
    )
    chain = build_chain(params, prompt_length=1, eos_token_ids=[2], rules=rules)
    assert chain.names == [
        "repetition penalty", "no-repeat n-gram", "forbidden tokens", "min length", "min new tokens",
        "forced first token", "forced end", "suppressed tokens", "temperature", "top-k",
    ]
    # BART's decoder starts with its end-of-sequence token, which a 1-gram ban forbids from then
    # on; at the last position the forced end still leaves exactly that token (not all -inf)
    out = chain.processors()(torch.tensor([[2, 0, 9, 11]]), torch.randn(1, 20))
    assert torch.isfinite(out[0, 2]) and torch.isinf(torch.cat((out[0, :2], out[0, 3:]))).all()


def test_greedy_chain_has_no_warpers_and_neutral_values_add_nothing() -> None:
    greedy = build_chain(DecodingParams(top_k=10, top_p=0.5), prompt_length=1, eos_token_ids=[0])
    assert greedy.names == []
    assert greedy.describe() == "raw logits → softmax (no processing)"
    sampling = build_chain(DecodingParams(temperature=1.0), prompt_length=1, eos_token_ids=[0])
    assert sampling.names == []


def test_chain_output_equals_the_warpers_applied_by_hand() -> None:
    torch.manual_seed(0)
    scores = torch.randn(1, 50)
    ids = torch.tensor([[1, 2, 3]])
    chain = build_chain(DecodingParams(temperature=0.5, top_k=10, top_p=0.8), prompt_length=3, eos_token_ids=[0])
    expected = TopPLogitsWarper(0.8)(ids, TopKLogitsWarper(10)(ids, TemperatureLogitsWarper(0.5)(ids, scores.clone())))
    assert torch.equal(chain.processors()(ids, scores.clone()), expected)


def test_top_p_with_numpy_sort_equals_transformers_top_p() -> None:
    """Over rows of every kind (flat, peaked, filtered to -inf by an earlier stage, float64) and
    several top_p and min_tokens_to_keep: the same tokens kept, the same values."""
    generator = torch.Generator().manual_seed(0)
    rows = [torch.randn(4, 4096, generator=generator) * scale for scale in (0.1, 1.0, 8.0)]
    filtered = torch.randn(3, 4096, generator=generator)
    filtered[:, 100:] = -math.inf  # (top-k before it)
    rows += [filtered, torch.randn(2, 300, generator=generator, dtype=torch.float64)]
    ids = torch.tensor([[1, 2, 3]])
    for scores in rows:
        for top_p in (0.05, 0.5, 0.9, 0.95, 1.0):
            for keep in (1, 3):
                ours = SortedTopPLogitsWarper(top_p, min_tokens_to_keep=keep)(ids, scores.clone())
                theirs = TopPLogitsWarper(top_p, min_tokens_to_keep=keep)(ids, scores.clone())
                assert torch.equal(ours, theirs), (scores.shape, top_p, keep)


def test_min_new_tokens_equals_transformers_rule_before_and_after_it_applies() -> None:
    scores = torch.randn(2, 50)
    for eos in ([0], [3, 7]):
        for length in range(5, 9):  # prompt 5, min_new_tokens 2: applies at 5 and 6 tokens, not after
            ids = torch.zeros((2, length), dtype=torch.long)
            ours = MinNewTokensLogitsProcessor(5, 2, eos)(ids, scores.clone())
            theirs = MinNewTokensLengthLogitsProcessor(5, 2, eos)(ids, scores.clone())
            assert torch.equal(ours, theirs), (eos, length)
            assert torch.isinf(ours[:, eos]).all() == (length < 7)


def test_the_chain_uses_the_faster_stages() -> None:
    chain = build_chain(DecodingParams(temperature=0.5, top_p=0.8, min_new_tokens=3), prompt_length=3, eos_token_ids=[0])
    kinds = {stage.name: type(stage.processor) for stage in chain.stages}
    assert kinds["top-p"] is SortedTopPLogitsWarper and kinds["min new tokens"] is MinNewTokensLogitsProcessor
