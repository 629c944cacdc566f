"""The generation engine against transformers' own generate() on the same model."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from backend.errors import InputError
from backend.generation import FinishReason, GenerationDone, GenerationEngine, GenerationResult, TokenEvent
from backend.params import DecodingParams
from backend.registry import Family, LoadedModel, ModelRegistry, ModelSpec, Task

PROMPT = "Return the number of"


@pytest.fixture(scope="module")
def loaded(tiny_gpt2_dir: Path) -> LoadedModel:
    spec = ModelSpec("tiny", Task.TEXT_GENERATION, Family.DECODER, "tiny GPT-2", 128, path=tiny_gpt2_dir)
    return ModelRegistry((spec,), max_loaded=1, device="cpu", offline=True).get("tiny")


@pytest.fixture(scope="module", params=[1, 16], ids=["solo", "batched"])
def engine(request: pytest.FixtureRequest) -> GenerationEngine:
    """Both paths: every run alone through generate(), and streaming runs decoded together by
    the batch scheduler (backend.batching); each must equal transformers' own generate()."""
    return GenerationEngine(max_batch=request.param)


def run(engine: GenerationEngine, loaded: LoadedModel, params: DecodingParams, prompt: str = PROMPT) -> tuple[list[TokenEvent], GenerationResult]:
    events = list(engine.stream(loaded, prompt, params, threading.Event()))
    assert isinstance(events[-1], GenerationDone)
    return events[:-1], events[-1].result


def reference(loaded: LoadedModel, prompt: str = PROMPT, **kwargs):
    inputs = loaded.tokenizer(prompt, return_tensors="pt")
    out = loaded.model.generate(**inputs, pad_token_id=loaded.tokenizer.eos_token_id, **kwargs)
    return inputs["input_ids"].shape[1], out


def test_greedy_equals_model_generate(engine, loaded) -> None:
    events, result = run(engine, loaded, DecodingParams(max_new_tokens=24))
    n, ref = reference(loaded, max_new_tokens=24, do_sample=False)
    assert list(result.sequences[0].token_ids) == ref[0, n:].tolist()
    assert [e.step.token_id for e in events] == ref[0, n:].tolist()  # streamed one by one
    assert result.text == loaded.tokenizer.decode(ref[0, n:], skip_special_tokens=True)
    assert result.finish_reason == FinishReason.LENGTH
    assert result.metrics.new_tokens == 24 and result.metrics.prompt_tokens == n


def test_greedy_with_penalties_equals_model_generate(engine, loaded) -> None:
    params = DecodingParams(max_new_tokens=20, repetition_penalty=1.3, no_repeat_ngram_size=2)
    _, result = run(engine, loaded, params)
    n, ref = reference(loaded, max_new_tokens=20, do_sample=False, repetition_penalty=1.3, no_repeat_ngram_size=2)
    assert list(result.sequences[0].token_ids) == ref[0, n:].tolist()


def test_greedy_steps_carry_consistent_probabilities(engine, loaded) -> None:
    _, result = run(engine, loaded, DecodingParams(max_new_tokens=8, top_alternatives=4))
    n, ref = reference(loaded, max_new_tokens=8, do_sample=False, output_logits=True, return_dict_in_generate=True)
    for step, logits in zip(result.steps, ref.logits):
        raw = torch.softmax(logits[0].float(), -1)
        assert step.raw_prob == pytest.approx(raw[step.token_id].item(), abs=1e-6)
        assert step.prob == pytest.approx(step.raw_prob, abs=1e-6)  # greedy without penalties: nothing changes
        assert step.token_id == int(raw.argmax())  # greedy chose the top raw token
        assert len(step.alternatives) == 4 and step.alternatives[0].token_id == step.token_id
        assert [a.raw_prob for a in step.alternatives] == sorted((a.raw_prob for a in step.alternatives), reverse=True)
        entropy_bits = -(raw * raw.clamp_min(1e-30).log2()).sum().item()
        assert step.entropy == pytest.approx(entropy_bits, rel=1e-4)


def test_sampled_distribution_is_the_one_after_the_chain(engine, loaded) -> None:
    params = DecodingParams(temperature=0.7, top_k=5, max_new_tokens=12, seed=11, top_alternatives=8)
    _, result = run(engine, loaded, params)
    for step in result.steps:
        kept = [a for a in step.alternatives if a.prob > 0]
        assert len(kept) <= 5  # top-k removed the rest from the sampled distribution
        assert 0 < step.prob <= 1
        assert step.entropy <= 2.33  # at most log2(5) ≈ 2.32 bits over 5 tokens
        assert sum(a.prob for a in step.alternatives) == pytest.approx(1.0, abs=1e-4)


def test_seeded_sampling_is_reproducible_and_equals_generate(engine, loaded) -> None:
    params = DecodingParams(temperature=0.9, top_k=30, top_p=0.9, seed=1234, max_new_tokens=16)
    _, first = run(engine, loaded, params)
    _, second = run(engine, loaded, params)
    assert first.sequences[0].token_ids == second.sequences[0].token_ids
    assert first.seed == 1234
    torch.manual_seed(1234)
    n, ref = reference(loaded, max_new_tokens=16, do_sample=True, temperature=0.9, top_k=30, top_p=0.9)
    assert list(first.sequences[0].token_ids) == ref[0, n:].tolist()


def test_random_seed_is_reported_and_replays(engine, loaded) -> None:
    params = DecodingParams(temperature=1.0, max_new_tokens=10)
    _, first = run(engine, loaded, params)
    _, replay = run(engine, loaded, params.with_seed(first.seed))
    assert replay.sequences[0].token_ids == first.sequences[0].token_ids


def test_beam_search_equals_model_generate(engine, loaded) -> None:
    params = DecodingParams(num_beams=4, num_return_sequences=3, max_new_tokens=10, length_penalty=0.8)
    events, result = run(engine, loaded, params)
    assert events == []  # beam search cannot stream
    n, ref = reference(
        loaded, max_new_tokens=10, num_beams=4, num_return_sequences=3, length_penalty=0.8,
        do_sample=False, output_scores=True, return_dict_in_generate=True,
    )
    assert len(result.sequences) == 3
    for seq, ref_ids, ref_score in zip(result.sequences, ref.sequences, ref.sequences_scores):
        ids = ref_ids[n:].tolist()
        assert list(seq.token_ids) == ids[: len(seq.token_ids)]
        assert seq.score == pytest.approx(ref_score.item(), abs=1e-5)
        assert len(seq.steps) == len(seq.token_ids)
    assert result.metrics.ttft_s is None


def test_stop_sequence_cuts_the_output(engine, loaded) -> None:
    _, free = run(engine, loaded, DecodingParams(max_new_tokens=30))
    stop = free.steps[3].text  # a piece of text the model certainly writes
    assert stop.strip(), "tiny model produced whitespace; choose another step"
    _, stopped = run(engine, loaded, DecodingParams(max_new_tokens=30, stop_sequences=(stop,)))
    assert stopped.finish_reason == FinishReason.STOP_SEQUENCE
    assert stop not in stopped.text
    assert free.text.startswith(stopped.text)
    assert len(stopped.steps) <= 4


def test_cancel_stops_within_a_step_and_keeps_the_partial_output(engine, loaded) -> None:
    cancel = threading.Event()
    passes_after_cancel = []
    hook = loaded.model.register_forward_hook(lambda *_: passes_after_cancel.append(1) if cancel.is_set() else None)
    result = None
    try:
        for event in engine.stream(loaded, PROMPT, DecodingParams(max_new_tokens=100), cancel):
            if isinstance(event, TokenEvent):
                cancel.set()
            else:
                result = event.result
    finally:
        hook.remove()
    assert result is not None and result.finish_reason == FinishReason.CANCELLED
    assert len(passes_after_cancel) <= 1  # the step in flight when Stop came, then no more
    assert 1 <= result.metrics.new_tokens < 100 and result.text


def test_prompt_longer_than_context_says_both_numbers(engine, loaded) -> None:
    with pytest.raises(InputError, match=r"prompt is \d+ tokens; model 'tiny' reads at most 128 tokens"):
        run(engine, loaded, DecodingParams(), prompt="number " * 200)


def test_max_new_tokens_is_fitted_to_the_context_with_a_note(engine, loaded) -> None:
    prompt = "number " * 50
    _, result = run(engine, loaded, DecodingParams(max_new_tokens=50))
    _, fitted = run(engine, loaded, DecodingParams(max_new_tokens=200), prompt=prompt)
    assert result.notes == ()
    assert fitted.notes and "max_new_tokens lowered from 200" in fitted.notes[0]
    assert fitted.metrics.prompt_tokens + fitted.metrics.new_tokens <= 128


def test_empty_prompt_is_refused(engine, loaded) -> None:
    with pytest.raises(InputError, match="prompt must be non-empty"):
        run(engine, loaded, DecodingParams(), prompt="   \n ")


def test_presence_penalty_reduces_repetition(engine, loaded) -> None:
    _, plain = run(engine, loaded, DecodingParams(max_new_tokens=30))
    _, penalised = run(engine, loaded, DecodingParams(max_new_tokens=30, presence_penalty=2.0, frequency_penalty=2.0))
    assert len(set(penalised.sequences[0].token_ids)) > len(set(plain.sequences[0].token_ids))
    assert penalised.chain.names == ["presence/frequency penalty"]


def test_metrics_are_measured(engine, loaded) -> None:
    _, result = run(engine, loaded, DecodingParams(max_new_tokens=12))
    m = result.metrics
    assert 0 < m.ttft_s <= m.total_s
    assert m.tpot_s > 0 and m.tokens_per_s > 0
    assert m.peak_memory_bytes > 10 * 2**20 and m.memory_kind == "rss"
    assert [s.elapsed_s for s in result.steps] == sorted(s.elapsed_s for s in result.steps)


def test_sentencepiece_tokens_keep_their_word_start_space() -> None:
    """The embedded Marian's tokens, decoded one by one as the token strip shows them, read as the
    whole text does ("▁open" is " open", apart from "open"); GPT-2's byte-level tokens are unchanged."""
    from transformers import AutoTokenizer

    from backend.generation import token_decoder
    from backend.settings import REPO_ROOT

    marian = AutoTokenizer.from_pretrained(REPO_ROOT / "models" / "marian-fr-en")
    ids = marian("Cannot open the configuration file.", add_special_tokens=False)["input_ids"]
    decode = token_decoder(marian)
    assert "".join(decode(i) for i in ids).strip() == marian.decode(ids) == "Cannot open the configuration file."
    assert any(marian.convert_ids_to_tokens(i).startswith("\u2581") and decode(i).startswith(" ") for i in ids)
    gpt2 = AutoTokenizer.from_pretrained(REPO_ROOT / "models" / "stdlib-gpt2")
    ids = gpt2("Return the number of items.")["input_ids"]
    plain = token_decoder(gpt2)
    assert [plain(i) for i in ids] == [gpt2.decode([i]) for i in ids]
