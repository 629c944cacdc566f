"""Per-token capture: what the model proposed, what was sampled from, and what was chosen.

Two observers: `RawTap`, a forward hook on the model, sees the model's logits; `FinalTap`, after
the last stage of the decoding chain, sees the distribution the token is drawn from (for greedy
decoding: the one argmax is taken over). `StepStreamer` receives the chosen token
from generate() right after, and turns the three into one `TokenStep`.

The generation thread only queues references to each step's two rows of logits; the consumer
computes the numbers of all the steps waiting, in one set of tensor ops, and decodes texts.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import LogitsProcessor
from transformers.generation.streamers import BaseStreamer

LOG2 = math.log(2.0)
#: Put on a StepStreamer's queue after the last step.
END_OF_STREAM = object()


@dataclass(frozen=True)
class Alternative:
    """A candidate token at one position: its probability under the sampled distribution
    (0 when a truncation removed it) and under the raw model distribution."""

    token_id: int
    text: str
    prob: float | None  # None: not reported (a remote engine gives one of the two)
    raw_prob: float | None

    def to_dict(self) -> dict[str, object]:
        return {"token_id": self.token_id, "text": self.text, "prob": self.prob, "raw_prob": self.raw_prob}


#: What a step's probabilities are: "local" (both distributions, measured here), or, from a
#: remote engine (backend.remote), "raw" (only raw_prob), "processed" (only prob) or "none".
STEP_PROBABILITIES = ("local", "raw", "processed", "none")


@dataclass(frozen=True)
class TokenStep:
    """One generated token with the evidence of how it was chosen."""

    position: int  # 0 = first new token
    token_id: int
    text: str
    prob: float | None  # p(token) under the distribution that was sampled from (after the chain)
    raw_prob: float | None  # p(token) = softmax(raw logits)[token]
    entropy: float | None  # entropy of the sampled distribution, in bits
    raw_entropy: float | None  # entropy of the raw distribution, in bits
    alternatives: tuple[Alternative, ...]  # the top candidates by raw probability
    elapsed_s: float  # seconds since the run started, when this token arrived
    probabilities: str = "local"  # which of the numbers are known (STEP_PROBABILITIES)

    def to_dict(self) -> dict[str, object]:
        return {
            "position": self.position,
            "token_id": self.token_id,
            "text": self.text,
            "prob": self.prob,
            "raw_prob": self.raw_prob,
            "entropy": self.entropy,
            "raw_entropy": self.raw_entropy,
            "alternatives": [a.to_dict() for a in self.alternatives],
            "elapsed_s": self.elapsed_s,
            "probabilities": self.probabilities,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenStep:
        """The inverse of to_dict (a step read back from the run log or an export)."""
        return cls(
            position=int(data["position"]),
            token_id=int(data["token_id"]),
            text=str(data["text"]),
            prob=_number(data["prob"]),
            raw_prob=_number(data["raw_prob"]),
            entropy=_number(data["entropy"]),
            raw_entropy=_number(data["raw_entropy"]),
            alternatives=tuple(
                Alternative(int(a["token_id"]), str(a["text"]), _number(a["prob"]), _number(a["raw_prob"]))
                for a in data["alternatives"]
            ),
            elapsed_s=float(data.get("elapsed_s") or 0.0),
            probabilities=str(data.get("probabilities") or "local"),
        )


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class RawStep:
    """A step's numbers before token ids are decoded to text."""

    token_id: int
    prob: float
    raw_prob: float
    entropy: float
    raw_entropy: float
    alternative_ids: tuple[int, ...]
    alternative_probs: tuple[float, ...]
    alternative_raw_probs: tuple[float, ...]
    time: float  # perf_counter() when the token arrived


@dataclass(frozen=True)
class PendingStep:
    """A step as the generation thread leaves it: the chosen token and references to its two
    rows of logits. Its numbers are computed later, many steps at once, by the consumer."""

    token_id: int
    raw_logits: torch.Tensor  # (vocab,) the model's logits
    final_scores: torch.Tensor  # (vocab,) after the decoding chain
    time: float  # perf_counter() when the token arrived


#: Scores below the row's best by more than this are as good as -inf: exp underflows to 0 in
#: float32 from -104 on. Flooring there keeps 0 · score at 0 where 0 · -inf would be NaN.
_FLOOR = -1.0e4


def _summaries(scores: np.ndarray, picks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Softmax of each row, summarised with one exp and without a row of probabilities: the
    probabilities at `picks` (rows x m token ids) and the entropy in bits, as
    log z - sum(e * s) / z over the shifted scores s and e = exp(s). `scores` is overwritten."""
    scores -= scores.max(axis=-1, keepdims=True)
    np.maximum(scores, _FLOOR, out=scores)
    e = np.exp(scores)
    z = e.sum(axis=-1)
    entropy = (np.log(z) - np.einsum("ij,ij->i", e, scores) / z) / LOG2
    return np.take_along_axis(e, picks, axis=-1) / z[:, None], np.maximum(entropy, 0.0)  # (no -0.00 bits from rounding)


def _top_indices(scores: np.ndarray, n: int) -> np.ndarray:
    """The n largest entries of each row, largest first: n argmax passes (n is at most 20),
    several times faster than argpartition over the whole vocabulary for a handful."""
    work = scores.copy()
    rows = np.arange(work.shape[0])
    top = np.empty((work.shape[0], n), dtype=np.int64)
    for j in range(n):
        top[:, j] = work.argmax(axis=-1)
        work[rows, top[:, j]] = -np.inf
    return top


def step_numbers(steps: Sequence[PendingStep | RawStep], k: int) -> list[RawStep]:
    """Numbers of several steps at once, in NumPy: small torch ops in a thread that shares the
    CPU with generate() were measured to stall on OpenMP barriers (milliseconds per op on a
    busy 2-core machine); NumPy runs them single-threaded in microseconds. A step that comes
    with its numbers (from a decoding process, backend.decode_process) is kept as it is."""
    pending = [step for step in steps if isinstance(step, PendingStep)]
    if len(pending) < len(steps):
        computed = iter(step_numbers(pending, k))
        return [next(computed) if isinstance(step, PendingStep) else step for step in steps]
    if not pending:
        return []
    raw = torch.stack([p.raw_logits for p in pending]).float().cpu().numpy()
    final = torch.stack([p.final_scores for p in pending]).float().cpu().numpy()
    chosen = np.array([p.token_id for p in pending])[:, None]
    top = _top_indices(raw, min(k, raw.shape[-1]))  # (the raw logits rank tokens as their probabilities do)
    picks = np.concatenate([chosen, top], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        raw_at, raw_entropy = _summaries(raw, picks)
        final_at, entropy = _summaries(final, picks)
    # (one conversion to Python numbers per array, not one per row)
    prob, raw_prob = final_at[:, 0].tolist(), raw_at[:, 0].tolist()  # p(chosen): sampled, model
    entropy, raw_entropy = entropy.tolist(), raw_entropy.tolist()
    top, alt_prob, alt_raw = top.tolist(), final_at[:, 1:].tolist(), raw_at[:, 1:].tolist()
    return [
        RawStep(
            token_id=p.token_id,
            prob=prob[i],
            raw_prob=raw_prob[i],
            entropy=entropy[i],
            raw_entropy=raw_entropy[i],
            alternative_ids=tuple(top[i]),
            alternative_probs=tuple(alt_prob[i]),
            alternative_raw_probs=tuple(alt_raw[i]),
            time=p.time,
        )
        for i, p in enumerate(pending)
    ]


def decode_step(raw: RawStep, position: int, decode: Callable[[int], str], start: float) -> TokenStep:
    """Give a step its texts (the consumer's side)."""
    return TokenStep(
        position=position,
        token_id=raw.token_id,
        text=decode(raw.token_id),
        prob=raw.prob,
        raw_prob=raw.raw_prob,
        entropy=raw.entropy,
        raw_entropy=raw.raw_entropy,
        alternatives=tuple(
            Alternative(tid, decode(tid), p, rp)
            for tid, p, rp in zip(raw.alternative_ids, raw.alternative_probs, raw.alternative_raw_probs)
        ),
        elapsed_s=raw.time - start,
    )


class RawTap:
    """Keeps the model's own logits of the last position, read by a forward hook on the model
    (before any processor, generate()'s own included: a forced token keeps its real probability)."""

    def __init__(self) -> None:
        self.logits: torch.Tensor | None = None

    def record(self, module: torch.nn.Module, args: object, output: object) -> None:
        self.logits = output.logits[:, -1].detach()  # type: ignore[attr-defined]


class FinalTap(LogitsProcessor):
    """Last in the chain: keeps the scores the next token is drawn from."""

    def __init__(self) -> None:
        self.scores: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.scores = scores
        return scores


class StepChannel:
    """One run's steps on their way from the thread that generates them to the one that streams
    them: `PendingStep`s (or `RawStep`s, numbers computed), then `END_OF_STREAM`; `error` is set
    when the run failed."""

    def __init__(self) -> None:
        self.queue: queue.Queue[PendingStep | RawStep | object] = queue.Queue()
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self.cache_bytes: int | None = None  # the run's KV cache at its end, when the producer measured it

    def send(self, step: PendingStep | RawStep) -> None:
        self.queue.put(step)

    def close(self, error: BaseException | None = None) -> None:
        if self.finished.is_set():
            return
        self.error = error
        self.queue.put(END_OF_STREAM)
        self.finished.set()


class StepStreamer(BaseStreamer, StepChannel):
    """Receives each chosen token from generate() (one sequence only: transformers refuses a
    streamer with beams or several sequences) and puts a `PendingStep` on its channel: no tensor
    work here, so the generation thread goes straight on to the next token.

    `on_token` is called in the generation thread after each step (the memory meter uses it)."""

    def __init__(self, raw: RawTap, final: FinalTap, on_token: Callable[[], None]) -> None:
        StepChannel.__init__(self)
        self.raw = raw
        self.final = final
        self.on_token = on_token
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        now = time.perf_counter()
        if not self._prompt_seen:  # the first put carries the prompt (or decoder start)
            self._prompt_seen = True
            return
        if self.raw.logits is None or self.final.scores is None:
            raise RuntimeError("StepStreamer got a token before the chain observed any logits")
        token_id = int(value.reshape(-1)[0])
        self.send(PendingStep(token_id, self.raw.logits[0], self.final.scores[0], now))
        self.on_token()

    def end(self) -> None:
        self.close()
