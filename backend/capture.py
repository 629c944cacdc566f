"""Per-token capture: what the model proposed, what was sampled from, and what was chosen.

Two observers: `RawTap`, a forward hook on the model, sees the model's logits; `FinalTap`, after
the last stage of the decoding chain, sees the distribution the token is drawn from (for greedy
decoding: the one argmax is taken over). `StepStreamer` receives the chosen token
from generate() right after, and turns the three into one `TokenStep`.

The numbers of a step are computed in the generation thread with a handful of tensor ops and
one `tolist()`; decoding token ids to text is left to the consumer, off the hot path.
"""

from __future__ import annotations

import math
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass

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
    prob: float
    raw_prob: float


@dataclass(frozen=True)
class TokenStep:
    """One generated token with the evidence of how it was chosen."""

    position: int  # 0 = first new token
    token_id: int
    text: str
    prob: float  # p(token) under the distribution that was sampled from (after the chain)
    raw_prob: float  # p(token) = softmax(raw logits)[token]
    entropy: float  # entropy of the sampled distribution, in bits
    raw_entropy: float  # entropy of the raw distribution, in bits
    alternatives: tuple[Alternative, ...]  # the top candidates by raw probability
    elapsed_s: float  # seconds since the run started, when this token arrived

    def to_dict(self) -> dict[str, object]:
        return {
            "position": self.position,
            "token_id": self.token_id,
            "text": self.text,
            "prob": self.prob,
            "raw_prob": self.raw_prob,
            "entropy": self.entropy,
            "raw_entropy": self.raw_entropy,
            "alternatives": [
                {"token_id": a.token_id, "text": a.text, "prob": a.prob, "raw_prob": a.raw_prob}
                for a in self.alternatives
            ],
            "elapsed_s": self.elapsed_s,
        }


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


def step_numbers(raw_logits: torch.Tensor, final_scores: torch.Tensor, token_id: int, k: int, now: float) -> RawStep:
    """Numbers of one step from a raw logits row and a processed scores row (1-D, same vocab)."""
    raw_logp = torch.log_softmax(raw_logits.float(), dim=-1)
    raw_entropy = torch.special.entr(raw_logp.exp()).sum().unsqueeze(0)
    final_logp = torch.log_softmax(final_scores.float(), dim=-1)
    entropy = torch.special.entr(final_logp.exp()).sum().unsqueeze(0)
    top = torch.topk(raw_logp, k=min(k, raw_logp.shape[-1]))
    ids = top.indices
    packed = torch.cat(
        (
            final_logp[token_id : token_id + 1].exp(),
            raw_logp[token_id : token_id + 1].exp(),
            entropy,
            raw_entropy,
            final_logp[ids].exp(),
            top.values.exp(),
        )
    ).tolist()
    n = ids.shape[0]
    return RawStep(
        token_id=token_id,
        prob=packed[0],
        raw_prob=packed[1],
        entropy=packed[2] / LOG2,
        raw_entropy=packed[3] / LOG2,
        alternative_ids=tuple(ids.tolist()),
        alternative_probs=tuple(packed[4 : 4 + n]),
        alternative_raw_probs=tuple(packed[4 + n : 4 + 2 * n]),
        time=now,
    )


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


class StepStreamer(BaseStreamer):
    """Receives each chosen token from generate() (one sequence only: transformers refuses a
    streamer with beams or several sequences) and puts a `RawStep` on a queue.

    The queue carries `RawStep`s, then `END_OF_STREAM`. `on_token` is called in the generation thread
    after each step (the memory meter uses it)."""

    def __init__(self, raw: RawTap, final: FinalTap, k: int, on_token: Callable[[], None]) -> None:
        self.raw = raw
        self.final = final
        self.k = k
        self.on_token = on_token
        self.queue: queue.Queue[RawStep | object] = queue.Queue()
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        now = time.perf_counter()
        if not self._prompt_seen:  # the first put carries the prompt (or decoder start)
            self._prompt_seen = True
            return
        if self.raw.logits is None or self.final.scores is None:
            raise RuntimeError("StepStreamer got a token before the chain observed any logits")
        token_id = int(value.reshape(-1)[0])
        self.queue.put(step_numbers(self.raw.logits[0], self.final.scores[0], token_id, self.k, now))
        self.on_token()

    def end(self) -> None:
        self.queue.put(END_OF_STREAM)
