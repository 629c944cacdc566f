"""The stage waterfall against an independent computation written here in NumPy (not the chain's
code): every stage of a run that uses every knob, at three positions; and the two ends of the
chain against what the run streamed, at every position of greedy, sampled, beam and seq2seq runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.playground import Playground
from tests.inspect_runs import OWNER, generate

EVERY_KNOB = {
    "repetition_penalty": 1.2, "presence_penalty": 0.5, "frequency_penalty": 0.3, "temperature": 0.7,
    "top_k": 20, "top_p": 0.9, "min_p": 0.05, "typical_p": 0.95, "max_new_tokens": 24, "seed": 11,
}


STAGES = ["repetition penalty", "presence/frequency penalty", "temperature", "top-k", "top-p", "min-p", "typical-p"]


def softmax(x: np.ndarray) -> np.ndarray:
    finite = np.isfinite(x)
    e = np.where(finite, np.exp(x - x[finite].max()), 0.0)
    return e / e.sum()


def by_hand(logits: np.ndarray, prompt: list[int], generated: list[int]) -> dict[str, np.ndarray]:
    """Each stage's scores, from the definitions: CTRL repetition penalty over prompt and output,
    OpenAI presence/frequency over the output, then temperature, top-k, top-p, min-p, typical-p
    (transformers' boundary conventions: top-p drops what lies within the lowest 1 - p of the
    mass; typical keeps the tokens closest to the entropy until their mass reaches p)."""
    out = {}
    x = logits.astype(np.float64).copy()
    seen = sorted(set(prompt + generated))
    x[seen] = np.where(x[seen] > 0, x[seen] / 1.2, x[seen] * 1.2)
    out["repetition penalty"] = x.copy()
    counts = np.bincount(np.array(generated, dtype=np.int64), minlength=len(x)) if generated else np.zeros(len(x))
    x = x - 0.5 * (counts > 0) - 0.3 * counts
    out["presence/frequency penalty"] = x.copy()
    x = x / 0.7
    out["temperature"] = x.copy()
    kth = np.sort(x)[-20]
    x = np.where(x < kth, -np.inf, x)
    out["top-k"] = x.copy()
    p = softmax(x)
    order = np.argsort(p, kind="stable")
    cumulative = np.cumsum(p[order])
    drop = order[cumulative <= 1 - 0.9]
    x = x.copy()
    x[drop] = -np.inf
    out["top-p"] = x.copy()
    p = softmax(x)
    x = np.where(p < 0.05 * p.max(), -np.inf, x)
    out["min-p"] = x.copy()
    p = softmax(x)
    logp = np.where(p > 0, np.log(np.where(p > 0, p, 1)), -np.inf)
    entropy = -(p[p > 0] * logp[p > 0]).sum()
    shifted = np.abs(-logp - entropy)
    order = np.argsort(shifted, kind="stable")
    cumulative = np.cumsum(p[order])
    last = min(int((cumulative < 0.95).sum()), len(x) - 1)
    drop = order[shifted[order] > shifted[order][last]]
    x = x.copy()
    x[drop] = -np.inf
    out["typical-p"] = x
    return out


def test_every_stage_matches_the_definitions_at_three_positions(inspect_playground: Playground) -> None:
    pg = inspect_playground
    run = generate(pg, "stdlib-gpt2", "Return the number of items in", EVERY_KNOB)
    prompt = list(run.result.input_token_ids)
    ids = list(run.result.sequences[0].token_ids)
    model = pg.registry.get("stdlib-gpt2").model
    assert run.result.chain.names == STAGES
    removed_somewhere: set[str] = set()
    for position in (0, len(ids) // 2, len(ids) - 1):
        with torch.no_grad():
            logits = model(torch.tensor([prompt + ids[:position]])).logits[0, -1].double().numpy()
        expected = by_hand(logits, prompt, ids[:position])
        found = pg.inspector.inspect_token(OWNER, run.run_id, position)
        names = [s.name for s in found.stages]
        assert names == ["raw", *STAGES, "final"] and list(expected) == STAGES
        chosen = ids[position]
        assert found.stages[0].chosen_prob == pytest.approx(softmax(logits)[chosen], abs=1e-5)
        for stage in found.stages[1:-1]:
            p = softmax(expected[stage.name])
            assert stage.chosen_prob == pytest.approx(p[chosen], abs=1e-5), (position, stage.name)
            assert stage.support == int(np.isfinite(expected[stage.name]).sum()), (position, stage.name)
            assert stage.chosen_rank == int((p > p[chosen]).sum()) + 1
            if stage.removed_mass > 0:
                removed_somewhere.add(stage.name)
        assert found.stages[-1].chosen_prob == found.stages[-2].chosen_prob
        assert found.stages[-1].chosen_prob == pytest.approx(run.result.steps[position].prob, abs=1e-4)
    assert {"top-k", "top-p"} <= removed_somewhere  # the setup cuts tokens: the comparison is not vacuous


def test_removed_mass_entropy_and_candidates_are_consistent(inspect_playground: Playground) -> None:
    pg = inspect_playground
    run = generate(pg, "stdlib-gpt2", "The socket module provides", EVERY_KNOB | {"seed": 4})
    found = pg.inspector.inspect_token(OWNER, run.run_id, 3, top_n=5)
    candidates = [c.token_id for c in found.stages[0].top]
    assert run.result.sequences[0].token_ids[3] in candidates
    for before, after in zip(found.stages, found.stages[1:]):
        assert [c.token_id for c in after.top] == candidates  # the same rows at every stage
        removed = sum(c.prob for c, d in zip(before.top, after.top) if c.prob > 0 and d.prob == 0)
        assert removed <= after.removed_mass + 1e-9
        assert after.support <= before.support
        assert 0.0 <= after.entropy_bits <= np.log2(before.support) + 1e-9
    top_k = next(s for s in found.stages if s.name == "top-k")
    assert top_k.support == 20 and "kept 20 of 4,096 tokens" in top_k.sentence
    assert found.stages[-1].sentence.endswith(f"(rank {found.stages[-1].chosen_rank}).")


CASES = {
    "greedy": ("tiny-gpt2", {"max_new_tokens": 16}),
    "sampled": ("stdlib-gpt2", EVERY_KNOB | {"no_repeat_ngram_size": 2, "min_new_tokens": 3}),
    "beam": ("tiny-gpt2", {"max_new_tokens": 8, "num_beams": 3, "repetition_penalty": 1.3}),
    "seq2seq greedy (bart: forced first token, forced end)": ("tiny-bart", {"max_new_tokens": 10}),
    "seq2seq sampled (marian: forbidden pad, forced end)": ("tiny-marian", {"max_new_tokens": 10, "temperature": 0.9, "top_p": 0.8, "seed": 2}),
    "seq2seq t5": ("tiny-t5", {"max_new_tokens": 8, "temperature": 1.3, "seed": 3}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_ends_of_the_chain_equal_what_was_streamed_at_every_position(inspect_playground: Playground, case: str) -> None:
    pg = inspect_playground
    model, params = CASES[case]
    run = generate(pg, model, "Return the number of items in the container.", params)
    steps = run.result.steps
    assert steps
    for step in steps:
        found = pg.inspector.inspect_token(OWNER, run.run_id, step.position)
        assert found.token_id == step.token_id
        assert [s.name for s in found.stages] == ["raw", *run.result.chain.names, "final"]
        assert found.stages[-1].chosen_prob == pytest.approx(step.prob, abs=1e-4), step.position
        assert found.stages[0].chosen_prob == pytest.approx(step.raw_prob, abs=1e-4), step.position


def test_forced_tokens_show_as_the_stage_that_forced_them(inspect_playground: Playground) -> None:
    pg = inspect_playground
    run = generate(pg, "tiny-bart", "Return the number of items.", {"max_new_tokens": 6})
    first = pg.inspector.inspect_token(OWNER, run.run_id, 0)
    forced = next(s for s in first.stages if s.name == "forced first token")
    assert forced.support == 1 and forced.chosen_prob == pytest.approx(1.0)
    assert "kept 1 of" in forced.sentence
    last = pg.inspector.inspect_token(OWNER, run.run_id, len(run.result.steps) - 1)
    if len(run.result.steps) == 6:  # it ran to max_new_tokens: the end was forced there
        end = next(s for s in last.stages if s.name == "forced end")
        assert end.support == 1 and end.chosen_prob == pytest.approx(1.0)
