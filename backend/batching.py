"""Serving a room: the streaming generations of one decoder model decode together.

A `DecodeScheduler` per loaded model runs one loop in a thread of its own. At every step it
1. admits waiting requests (at most `max_batch` sequences decode together; more wait their turn):
   each newcomer's prompt goes through the model alone (its prefill), and its key/value cache
   joins the batch's, padded on the left to the batch's length;
2. chooses every sequence's next token from its own row of logits, through its own decoding
   chain (penalties count its own tokens) and its own random generator (seeded: its tokens do
   not depend on what runs beside it), and hands the step to the request's channel, with both
   rows of logits, exactly as the solo path's streamer does;
3. drops the sequences that ended (end of sequence, max_new_tokens, a stop sequence, Stop);
4. runs ONE forward pass over the newest token of every remaining sequence, with an attention
   mask that hides each row's left padding and each row's own positions.

It is built on transformers' own parts: the model's forward, `DynamicCache`, the logits
processors of the chain, `StopStringCriteria`; no model code of its own. transformers'
`ContinuousBatchingManager` (5.23) was not used: it takes only temperature, top-k and top-p per
request, returns only the chosen token's log-probability, and has no per-request seed
(`generation/continuous_batching/cb_logits_processors.py`), so it cannot carry a request's chain
or its evidence.

A sequence in a batch sees the same tokens as alone; its logits differ from a solo run's only by
float rounding (a batched matrix product sums in another order; padding is masked out).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache, LogitsProcessor, StoppingCriteria
from transformers.cache_utils import DynamicLayer

from backend.capture import PendingStep, StepChannel
from backend.params import DecodingParams

log = logging.getLogger(__name__)

#: A scheduler's thread ends after this many idle seconds (a new request starts it again).
IDLE_SECONDS = 30.0
#: The serving figures (tokens/s, time per token) are averaged over this many recent seconds.
STATS_WINDOW_SECONDS = 5.0


def batchable(model: torch.nn.Module) -> bool:
    """Whether the model's generations can share a cache: a decoder whose cache layers are plain
    DynamicLayers (sliding-window and other layouts keep the solo path)."""
    if getattr(model.config, "is_encoder_decoder", False):
        return False
    try:
        cache = DynamicCache(config=model.config)
    except (TypeError, ValueError):
        return False
    return bool(cache.layers) and all(type(layer) is DynamicLayer for layer in cache.layers)


@dataclass
class BatchRequest:
    """One streaming generation, as the scheduler runs it."""

    input_ids: torch.Tensor  # (1, prompt tokens), on the model's device
    params: DecodingParams  # as applied (seed chosen, max_new_tokens fitted)
    processors: LogitsProcessor  # the run's decoding chain, as one processor
    eos_ids: frozenset[int]
    stop: StoppingCriteria | None  # the run's stop sequences
    cancel: threading.Event
    channel: StepChannel
    on_token: Callable[[], None]  # called after each token (the memory meter)
    submitted: float = field(default_factory=time.perf_counter)


@dataclass
class _Row:
    """A request in the batch: its tokens so far and the logits its next token comes from."""

    request: BatchRequest
    sequence: torch.Tensor  # (1, prompt + max_new_tokens), filled up to `length`
    length: int
    cached: int  # of its tokens, how many the batch cache holds
    generator: torch.Generator | None
    next_logits: torch.Tensor  # (vocab,) float32

    @property
    def new_tokens(self) -> int:
        return self.length - int(self.request.input_ids.shape[1])


@dataclass(frozen=True)
class ServingStats:
    """The figures of the Serving view."""

    waiting: int  # requests not decoding yet
    decoding: int  # sequences that decode together now
    max_batch: int
    tokens_per_s: float  # all sequences together, over the last STATS_WINDOW_SECONDS
    time_per_token_s: float | None  # per stream: the mean time of a decoding step, same window
    tokens: int  # generated since the scheduler started
    steps: int
    largest_batch: int  # the most sequences that decoded together in one step, since the start
    decoded_in: str = "the app's process"  # or "worker process <pid>" (backend.decode_process)

    def to_json(self) -> dict[str, object]:
        return {
            "waiting": self.waiting,
            "decoding": self.decoding,
            "max_batch": self.max_batch,
            "tokens_per_s": self.tokens_per_s,
            "time_per_token_s": self.time_per_token_s,
            "tokens": self.tokens,
            "steps": self.steps,
            "largest_batch": self.largest_batch,
            "decoded_in": self.decoded_in,
        }


class Figures:
    """The serving figures of a decoding loop: what each step decoded, over a recent window."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._history: deque[tuple[float, int]] = deque()  # (time, tokens in the step)
        self._tokens = 0
        self._steps = 0
        self._largest = 0

    def record(self, now: float, rows: int) -> None:
        """One step that gave `rows` tokens (one per sequence) at `now`."""
        with self._lock:
            self._history.append((now, rows))
            while self._history and now - self._history[0][0] > STATS_WINDOW_SECONDS:
                self._history.popleft()
            self._tokens += rows
            self._steps += 1
            self._largest = max(self._largest, rows)

    def stats(self, waiting: int, decoding: int, max_batch: int) -> ServingStats:
        now = time.perf_counter()
        with self._lock:
            recent = [entry for entry in self._history if now - entry[0] <= STATS_WINDOW_SECONDS]
            tokens, steps, largest = self._tokens, self._steps, self._largest
        rate = sum(count for _, count in recent) / STATS_WINDOW_SECONDS if recent else 0.0
        tpot = None
        if len(recent) >= 2:
            tpot = (recent[-1][0] - recent[0][0]) / (len(recent) - 1)
        return ServingStats(waiting, decoding, max_batch, rate, tpot, tokens, steps, largest)


def merged(first: ServingStats, second: ServingStats) -> ServingStats:
    """The figures of two loops that serve one model (a decoding process and the thread that
    serves while it starts)."""
    times = [t for t in (first.time_per_token_s, second.time_per_token_s) if t is not None]
    return ServingStats(
        waiting=first.waiting + second.waiting,
        decoding=first.decoding + second.decoding,
        max_batch=first.max_batch,
        tokens_per_s=first.tokens_per_s + second.tokens_per_s,
        time_per_token_s=max(times) if times else None,
        tokens=first.tokens + second.tokens,
        steps=first.steps + second.steps,
        largest_batch=max(first.largest_batch, second.largest_batch),
        decoded_in=first.decoded_in,
    )


class RoomyLayer(DynamicLayer):
    """transformers' DynamicLayer, except that a step's keys and values are written into room kept
    at the end of the layer's buffers, where DynamicLayer copies its whole cache (torch.cat) to add
    them: 16 sequences of 100 tokens took 0.17 ms per tensor per layer to copy, 4 µs to write
    (`python -m bench.chain_speed` measures the loop with both). The keys and values it hands out
    are views of the filled part. When the scheduler replaces them (a newcomer joins the batch, a
    sequence leaves it), the next update copies them into new buffers once."""

    def __init__(self) -> None:
        super().__init__()
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None
        self._handed_out: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        length = self.get_seq_length()
        end = length + key_states.shape[-2]
        if (
            self._buffers is None
            or self._handed_out is None
            or self.keys is not self._handed_out[0]
            or self.values is not self._handed_out[1]
            or self._buffers[0].shape[-2] < end
            or self._buffers[0].shape[:2] != key_states.shape[:2]
        ):
            self._buffers = (self._roomy(self.keys, key_states, length, end), self._roomy(self.values, value_states, length, end))
        keys, values = self._buffers
        keys[:, :, length:end] = key_states
        values[:, :, length:end] = value_states
        self.keys, self.values = keys[:, :, :end], values[:, :, :end]
        self._handed_out = (self.keys, self.values)
        return self.keys, self.values

    @staticmethod
    def _roomy(states: torch.Tensor, new: torch.Tensor, length: int, end: int) -> torch.Tensor:
        """A buffer for `end` tokens and as many again (at least 64 more), holding `states`."""
        buffer = new.new_empty((*new.shape[:2], end + max(64, end), new.shape[-1]))
        if length:
            buffer[:, :, :length] = states
        return buffer


class DecodeScheduler:
    """Runs the streaming generations of one model together (see the module docstring).

    `lock` is held for each step (a forward pass and the token choices): a solo generation, an
    inspection or another model's scheduler runs between steps, never during one."""

    #: The process that decodes, when it is not this one (backend.decode_process): none here.
    worker_pid: int | None = None
    #: The layers of the batch's cache (bench.chain_speed compares transformers' DynamicLayer).
    cache_layer: type[DynamicLayer] = RoomyLayer

    def __init__(
        self,
        model: torch.nn.Module,
        device: torch.device,
        max_batch: int,
        lock: threading.Lock,
        on_exit: Callable[[DecodeScheduler], None] = lambda scheduler: None,
        name: str = "",
        on_step: Callable[[], None] = lambda: None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.name = name
        self.model = model
        self.device = device
        self.max_batch = max_batch
        self.lock = lock
        self.on_exit = on_exit
        self.on_step = on_step  # called by the loop after each step (backend.decode_process sends it on)
        self._condition = threading.Condition()
        self._waiting: deque[BatchRequest] = deque()
        self._rows: list[_Row] = []
        self._cache: DynamicCache | None = None
        self._thread: threading.Thread | None = None
        self.figures = Figures()

    # -- the public side ------------------------------------------------------------------------

    def submit(self, request: BatchRequest) -> None:
        with self._condition:
            self._waiting.append(request)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="decode-scheduler", daemon=True)
                self._thread.start()
            self._condition.notify()

    @property
    def decoding(self) -> int:
        """Sequences in the batch now."""
        return len(self._rows)

    @property
    def idle(self) -> bool:
        """No loop runs (nothing waits, nothing decodes)."""
        with self._condition:
            return self._thread is None

    def stats(self) -> ServingStats:
        with self._condition:
            waiting, decoding = len(self._waiting), len(self._rows)
        return self.figures.stats(waiting, decoding, self.max_batch)

    # -- the loop -------------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._condition:
                if not self._rows and not self._waiting:
                    self._condition.wait(IDLE_SECONDS)
                    if not self._rows and not self._waiting:
                        self._thread = None
                        break
            try:
                with self.lock, torch.inference_mode():
                    self._admit()
                    self._step()
            except Exception as exc:  # a failure of the shared forward pass: every sequence in it fails
                log.exception("a batched decoding step failed")
                self._fail_all(exc)
            self.on_step()
        self.on_exit(self)

    def _admit(self) -> None:
        """The waiting requests that fit, prefilled together in one forward pass (their prompts
        padded on the left) and joined to the batch; if that pass fails, each is tried alone, so
        that a bad prompt fails only its own request."""
        newcomers: list[BatchRequest] = []
        with self._condition:
            while self._waiting and len(self._rows) + len(newcomers) < self.max_batch:
                request = self._waiting.popleft()
                if request.cancel.is_set():
                    request.channel.close()
                else:
                    newcomers.append(request)
        if not newcomers:
            return
        try:
            rows, cache = self._prefill(newcomers)
        except Exception as exc:  # noqa: BLE001 - handed to the request(s), logged
            if len(newcomers) == 1:
                log.exception("prefill failed")
                newcomers[0].channel.close(exc)
                return
            for request in newcomers:  # find the one that fails; the others join
                try:
                    rows, cache = self._prefill([request])
                except Exception as exc:  # this request's prompt failed: it alone fails
                    log.exception("prefill failed")
                    request.channel.close(exc)
                    continue
                self._join(rows, cache)
            return
        self._join(rows, cache)

    def _prefill(self, requests: list[BatchRequest]) -> tuple[list[_Row], DynamicCache]:
        """One forward pass over the prompts, padded on the left to the longest."""
        lengths = [int(r.input_ids.shape[1]) for r in requests]
        longest = max(lengths)
        ids = torch.zeros((len(requests), longest), dtype=requests[0].input_ids.dtype, device=self.device)
        mask = torch.zeros((len(requests), longest), dtype=torch.long, device=self.device)
        for i, (request, length) in enumerate(zip(requests, lengths, strict=True)):
            ids[i, longest - length :] = request.input_ids[0]
            mask[i, longest - length :] = 1
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        cache = DynamicCache(config=self.model.config)
        cache.layers = [self.cache_layer() for _ in cache.layers]  # (batchable(): they were all DynamicLayers)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True)
        logits = out.logits[:, -1].to(dtype=torch.float32, copy=True)
        rows = []
        for i, (request, length) in enumerate(zip(requests, lengths, strict=True)):
            sequence = torch.zeros((1, length + request.params.max_new_tokens), dtype=ids.dtype, device=self.device)
            sequence[:, :length] = request.input_ids
            generator = None
            if request.params.do_sample:
                generator = torch.Generator(device=self.device).manual_seed(int(request.params.seed or 0))
            rows.append(_Row(request, sequence, length, length, generator, logits[i]))
        return rows, cache

    def _join(self, rows: list[_Row], cache: DynamicCache) -> None:
        """Add prefilled rows to the batch: both caches padded on the left to one length."""
        with self._condition:
            if self._cache is None or not self._rows:
                self._cache, self._rows = cache, list(rows)
                return
            length = max(self._cache.get_seq_length(), cache.get_seq_length())
            for mine, theirs in zip(self._cache.layers, cache.layers, strict=True):
                mine.keys = torch.cat([_pad_left(mine.keys, length), _pad_left(theirs.keys, length)])
                mine.values = torch.cat([_pad_left(mine.values, length), _pad_left(theirs.values, length)])
            self._rows.extend(rows)

    def _step(self) -> None:
        if not self._rows:
            return
        now = time.perf_counter()
        keep: list[int] = []
        for index, row in enumerate(self._rows):
            try:
                done = self._choose(row, now)
            except Exception as exc:  # this request's chain failed: it alone fails
                log.exception("a request's decoding chain failed")
                row.request.channel.close(exc)
                continue
            if done:
                row.request.channel.cache_bytes = self._row_cache_bytes(row)
                row.request.channel.close()
            else:
                keep.append(index)
        self.figures.record(now, len(self._rows))
        self._drop(keep)
        if self._rows:
            self._forward()

    def _choose(self, row: _Row, now: float) -> bool:
        """The row's next token, through its own chain; whether the row is done."""
        request = row.request
        scores = request.processors(row.sequence[:, : row.length], row.next_logits[None])
        if request.params.do_sample:
            token = int(torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=row.generator)[0, 0])
        else:
            token = int(scores.argmax(dim=-1)[0])
        row.sequence[0, row.length] = token
        row.length += 1
        request.channel.send(PendingStep(token, row.next_logits, scores[0], now))
        request.on_token()
        if token in request.eos_ids or row.new_tokens >= request.params.max_new_tokens or request.cancel.is_set():
            return True
        return request.stop is not None and bool(request.stop(row.sequence[:, : row.length], scores)[0])

    def _row_cache_bytes(self, row: _Row) -> int | None:
        """What the row's own keys and values take in the batch cache (its padding left out)."""
        if self._cache is None:  # (a row that ended at its first token: its prefill cache was not joined yet)
            return None
        per_token = sum(
            (layer.keys.shape[1] * layer.keys.shape[3]) * layer.keys.element_size()
            + (layer.values.shape[1] * layer.values.shape[3]) * layer.values.element_size()
            for layer in self._cache.layers
        )
        return per_token * row.cached

    def _drop(self, keep: list[int]) -> None:
        """Keep only these rows, and cut the left padding that no row needs any more."""
        if len(keep) == len(self._rows):
            return
        with self._condition:
            self._rows = [self._rows[i] for i in keep]
        if not self._rows:
            self._cache = None
            return
        assert self._cache is not None
        index = torch.tensor(keep, device=self.device)
        cut = self._cache.get_seq_length() - max(row.cached for row in self._rows)
        for layer in self._cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, cut:]
            layer.values = layer.values.index_select(0, index)[:, :, cut:]

    def _forward(self) -> None:
        """One pass over the newest token of every row; each row's next logits."""
        assert self._cache is not None
        past = self._cache.get_seq_length()
        rows = self._rows
        ids = torch.stack([row.sequence[0, row.length - 1] for row in rows])[:, None]
        mask = torch.zeros((len(rows), past + 1), dtype=torch.long, device=self.device)
        for i, row in enumerate(rows):
            mask[i, past - row.cached :] = 1  # its cached tokens, and the new one
        positions = torch.tensor([[row.cached] for row in rows], device=self.device)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=self._cache,
            cache_position=torch.tensor([past], device=self.device),
            use_cache=True,
        )
        logits = out.logits[:, -1].to(dtype=torch.float32, copy=True)
        for i, row in enumerate(rows):
            row.cached += 1
            row.next_logits = logits[i]

    def _fail_all(self, error: BaseException) -> None:
        for row in self._rows:
            row.request.channel.close(error)
        with self._condition:
            self._rows = []
        self._cache = None


def _pad_left(states: torch.Tensor, length: int) -> torch.Tensor:
    """(batch, heads, tokens, dim) padded with zeros on the left to `length` tokens."""
    missing = length - states.shape[2]
    if missing <= 0:
        return states
    pad = torch.zeros((*states.shape[:2], missing, states.shape[3]), dtype=states.dtype, device=states.device)
    return torch.cat([pad, states], dim=2)
