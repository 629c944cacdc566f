"""Generations that decode together: each keeps its own chain, seed, evidence, stop sequences,
limits and Stop, and gets the tokens it gets alone."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
import torch
from transformers import LogitsProcessor

from backend.batching import batchable
from backend.generation import GenerationDone, GenerationEngine, GenerationResult, PreparedRun, TokenEvent
from backend.params import DecodingParams
from backend.processors import DecodingChain, Stage
from backend.registry import Family, LoadedModel, ModelRegistry, ModelSpec, Task

PROMPTS = [
    "Return the number of items",
    "The socket module provides",
    "This function raises ValueError if the argument",
    "Create",
]


@pytest.fixture(scope="module")
def loaded(long_gpt2_dir: Path) -> LoadedModel:
    spec = ModelSpec("long", Task.TEXT_GENERATION, Family.DECODER, "tiny GPT-2, long context", 1100, path=long_gpt2_dir)
    return ModelRegistry((spec,), max_loaded=1, device="cpu", offline=True).get("long")


def request(i: int) -> tuple[str, DecodingParams]:
    """Sixteen different requests: half greedy, half sampled with distinct seeds and chains."""
    prompt = PROMPTS[i % len(PROMPTS)] * (1 + i % 3)
    if i % 2 == 0:
        params = DecodingParams(max_new_tokens=20 + i, repetition_penalty=1.0 + 0.05 * (i % 3))
    else:
        params = DecodingParams(
            max_new_tokens=20 + i, temperature=0.7 + 0.05 * i, top_k=10 * i, top_p=0.9, seed=1000 + i,
            presence_penalty=0.3, frequency_penalty=0.2 * (i % 2), stop_sequences=("xyz",),
        )
    return prompt, params


class BreakingProcessor(LogitsProcessor):
    """A chain stage that raises once the sequence is `length` tokens long."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[1] >= self.length:
            raise RuntimeError("this request's chain broke")
        return scores


class BreakableEngine(GenerationEngine):
    """The engine, except that a run with presence_penalty 1.5 gets a chain that breaks at its 5th
    token (its chain goes to the decoding process as any chain does)."""

    def prepare(self, loaded: LoadedModel, prompt: str, params: DecodingParams, **kwargs) -> PreparedRun:
        prepared = super().prepare(loaded, prompt, params, **kwargs)
        if params.presence_penalty != 1.5:
            return prepared
        breaking = Stage("break", "raises", BreakingProcessor(prepared.prompt_tokens + 4))
        return replace(prepared, chain=DecodingChain(prepared.chain.stages + (breaking,)))


@pytest.fixture(scope="module", params=["thread", "process"])
def engine(request, loaded: LoadedModel) -> Iterator[GenerationEngine]:
    """Batching in a thread of this process, and in a decoding process of its own (backend.decode_process),
    which the fixture waits for (until it is ready, runs decode in a thread)."""
    engine = BreakableEngine(max_batch=16, decode_process=request.param == "process")
    if request.param == "process":
        worker_of(engine, loaded)
    yield engine
    engine.close()


def worker_of(engine: GenerationEngine, loaded: LoadedModel) -> int:
    """Run once (which starts the model's decoding process), wait until the process is ready; its pid."""
    list(engine.stream(loaded, PROMPTS[0], DecodingParams(max_new_tokens=2), threading.Event()))
    deadline = time.time() + 120
    while not engine.serving_stats()[0][1].decoded_in.startswith("worker process") and time.time() < deadline:
        time.sleep(0.1)
    where = engine.serving_stats()[0][1].decoded_in
    assert where.startswith("worker process"), where
    return int(where.split()[-1])


def run_alone(loaded: LoadedModel, prompt: str, params: DecodingParams) -> GenerationResult:
    events = list(GenerationEngine(max_batch=1).stream(loaded, prompt, params, threading.Event()))
    assert isinstance(events[-1], GenerationDone)
    return events[-1].result


def run_together(engine: GenerationEngine, loaded: LoadedModel, jobs: list[tuple[str, DecodingParams]], cancels=None):
    """Start every job at once in its own thread (as Gradio's workers do); their results or errors."""
    results: list[object] = [None] * len(jobs)
    cancels = cancels or [threading.Event() for _ in jobs]
    start = threading.Barrier(len(jobs))

    def work(i: int) -> None:
        start.wait()
        try:
            results[i] = list(engine.stream(loaded, jobs[i][0], jobs[i][1], cancels[i]))
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_the_model_can_batch(loaded: LoadedModel) -> None:
    assert batchable(loaded.model)


def test_sixteen_requests_together_get_the_tokens_and_probabilities_they_get_alone(
    engine: GenerationEngine, loaded: LoadedModel
) -> None:
    jobs = [request(i) for i in range(16)]
    together = run_together(engine, loaded, jobs)
    (_, stats), = engine.serving_stats()
    assert stats.largest_batch >= 8  # they did decode together
    for (prompt, params), events in zip(jobs, together, strict=True):
        assert isinstance(events, list), events
        result = events[-1].result
        alone = run_alone(loaded, prompt, params)
        assert result.sequences[0].token_ids == alone.sequences[0].token_ids, prompt
        assert result.finish_reason == alone.finish_reason and result.text == alone.text
        for mine, solo in zip(result.steps, alone.steps, strict=True):
            assert mine.prob == pytest.approx(solo.prob, abs=1e-4)
            assert mine.raw_prob == pytest.approx(solo.raw_prob, abs=1e-4)
            assert [a.token_id for a in mine.alternatives[:3]] == [a.token_id for a in solo.alternatives[:3]]
        assert [e.step.token_id for e in events if isinstance(e, TokenEvent)] == list(result.sequences[0].token_ids)


def test_stop_ends_one_request_and_the_others_run_to_their_end(engine: GenerationEngine, loaded: LoadedModel) -> None:
    jobs = [(PROMPTS[i % 4], DecodingParams(max_new_tokens=300, min_new_tokens=300, seed=i)) for i in range(16)]
    cancels = [threading.Event() for _ in jobs]
    threading.Timer(0.3, cancels[5].set).start()
    results = run_together(engine, loaded, jobs, cancels)
    lengths = [len(r[-1].result.steps) for r in results]
    assert results[5][-1].result.finish_reason == "cancelled" and 0 < lengths[5] < 300
    assert all(n == 300 for i, n in enumerate(lengths) if i != 5)


def test_bad_input_and_a_failing_chain_fail_only_their_own_request(engine: GenerationEngine, loaded: LoadedModel) -> None:
    jobs = [(PROMPTS[0], DecodingParams(max_new_tokens=40, seed=i)) for i in range(6)]
    jobs[2] = (PROMPTS[1], DecodingParams(max_new_tokens=40, presence_penalty=1.5))  # its chain breaks at its 5th token
    jobs[4] = ("word " * 2000, DecodingParams(max_new_tokens=40))  # longer than the context: refused
    results = run_together(engine, loaded, jobs)
    assert isinstance(results[2], RuntimeError) and "chain broke" in str(results[2])
    assert "reads at most 1100 tokens" in str(results[4])
    for i in (0, 1, 3, 5):
        assert len(results[i][-1].result.steps) == 40  # the others ran to their end


def test_a_request_that_arrives_joins_within_a_few_steps(engine: GenerationEngine, loaded: LoadedModel) -> None:
    long_run = engine.stream(loaded, PROMPTS[0], DecodingParams(max_new_tokens=1000, min_new_tokens=1000), threading.Event())
    seen = 0
    for event in long_run:  # let it decode a while
        seen += 1
        if seen >= 30:
            break
    before = fresh_stats(engine)
    newcomer = engine.stream(loaded, PROMPTS[1], DecodingParams(max_new_tokens=5), threading.Event())
    first = next(newcomer)
    (_, after), = engine.serving_stats()
    assert isinstance(first, TokenEvent)
    assert after.steps - before.steps <= 10  # it joined within a few steps, not after the long run's ~970 more
    rest = list(newcomer)
    assert isinstance(rest[-1], GenerationDone) and len(rest[-1].result.steps) == 5
    long_run.close()
    deadline = time.time() + 10
    while time.time() < deadline and engine.serving_stats() and engine.serving_stats()[0][1].decoding:
        time.sleep(0.05)
    assert not engine.serving_stats() or engine.serving_stats()[0][1].decoding == 0  # the closed stream left the batch


def test_a_batched_run_decodes_from_the_moment_it_is_handed_over(engine: GenerationEngine, loaded: LoadedModel) -> None:
    """engine.run submits at once (the caller logs the run's start meanwhile); the tokens wait in
    its channel for the first next()."""
    params = DecodingParams(max_new_tokens=12, min_new_tokens=12, seed=4)
    tokens_before = engine.serving_stats()[0][1].tokens if engine.serving_stats() else 0
    events = engine.run(loaded, engine.prepare(loaded, PROMPTS[2], params), threading.Event())
    deadline = time.time() + 30
    while time.time() < deadline and (not engine.serving_stats() or engine.serving_stats()[0][1].tokens < tokens_before + 12):
        time.sleep(0.01)
    assert engine.serving_stats()[0][1].tokens >= tokens_before + 12  # all of it decoded, nothing read yet
    result = list(events)[-1].result
    assert result.sequences[0].token_ids == run_alone(loaded, PROMPTS[2], params).sequences[0].token_ids


def fresh_stats(engine: GenerationEngine):
    """The serving figures just after a step was counted (a decoding process reports its steps
    every few milliseconds: figures read just after a report lag behind by nothing)."""
    (_, first), = engine.serving_stats()
    while True:
        time.sleep(0.0005)  # (not a busy loop: the thread that receives the reports needs the interpreter too)
        (_, now), = engine.serving_stats()
        if now.steps != first.steps:
            return now


def test_a_decoding_process_that_dies_fails_its_runs_and_the_model_keeps_serving(loaded: LoadedModel) -> None:
    engine = GenerationEngine(max_batch=16, decode_process=True)
    try:
        pid = worker_of(engine, loaded)
        run = engine.stream(loaded, PROMPTS[0], DecodingParams(max_new_tokens=1000, min_new_tokens=1000), threading.Event())
        assert isinstance(next(run), TokenEvent)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match=r"the process that decoded long ended \(exit code -9\); this run was lost"):
            list(run)
        events = list(engine.stream(loaded, PROMPTS[1], DecodingParams(max_new_tokens=5), threading.Event()))
        assert len(events[-1].result.steps) == 5  # decoded here, while a new process starts
        successor = worker_of(engine, loaded)
        assert successor != pid
        events = list(engine.stream(loaded, PROMPTS[1], DecodingParams(max_new_tokens=5), threading.Event()))
        assert events[-1].result.text == run_alone(loaded, PROMPTS[1], DecodingParams(max_new_tokens=5)).text
    finally:
        engine.close()
    assert not psutil.pid_exists(successor)  # closed with the engine


def test_a_model_loaded_again_has_one_scheduler_and_its_former_process_ends(loaded: LoadedModel) -> None:
    engine = GenerationEngine(max_batch=16, decode_process=True)
    try:
        former = worker_of(engine, loaded)
        again = ModelRegistry((loaded.spec,), max_loaded=1, device="cpu", offline=True).get("long")  # (as after an unload)
        assert again.model is not loaded.model
        list(engine.stream(again, PROMPTS[1], DecodingParams(max_new_tokens=5), threading.Event()))
        (name, stats), = engine.serving_stats()  # one entry per model name, the new one's
        assert name == "long" and stats.tokens == 5
        deadline = time.time() + 30
        while psutil.pid_exists(former) and time.time() < deadline:
            time.sleep(0.1)
        assert not psutil.pid_exists(former)  # it decoded nothing more: closed at once
    finally:
        engine.close()


def test_the_roomy_cache_layer_holds_what_transformers_dynamic_layer_holds() -> None:
    """Step after step, and after the scheduler replaces its tensors (a sequence joins, one leaves):
    the same keys and values as DynamicLayer, which concatenates."""
    from transformers.cache_utils import DynamicLayer

    from backend.batching import RoomyLayer

    generator = torch.Generator().manual_seed(0)
    roomy, dynamic = RoomyLayer(), DynamicLayer()

    def both(new_keys: torch.Tensor, new_values: torch.Tensor) -> None:
        ours, theirs = roomy.update(new_keys, new_values), dynamic.update(new_keys, new_values)
        assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])
        assert roomy.get_seq_length() == dynamic.get_seq_length()

    both(torch.randn(2, 3, 7, 4, generator=generator), torch.randn(2, 3, 7, 4, generator=generator))  # a prefill
    for _ in range(80):  # past the first buffer's room
        both(torch.randn(2, 3, 1, 4, generator=generator), torch.randn(2, 3, 1, 4, generator=generator))
    for layer in (roomy, dynamic):  # a newcomer joins (its rows padded), then the first row leaves
        layer.keys = torch.cat([layer.keys, torch.zeros(1, 3, layer.keys.shape[2], 4)])
        layer.values = torch.cat([layer.values, torch.ones(1, 3, layer.values.shape[2], 4)])
    both(torch.randn(3, 3, 1, 4, generator=generator), torch.randn(3, 3, 1, 4, generator=generator))
    for layer in (roomy, dynamic):
        layer.keys, layer.values = layer.keys[1:, :, 5:], layer.values[1:, :, 5:]
    for _ in range(3):
        both(torch.randn(2, 3, 1, 4, generator=generator), torch.randn(2, 3, 1, 4, generator=generator))
