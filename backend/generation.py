"""The generation engine: one implementation for every generative task (decoder-only text
generation, encoder-decoder summarization and translation).

It runs transformers' `generate()` in a worker thread with the explicit decoding chain of
`backend.processors` and the capture of `backend.capture`, and yields one `TokenEvent` per new
token, then a `GenerationDone` with the whole result. Beam search and several returned
sequences cannot stream (transformers refuses a streamer there): they yield only the result,
with every sequence, its score, and the per-token evidence of each, taken from generate()'s
scores and raw logits.

Prefill and decode, as the seeds teach them: the first forward pass reads the whole prompt and
fills the KV cache (its cost is the time to first token); every later pass reads one token and
reuses the cache (its cost is the time per output token).
"""

from __future__ import annotations

import math
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, StopStringCriteria

from backend.batching import BatchRequest, DecodeScheduler, ServingStats, batchable
from backend.decode_process import ProcessScheduler
from backend.beams import BeamObserver, BeamTree, stop_checker
from backend.capture import (
    END_OF_STREAM,
    FinalTap,
    PendingStep,
    RawStep,
    RawTap,
    StepChannel,
    StepStreamer,
    TokenStep,
    decode_step,
    step_numbers,
)
from backend.errors import InputError
from backend.kvcache import CacheSize, cache_size, measured_bytes
from backend.metrics import MemoryMeter, RunMetrics
from backend.params import DecodingParams
from backend.processors import DecodingChain, ModelRules, SequentialProcessor, build_chain, neutral_generate_kwargs
from backend.registry import Family, LoadedModel


class FinishReason:
    EOS = "eos"  # the model chose an end-of-sequence token
    LENGTH = "length"  # max_new_tokens reached
    STOP_SEQUENCE = "stop_sequence"  # one of the stop sequences appeared (cut from the text)
    CANCELLED = "cancelled"  # Stop was pressed; the partial output is kept
    STOP = "stop"  # a remote engine ended it at an end token or a stop sequence, without saying which


@dataclass(frozen=True)
class GeneratedSequence:
    text: str
    token_ids: tuple[int, ...]
    score: float | None  # beam search: the length-normalised beam score; sampling: sum of log p
    finish_reason: str
    steps: tuple[TokenStep, ...]


@dataclass(frozen=True)
class GenerationResult:
    sequences: tuple[GeneratedSequence, ...]  # the best (or only) one first
    metrics: RunMetrics
    seed: int
    params: DecodingParams  # as applied (seed filled in, max_new_tokens fitted to the context)
    chain: DecodingChain
    notes: tuple[str, ...]  # what was adjusted, in words
    input_token_ids: tuple[int, ...] = ()  # what the model read (the encoder's input for a seq2seq model)
    kv_cache: CacheSize | None = None  # the KV cache at the end (None: the config does not say, or no cache)
    max_context: int = 0  # tokens the model reads at most (the registry's max_context)
    context_used: int = 0  # of those, what the run filled (a decoder: prompt + new tokens; a seq2seq model: its source)
    beam_tree: BeamTree | None = None  # beam search: the hypotheses it weighed
    remote: dict[str, Any] | None = None  # a remote engine's run: engine, base_url, model, probabilities, timings

    @property
    def text(self) -> str:
        return self.sequences[0].text

    def cost_json(self) -> dict[str, Any]:
        """What the run cost, for the API and the cost view: the timeline (prefill = time to
        first token, then decode; each token's arrival), the KV cache and the context used."""
        m = self.metrics
        decode = m.total_s - m.ttft_s if m.ttft_s is not None else None
        return {
            "timeline": {
                "prefill_s": m.ttft_s,
                "decode_s": decode,
                "total_s": m.total_s,
                "token_times": [step.elapsed_s for step in self.steps],
            },
            "kv_cache_bytes": None if self.kv_cache is None else (self.kv_cache.measured_bytes or self.kv_cache.formula_bytes),
            "kv_cache": None if self.kv_cache is None else self.kv_cache.to_json(),
            "context": {"used": self.context_used, "max": self.max_context, "prompt": m.prompt_tokens, "new": m.new_tokens},
        }

    @property
    def steps(self) -> tuple[TokenStep, ...]:
        return self.sequences[0].steps

    @property
    def finish_reason(self) -> str:
        return self.sequences[0].finish_reason


@dataclass(frozen=True)
class TokenEvent:
    step: TokenStep


@dataclass(frozen=True)
class GenerationDone:
    result: GenerationResult


GenerationEvent = TokenEvent | GenerationDone


class CancelCriteria(StoppingCriteria):
    """Ends generation at the next step once the event is set (Gradio's cancel alone does not
    stop a generate() thread)."""

    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.cancel.is_set(), dtype=torch.bool, device=input_ids.device)


@dataclass(frozen=True)
class PreparedRun:
    """A run ready to go: the input tokenized and checked against the context, the parameters
    as they will be applied (seed chosen, max_new_tokens fitted) and the chain they make."""

    inputs: dict[str, torch.Tensor]
    prompt_tokens: int
    start_length: int  # length of the sequence generate() extends (prompt, or decoder start)
    params: DecodingParams
    notes: tuple[str, ...]
    eos_ids: tuple[int, ...]
    chain: DecodingChain

    @property
    def input_token_ids(self) -> tuple[int, ...]:
        return tuple(self.inputs["input_ids"][0].tolist())


class GenerationEngine:
    """Runs the generations of the process. With `max_batch` > 1 the streaming runs of a decoder
    model decode together (backend.batching: one forward pass per step over all of them, each
    with its own chain and random generator); beam search, several returned sequences and
    encoder-decoder models run alone, one at a time (generate() and torch's global random
    generator). With `max_batch` 1 every run runs alone, one at a time.

    `decode_process`: a CPU model's batch decodes in a worker process of its own
    (backend.decode_process), with `threads` torch threads there; otherwise in a thread here."""

    def __init__(self, max_batch: int = 1, *, decode_process: bool = False, threads: int = 1) -> None:
        self._lock = threading.Lock()
        self.max_batch = max_batch
        self.decode_process = decode_process
        self.threads = threads
        self._schedulers: dict[int, DecodeScheduler | ProcessScheduler] = {}
        self._schedulers_lock = threading.Lock()

    def stream(
        self,
        loaded: LoadedModel,
        prompt: str,
        params: DecodingParams,
        cancel: threading.Event,
        *,
        truncate_input: bool = False,
    ) -> Iterator[GenerationEvent]:
        """Generate from `prompt`. Yields TokenEvents (streaming modes only), then GenerationDone.

        `truncate_input`: an encoder-decoder input longer than the model's context is cut to
        fit (and a note says so) instead of being refused."""
        yield from self.run(loaded, self.prepare(loaded, prompt, params, truncate_input=truncate_input), cancel)

    def prepare(
        self, loaded: LoadedModel, prompt: str, params: DecodingParams, *, truncate_input: bool = False
    ) -> PreparedRun:
        """Tokenize and check the input, fit the parameters, choose the seed (when none is given)
        and build the chain: everything a run is before its first token (raises InputError)."""
        prepared = _prepare(loaded, prompt, params, truncate_input)
        seed = params.seed if params.seed is not None else secrets.randbelow(2**31)
        applied = replace(prepared.params, seed=seed)
        return replace(prepared, params=applied)  # (the chain does not depend on the seed)

    def run(self, loaded: LoadedModel, prepared: PreparedRun, cancel: threading.Event) -> Iterator[GenerationEvent]:
        """Run a prepared generation: TokenEvents (streaming modes only), then GenerationDone. A
        run that decodes with its model's others is handed to their loop at once (its prompt is
        prefilled while the caller logs its start; a caller that gives up on it sets `cancel`);
        the others start at the first next()."""
        if self.batches(loaded, prepared):
            return _stream_batched(self._scheduler(loaded), loaded, prepared, cancel)
        return self._run_alone(loaded, prepared, cancel)

    def _run_alone(self, loaded: LoadedModel, prepared: PreparedRun, cancel: threading.Event) -> Iterator[GenerationEvent]:
        with self._lock:
            if prepared.params.streams:
                yield from _stream_one(loaded, prepared, cancel)
            else:
                yield from _generate_many(loaded, prepared, cancel)


    def batches(self, loaded: LoadedModel, prepared: PreparedRun) -> bool:
        """Whether this run decodes together with the model's other streaming runs."""
        return (
            self.max_batch > 1
            and prepared.params.streams
            and prepared.params.use_cache  # (the batch shares a cache; without one a run goes alone)
            and loaded.spec.family is Family.DECODER
            and batchable(loaded.model)
        )

    def decoding_now(self) -> int:
        """How many sequences decode together now, over every model (cheap: no figures)."""
        with self._schedulers_lock:
            schedulers = list(self._schedulers.values())
        return sum(scheduler.decoding for scheduler in schedulers)

    def serving_stats(self) -> list[tuple[str, ServingStats]]:
        """The live figures of every model that is decoding (or did, lately)."""
        with self._schedulers_lock:
            schedulers = list(self._schedulers.values())
        return [(scheduler.name, scheduler.stats()) for scheduler in schedulers]

    def _scheduler(self, loaded: LoadedModel) -> DecodeScheduler | ProcessScheduler:
        key = id(loaded.model)
        stale: list[DecodeScheduler | ProcessScheduler] = []
        with self._schedulers_lock:
            scheduler = self._schedulers.get(key)
            if scheduler is None:
                # the model was loaded again (the registry had let it go): its former scheduler
                # takes no more runs, and its decoding process ends once the runs it has are done
                for other, known in list(self._schedulers.items()):
                    if known.name == loaded.spec.name:
                        stale.append(self._schedulers.pop(other))
                scheduler = DecodeScheduler(
                    loaded.model, loaded.device, self.max_batch, self._lock, on_exit=self._forget, name=loaded.spec.name
                )
                if self.decode_process and loaded.device.type == "cpu":
                    scheduler = ProcessScheduler(scheduler, threads=self.threads, on_exit=self._forget)
                self._schedulers[key] = scheduler
        for former in stale:
            if isinstance(former, ProcessScheduler):
                former.close_when_idle()
        return scheduler

    def close(self) -> None:
        """End the decoding processes (at the app's end; runs still decoding there fail)."""
        with self._schedulers_lock:
            schedulers = list(self._schedulers.values())
        for scheduler in schedulers:
            if isinstance(scheduler, ProcessScheduler):
                scheduler.close()

    def _forget(self, scheduler: DecodeScheduler | ProcessScheduler) -> None:
        """An idle scheduler lets its model go (the registry may have unloaded it)."""
        with self._schedulers_lock:
            for key, known in list(self._schedulers.items()):
                if known is scheduler:
                    del self._schedulers[key]

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the engine: no generation runs meanwhile (the token inspector switches the
        model's attention implementation while it reads attention weights)."""
        with self._lock:
            yield


def decoding_chain(loaded: LoadedModel, params: DecodingParams, start_length: int) -> DecodingChain:
    """The chain a run with these parameters (as applied) goes through on this model: the
    engine's and the token inspector's, so that both apply the very same stages."""
    return build_chain(
        params,
        prompt_length=start_length,
        eos_token_ids=eos_ids(loaded),
        rules=ModelRules.from_generation_config(loaded.model.generation_config),
    )


def start_length(loaded: LoadedModel, prompt_tokens: int) -> int:
    """Length of the sequence generate() extends before the first new token: the prompt for a
    decoder, the decoder start token for an encoder-decoder."""
    return 1 if loaded.spec.family is Family.ENCODER_DECODER else prompt_tokens


# -- preparation ------------------------------------------------------------------------------


def eos_ids(loaded: LoadedModel) -> tuple[int, ...]:
    eos = loaded.model.generation_config.eos_token_id
    if eos is None:
        eos = loaded.tokenizer.eos_token_id
    if eos is None:
        return ()
    return tuple(eos) if isinstance(eos, (list, tuple)) else (int(eos),)


def _prepare(loaded: LoadedModel, prompt: str, params: DecodingParams, truncate_input: bool) -> PreparedRun:
    spec = loaded.spec
    if not prompt or not prompt.strip():
        raise InputError("prompt", "prompt must be non-empty text, got an empty prompt.")
    encoded = loaded.tokenizer(prompt, return_tensors="pt")
    n = int(encoded["input_ids"].shape[1])
    notes: list[str] = []
    limit = spec.max_context
    if spec.family is Family.ENCODER_DECODER:
        if n > limit:
            if not truncate_input:
                raise InputError(
                    "prompt", f"input is {n} tokens; model {spec.name!r} reads at most {limit} (its max context)."
                )
            encoded = loaded.tokenizer(prompt, return_tensors="pt", truncation=True, max_length=limit)
            notes.append(f"input cut from {n} to {limit} tokens (the model's max context)")
            n = limit
        # The decoder has its own position table (BART, Marian; T5's relative positions have
        # none): the last new token is never fed back, so at most `positions` new tokens fit.
        positions = getattr(loaded.model.config, "max_position_embeddings", None)
        if isinstance(positions, int) and params.max_new_tokens > positions:
            notes.append(
                f"max_new_tokens lowered from {params.max_new_tokens} to {positions}: the decoder of "
                f"{spec.name!r} has {positions} positions"
            )
            params = replace(params, max_new_tokens=positions, min_new_tokens=min(params.min_new_tokens, positions))
    else:
        if n >= limit:
            raise InputError(
                "prompt",
                f"prompt is {n} tokens; model {spec.name!r} reads at most {limit} tokens in all "
                f"(its max context), leaving no room for a new token.",
            )
        room = limit - n
        if params.max_new_tokens > room:
            notes.append(
                f"max_new_tokens lowered from {params.max_new_tokens} to {room}: the prompt is {n} tokens "
                f"and the context holds {limit}"
            )
            params = replace(params, max_new_tokens=room, min_new_tokens=min(params.min_new_tokens, room))
    inputs = {k: v.to(loaded.device) for k, v in encoded.items() if k in ("input_ids", "attention_mask")}
    ignored = ModelRules.from_generation_config(loaded.model.generation_config).ignored
    notes.extend(f"the checkpoint's generation_config sets {name}, which this playground does not apply" for name in ignored)
    chain = decoding_chain(loaded, params, start_length(loaded, n))
    return PreparedRun(inputs, n, start_length(loaded, n), params, tuple(notes), eos_ids(loaded), chain)


def input_token_ids(loaded: LoadedModel, text: str) -> tuple[int, ...]:
    """The tokens a run on `text` (as the person typed it) made the model read: the model's prefix
    first, and an encoder-decoder's input cut to its context as the generative tabs cut it."""
    truncate = loaded.spec.family is Family.ENCODER_DECODER
    return _prepare(loaded, loaded.spec.prefix + text, DecodingParams(max_new_tokens=1), truncate).input_token_ids


def _generate_kwargs(
    loaded: LoadedModel, prepared: PreparedRun, params: DecodingParams, cancel: threading.Event
) -> dict[str, Any]:
    kwargs: dict[str, Any] = neutral_generate_kwargs(params)
    kwargs["stopping_criteria"] = StoppingCriteriaList([CancelCriteria(cancel)])
    if loaded.model.generation_config.pad_token_id is None:
        pad = loaded.tokenizer.pad_token_id
        kwargs["pad_token_id"] = pad if pad is not None else (prepared.eos_ids[0] if prepared.eos_ids else 0)
    if params.stop_sequences:
        kwargs["stop_strings"] = list(params.stop_sequences)
        kwargs["tokenizer"] = loaded.tokenizer
    return kwargs


# -- the streaming path (one sequence) --------------------------------------------------------


def _run_in_thread(target: Any) -> tuple[threading.Thread, dict[str, BaseException]]:
    errors: dict[str, BaseException] = {}

    def guarded() -> None:
        try:
            target()
        except BaseException as exc:  # handed to the consumer thread, which re-raises it
            errors["error"] = exc

    thread = threading.Thread(target=guarded, name="generate", daemon=True)
    thread.start()
    return thread, errors


def _stream_one(loaded: LoadedModel, prepared: PreparedRun, cancel: threading.Event) -> Iterator[GenerationEvent]:
    params, chain = prepared.params, prepared.chain
    raw_tap, final_tap = RawTap(), FinalTap()
    meter = MemoryMeter(loaded.device)
    streamer = StepStreamer(raw_tap, final_tap, meter.tick)
    kwargs = _generate_kwargs(loaded, prepared, params, cancel)
    # The raw distribution is read from the model's output itself, not by a tap at the head of
    # our chain: generate() runs its own processors (forced BOS/EOS, suppressed tokens, bad
    # words...) before the ones we pass, and such a tap would report a forced token as certain.
    kwargs["logits_processor"] = chain.processors(last=final_tap)
    kwargs["streamer"] = streamer

    holder: dict[str, Any] = {}

    def work() -> None:
        hook = loaded.model.register_forward_hook(raw_tap.record)
        try:
            torch.manual_seed(params.seed)
            with torch.inference_mode():  # lighter than generate()'s own no_grad: no view or version tracking
                holder["output"] = loaded.model.generate(**prepared.inputs, **kwargs, return_dict_in_generate=True)
        finally:
            hook.remove()
            streamer.end()  # wakes the consumer even if generate() raised

    def cache_bytes() -> int | None:
        thread.join()  # (generate() ends the stream just before it returns its output)
        output = holder.get("output")
        return None if output is None else measured_bytes(output.past_key_values)

    start = time.perf_counter()
    thread, errors = _run_in_thread(work)
    try:
        yield from _consume(streamer, loaded, prepared, cancel, start, meter, cache_bytes=cache_bytes)
    finally:
        if thread.is_alive():  # the consumer went away early: stop the worker within one step
            cancel.set()
        thread.join()
    if "error" in errors:
        raise errors["error"]


def _consume(
    channel: StepChannel, loaded: LoadedModel, prepared: PreparedRun, cancel: threading.Event, start: float,
    meter: MemoryMeter, crowd: Callable[[], int] = lambda: 1, cache_bytes: Callable[[], int | None] = lambda: None,
) -> Iterator[GenerationEvent]:
    """A run's TokenEvents as its steps arrive on the channel, then its GenerationDone (the
    solo and the batched path alike). Raises the run's error, if it failed. `crowd`: how many
    streams share the machine now; each then wakes less often (see _next_batch)."""
    params = prepared.params
    decode = token_decoder(loaded.tokenizer)
    raw_steps: list[RawStep] = []
    steps: list[TokenStep] = []
    ended = False
    while not ended:
        batch, ended = _next_batch(channel, first=not raw_steps, window=BATCH_SECONDS * max(1, crowd() // CROWD))
        for raw in step_numbers(batch, params.top_alternatives):
            raw_steps.append(raw)
            step = decode_step(raw, len(steps), decode, start)
            steps.append(step)
            yield TokenEvent(step)
    if channel.error is not None:
        raise channel.error
    end = time.perf_counter()
    token_ids = tuple(s.token_id for s in raw_steps)
    sequence = _finish_sequence(loaded, prepared, params, token_ids, tuple(steps), None, cancel)
    metrics = RunMetrics.from_times(
        start=start,
        token_times=[s.time for s in raw_steps],
        end=end,
        prompt_tokens=prepared.prompt_tokens,
        peak_memory_bytes=meter.finish(),
        memory_kind=meter.kind,
    )
    yield GenerationDone(_result(loaded, prepared, (sequence,), metrics, cache_bytes()))


def _stream_batched(
    scheduler: DecodeScheduler | ProcessScheduler, loaded: LoadedModel, prepared: PreparedRun, cancel: threading.Event
) -> Iterator[GenerationEvent]:
    """A streaming decoder run, decoded together with the others of its model: submitted now,
    streamed by the generator returned."""
    params = prepared.params
    meter = MemoryMeter(loaded.device, pid=scheduler.worker_pid)
    stop = None
    if params.stop_sequences:
        stop = StopStringCriteria(tokenizer=loaded.tokenizer, stop_strings=list(params.stop_sequences))
    request = BatchRequest(
        input_ids=prepared.inputs["input_ids"],
        params=params,
        processors=SequentialProcessor(tuple(stage.processor for stage in prepared.chain.stages)),
        eos_ids=frozenset(prepared.eos_ids),
        stop=stop,
        cancel=cancel,
        channel=StepChannel(),
        on_token=meter.tick,
    )
    scheduler.submit(request)
    return _stream_submitted(scheduler, request, loaded, prepared, cancel, meter)


def _stream_submitted(
    scheduler: DecodeScheduler | ProcessScheduler,
    request: BatchRequest,
    loaded: LoadedModel,
    prepared: PreparedRun,
    cancel: threading.Event,
    meter: MemoryMeter,
) -> Iterator[GenerationEvent]:
    try:
        yield from _consume(
            request.channel, loaded, prepared, cancel, request.submitted, meter, crowd=lambda: scheduler.decoding,
            cache_bytes=lambda: request.channel.cache_bytes,
        )
    finally:
        if not request.channel.finished.is_set():  # the consumer went away: the scheduler drops the row
            cancel.set()


#: The consumer hands out the first token at once, then sleeps through windows of this length
#: and takes every step that arrived meanwhile, computing their numbers together: waking up
#: and paying per-op overhead for every token would slow the generation thread (they share the CPU).
BATCH_SECONDS = 0.05


#: With more streams than this decoding together, each consumer sleeps through proportionally
#: longer windows: every wake-up takes the interpreter lock from the decoding loop.
CROWD = 4


def _next_batch(channel: StepChannel, *, first: bool, window: float = BATCH_SECONDS) -> tuple[list[PendingStep], bool]:
    """The next steps from the channel, and whether the stream has ended."""
    if not first:
        channel.finished.wait(window)  # woken early only by the end of the stream
    batch = [channel.queue.get()]  # at least one step (a slow model may need longer)
    while True:
        try:
            batch.append(channel.queue.get_nowait())
        except queue.Empty:
            break
    if END_OF_STREAM in batch:
        return batch[: batch.index(END_OF_STREAM)], True
    return batch, False


# -- the non-streaming path (beams, several sequences) ----------------------------------------


def _generate_many(loaded: LoadedModel, prepared: PreparedRun, cancel: threading.Event) -> Iterator[GenerationEvent]:
    params, chain = prepared.params, prepared.chain
    meter = MemoryMeter(loaded.device)
    kwargs = _generate_kwargs(loaded, prepared, params, cancel)
    observer = _beam_observer(loaded, prepared) if params.num_beams > 1 else None
    kwargs.update(
        logits_processor=chain.processors(last=observer),
        return_dict_in_generate=True,
        output_scores=True,
        output_logits=True,
    )
    holder: dict[str, Any] = {}

    def work() -> None:
        torch.manual_seed(params.seed)
        with torch.inference_mode():
            holder["output"] = loaded.model.generate(**prepared.inputs, **kwargs)

    start = time.perf_counter()
    thread, errors = _run_in_thread(work)
    thread.join()
    end = time.perf_counter()
    if "error" in errors:
        raise errors["error"]
    out = holder["output"]
    decode = token_decoder(loaded.tokenizer)
    new = out.sequences[:, prepared.start_length :].tolist()
    beam_indices = out.beam_indices.tolist() if getattr(out, "beam_indices", None) is not None else None
    beam_scores = out.sequences_scores.tolist() if getattr(out, "sequences_scores", None) is not None else None
    sequences = []
    for i, ids in enumerate(new):
        ids = _strip_after_eos(ids, prepared.eos_ids, len(out.scores))
        rows = [beam_indices[i][t] if beam_indices is not None else i for t in range(len(ids))]
        pending = [PendingStep(tok, out.logits[t][row], out.scores[t][row], end) for t, (tok, row) in enumerate(zip(ids, rows))]
        steps = [decode_step(raw, t, decode, start) for t, raw in enumerate(step_numbers(pending, params.top_alternatives))]
        score = beam_scores[i] if beam_scores is not None else sum(math.log(max(s.prob, 1e-45)) for s in steps)
        sequences.append(_finish_sequence(loaded, prepared, params, tuple(ids), tuple(steps), score, cancel))
    tree = None
    if observer is not None:
        tree = observer.finish([(s.token_ids, s.score) for s in sequences], beam_indices, out.scores)
    meter.sample()
    total = end - start
    n_new = len(sequences[0].token_ids)
    metrics = RunMetrics(
        prompt_tokens=prepared.prompt_tokens,
        new_tokens=n_new,
        ttft_s=None,  # nothing is shown before the end: beams are compared until the last step
        tpot_s=total / n_new if n_new else None,
        tokens_per_s=sum(len(s.token_ids) for s in sequences) / total if total > 0 else None,
        total_s=total,
        peak_memory_bytes=meter.finish(),
        memory_kind=meter.kind,
    )
    yield GenerationDone(_result(loaded, prepared, tuple(sequences), metrics, measured_bytes(out.past_key_values), tree, len(out.scores)))


def _beam_observer(loaded: LoadedModel, prepared: PreparedRun) -> BeamObserver:
    """The observer that rebuilds a beam search's tree, judging candidates' ends as generate() does."""
    params = prepared.params
    stop = StopStringCriteria(loaded.tokenizer, list(params.stop_sequences)) if params.stop_sequences else None
    return BeamObserver(
        num_beams=params.num_beams,
        start_length=prepared.start_length,
        eos_count=len(prepared.eos_ids),
        length_penalty=params.length_penalty,
        ends=stop_checker(prepared.eos_ids, prepared.start_length + params.max_new_tokens, stop),
        decode=token_decoder(loaded.tokenizer),
    )


def _result(
    loaded: LoadedModel,
    prepared: PreparedRun,
    sequences: tuple[GeneratedSequence, ...],
    metrics: RunMetrics,
    measured_cache: int | None,
    beam_tree: BeamTree | None = None,
    steps: int | None = None,
) -> GenerationResult:
    """`steps`: the decoding steps generate() ran (for several sequences, the longest one's)."""
    params = prepared.params
    new_tokens = len(sequences[0].token_ids)
    kv = None
    if params.use_cache:
        rows = max(params.num_beams, params.num_return_sequences)  # generate() decodes this many rows
        kv = cache_size(
            loaded, prepared.prompt_tokens, new_tokens if steps is None else steps, sequences=rows, measured=measured_cache
        )
    decoder = loaded.spec.family is Family.DECODER
    return GenerationResult(
        sequences, metrics, params.seed, params, prepared.chain, prepared.notes, prepared.input_token_ids, kv,
        loaded.spec.max_context, prepared.prompt_tokens + new_tokens if decoder else prepared.prompt_tokens, beam_tree,
    )


def _strip_after_eos(ids: list[int], eos_ids: Sequence[int], steps: int) -> list[int]:
    """A finished sequence is padded to the batch length: keep it up to its first eos."""
    ids = ids[:steps]
    for t, token_id in enumerate(ids):
        if token_id in eos_ids:
            return ids[: t + 1]
    return ids


# -- shared -----------------------------------------------------------------------------------


#: SentencePiece's word-start mark ("▁open" is " open" inside a text).
WORD_START = "\u2581"


def token_decoder(tokenizer: Any) -> Callable[[int], str]:
    """token id -> its text as it reads inside a text (each id decoded once). A SentencePiece
    tokenizer (Marian, T5, LLaMA) drops a word-start mark's space when a token is decoded alone:
    it is put back, so that "▁open" shows " open" and stays apart from "open", as GPT-2's
    byte-level "Ġopen" already does."""
    cache: dict[int, str] = {}

    def decode(token_id: int) -> str:
        text = cache.get(token_id)
        if text is None:
            text = tokenizer.decode([token_id])
            piece = tokenizer.convert_ids_to_tokens(token_id)
            if isinstance(piece, str) and piece.startswith(WORD_START) and text and not text.startswith(" "):
                text = " " + text
            cache[token_id] = text
        return text

    return decode


def _finish_sequence(
    loaded: LoadedModel,
    prepared: PreparedRun,
    params: DecodingParams,
    token_ids: tuple[int, ...],
    steps: tuple[TokenStep, ...],
    score: float | None,
    cancel: threading.Event,
) -> GeneratedSequence:
    text = loaded.tokenizer.decode(list(token_ids), skip_special_tokens=True)
    cut = min((i for i in (text.find(s) for s in params.stop_sequences) if i >= 0), default=-1)
    # the checkpoint's forced_eos_token_id puts the end token at the last position max_new_tokens
    # allows: there the run ended for its length, whatever the model preferred
    forced_end = bool(ModelRules.from_generation_config(loaded.model.generation_config).forced_eos_token_ids)
    if cut >= 0:
        text, reason = text[:cut], FinishReason.STOP_SEQUENCE
    elif forced_end and len(token_ids) >= params.max_new_tokens:
        reason = FinishReason.LENGTH
    elif token_ids and token_ids[-1] in prepared.eos_ids:
        reason = FinishReason.EOS
    elif len(token_ids) >= params.max_new_tokens:
        reason = FinishReason.LENGTH
    elif cancel.is_set():
        reason = FinishReason.CANCELLED
    else:
        reason = FinishReason.LENGTH
    return GeneratedSequence(text, token_ids, score, reason, steps)
