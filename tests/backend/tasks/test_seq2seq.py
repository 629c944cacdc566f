"""Summarization and translation through the shared generation engine, on tiny random BART, T5 and
Marian models, against transformers' own generate() on the same model and input."""

from __future__ import annotations

import functools
import json
import threading
from pathlib import Path

import pytest
import torch

from backend.errors import InputError
from backend.generation import FinishReason, GenerationDone, GenerationEngine, GenerationResult, TokenEvent
from backend.params import DecodingParams
from backend.playground import GenerationRun, Playground
from backend.registry import Family, LoadedModel, ModelRegistry, ModelSpec, Task
from tests.offline import offline_settings
from tests.tiny_seq2seq import ARCHITECTURES, CONTEXT, build_tiny_seq2seq

PROMPT = "Return the number of items in the container."
#: The registry entry of each architecture: BART and T5 summarize, Marian translates.
TASKS = {"bart": Task.SUMMARIZATION, "t5": Task.SUMMARIZATION, "marian": Task.TRANSLATION}
#: A bonus on the end-of-sequence logit that makes the two returned beams end at different steps.
EARLY_EOS_BONUS = {"bart": 8.0, "marian": 7.0}


@pytest.fixture(scope="session")
def seq2seq_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {a: build_tiny_seq2seq(tmp_path_factory.mktemp(f"tiny-{a}"), a) for a in ARCHITECTURES}


@pytest.fixture(scope="module")
def seq2seq_models(seq2seq_dirs) -> dict[str, LoadedModel]:
    specs = tuple(
        ModelSpec(a, TASKS[a], Family.ENCODER_DECODER, f"tiny {a}", CONTEXT, path=folder)
        for a, folder in seq2seq_dirs.items()
    )
    registry = ModelRegistry(specs, max_loaded=len(specs), device="cpu", offline=True)
    return {spec.name: registry.get(spec.name, spec.task) for spec in specs}


@pytest.fixture(scope="module")
def engine() -> GenerationEngine:
    return GenerationEngine()


@pytest.fixture(scope="module")
def seq2seq_playground(tmp_path_factory: pytest.TempPathFactory, seq2seq_dirs) -> Playground:
    folder = tmp_path_factory.mktemp("seq2seq-playground")
    entries = "".join(
        f"""
  - name: tiny-{a}
    task: {TASKS[a].value}
    family: encoder-decoder
    source: {{path: {path}}}
    max_context: {CONTEXT}
    description: a tiny random {a} built by the tests
    trained: false
"""
        for a, path in seq2seq_dirs.items()
    )
    (folder / "models.yaml").write_text("models:" + entries, encoding="utf-8")
    settings = offline_settings(folder, folder / "models.yaml")
    pg = Playground(settings)
    yield pg
    pg.close()


def run(engine: GenerationEngine, loaded: LoadedModel, params: DecodingParams, prompt: str = PROMPT, **kwargs):
    events = list(engine.stream(loaded, prompt, params, threading.Event(), **kwargs))
    assert isinstance(events[-1], GenerationDone)
    return [e for e in events[:-1] if isinstance(e, TokenEvent)], events[-1].result


def reference(loaded: LoadedModel, prompt: str = PROMPT, **kwargs):
    """transformers' generate() on the same input; returns the output with the decoder start token."""
    inputs = loaded.tokenizer(prompt, return_tensors="pt")
    return loaded.model.generate(**inputs, **kwargs)


def new_tokens(loaded: LoadedModel, sequence: torch.Tensor) -> list[int]:
    """A generated row without its decoder start token, up to its end of sequence (the padding
    after it is dropped)."""
    ids = sequence.tolist()[1:]
    eos = loaded.model.generation_config.eos_token_id
    return ids[: ids.index(eos) + 1] if eos in ids else ids


def eos_bonus(monkeypatch: pytest.MonkeyPatch, loaded: LoadedModel, bonus: float) -> None:
    """Wrap the model's forward so that the end-of-sequence logit gets `bonus` at every step."""
    original = loaded.model.forward
    eos = loaded.model.generation_config.eos_token_id

    @functools.wraps(original)
    def forward(*args, **kwargs):
        out = original(*args, **kwargs)
        out.logits[..., eos] += bonus
        return out

    monkeypatch.setattr(loaded.model, "forward", forward)


def check_steps(result: GenerationResult) -> None:
    for sequence in result.sequences:
        assert len(sequence.steps) == len(sequence.token_ids) > 0
        for position, step in enumerate(sequence.steps):
            assert step.position == position and step.token_id == sequence.token_ids[position]
            assert 0.0 <= step.prob <= 1.0 and 0.0 <= step.raw_prob <= 1.0
            assert step.entropy >= 0.0 and step.raw_entropy >= 0.0
            assert all(0.0 <= a.prob <= 1.0 and 0.0 <= a.raw_prob <= 1.0 for a in step.alternatives)


# -- greedy, streamed ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_greedy_stream_equals_model_generate_token_for_token(engine, seq2seq_models, name) -> None:
    loaded = seq2seq_models[name]
    events, result = run(engine, loaded, DecodingParams(max_new_tokens=12))
    ref = reference(
        loaded, do_sample=False, num_beams=1, max_new_tokens=12, output_scores=True, return_dict_in_generate=True
    )
    expected = new_tokens(loaded, ref.sequences[0])
    assert [e.step.token_id for e in events] == expected  # one event per token, as it came
    assert list(result.sequences[0].token_ids) == expected
    assert result.text == loaded.tokenizer.decode(expected, skip_special_tokens=True)
    eos = loaded.model.generation_config.eos_token_id
    ran_out = len(expected) == 12  # (there an end token is forced, and the run ended for its length)
    assert result.finish_reason == (FinishReason.LENGTH if ran_out or expected[-1] != eos else FinishReason.EOS)
    assert result.metrics.prompt_tokens == loaded.tokenizer(PROMPT, return_tensors="pt")["input_ids"].shape[1]
    assert result.metrics.new_tokens == len(expected) and result.metrics.ttft_s is not None
    # each step's probability is that of the distribution generate() chose from
    check_steps(result)
    for step, scores in zip(result.steps, ref.scores):
        assert step.prob == pytest.approx(torch.softmax(scores[0], -1)[step.token_id].item(), abs=1e-5)
        assert step.token_id == int(scores[0].argmax())


# -- beam search --------------------------------------------------------------------------------


def check_beams_equal_generate(engine: GenerationEngine, loaded: LoadedModel) -> GenerationResult:
    params = DecodingParams(max_new_tokens=12, num_beams=3, num_return_sequences=2)
    events, result = run(engine, loaded, params)
    ref = reference(
        loaded,
        do_sample=False,
        num_beams=3,
        num_return_sequences=2,
        max_new_tokens=12,
        length_penalty=1.0,
        early_stopping=False,
        output_scores=True,
        return_dict_in_generate=True,
    )
    assert events == []  # beams cannot stream: the result comes at the end
    assert [list(s.token_ids) for s in result.sequences] == [new_tokens(loaded, row) for row in ref.sequences]
    assert [s.score for s in result.sequences] == pytest.approx(ref.sequences_scores.tolist(), abs=1e-5)
    assert result.metrics.ttft_s is None
    check_steps(result)
    return result


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_beam_search_equals_model_generate_sequences_and_scores(engine, seq2seq_models, name) -> None:
    check_beams_equal_generate(engine, seq2seq_models[name])


@pytest.mark.parametrize("name", sorted(EARLY_EOS_BONUS))
def test_beams_that_end_at_different_steps_lose_their_padding(engine, seq2seq_models, monkeypatch, name) -> None:
    loaded = seq2seq_models[name]
    eos_bonus(monkeypatch, loaded, EARLY_EOS_BONUS[name])
    result = check_beams_equal_generate(engine, loaded)
    lengths = [len(s.token_ids) for s in result.sequences]
    assert lengths[0] != lengths[1]  # the setup: one beam ended early and was padded by generate()
    assert all(s.finish_reason == FinishReason.EOS for s in result.sequences)


# -- long inputs --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_an_input_longer_than_the_context_is_cut_with_a_note(
    engine, seq2seq_models, seq2seq_playground, name
) -> None:
    loaded = seq2seq_models[name]
    long_prompt = " ".join([PROMPT] * 12)
    n = len(loaded.tokenizer(long_prompt)["input_ids"])
    assert n > CONTEXT
    with pytest.raises(InputError, match=f"input is {n} tokens; model '{name}' reads at most {CONTEXT}"):
        run(engine, loaded, DecodingParams(max_new_tokens=6), long_prompt)  # the engine alone refuses

    # the playground's summarization and translation cut it, say so, and log the run
    events = list(
        seq2seq_playground.text_generation(
            f"tiny-{name}", long_prompt, {"max_new_tokens": 6}, threading.Event(), task=TASKS[name]
        )
    )
    final = events[-1]
    assert isinstance(final, GenerationRun)
    assert f"input cut from {n} to {CONTEXT} tokens (the model's max context)" in final.result.notes
    assert final.result.metrics.prompt_tokens == CONTEXT
    truncated = loaded.tokenizer(long_prompt, return_tensors="pt", truncation=True, max_length=CONTEXT)
    ref = loaded.model.generate(**truncated, do_sample=False, max_new_tokens=6)
    assert list(final.result.sequences[0].token_ids) == new_tokens(loaded, ref[0])
    payload = final.to_json()
    json.dumps(payload)
    assert payload["notes"] == list(final.result.notes) and payload["run_id"] == final.run_id


# -- engine bugs found while writing these tests, now fixed ---------------------------------------


def test_streamed_raw_probabilities_are_those_of_the_model(engine, seq2seq_models) -> None:
    loaded = seq2seq_models["bart"]
    _, result = run(engine, loaded, DecodingParams(max_new_tokens=6))
    ref = reference(loaded, do_sample=False, max_new_tokens=6, output_logits=True, return_dict_in_generate=True)
    for step, logits in zip(result.steps, ref.logits):
        assert step.raw_prob == pytest.approx(torch.softmax(logits[0], -1)[step.token_id].item(), abs=1e-5)


def test_max_new_tokens_past_the_decoder_positions_is_fitted(engine, seq2seq_models, monkeypatch) -> None:
    loaded = seq2seq_models["marian"]
    monkeypatch.setattr(loaded.model.generation_config, "forced_eos_token_id", None)
    eos_bonus(monkeypatch, loaded, -100.0)  # never ends by itself
    _, result = run(engine, loaded, DecodingParams(max_new_tokens=CONTEXT + 16))
    assert len(result.sequences[0].token_ids) <= CONTEXT and result.notes


@pytest.mark.parametrize("name", ["bart", "marian"])
def test_a_run_that_reaches_max_new_tokens_ends_for_its_length_even_with_a_forced_end_token(engine, seq2seq_models, monkeypatch, name) -> None:
    loaded = seq2seq_models[name]
    eos_bonus(monkeypatch, loaded, -100.0)  # the model itself never ends
    _, result = run(engine, loaded, DecodingParams(max_new_tokens=5))
    eos = loaded.model.generation_config.eos_token_id
    assert len(result.sequences[0].token_ids) == 5 and result.sequences[0].token_ids[-1] == eos  # forced there
    assert result.finish_reason == FinishReason.LENGTH  # (it said "eos": the model had no say in it)
