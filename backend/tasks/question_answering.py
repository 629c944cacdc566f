"""Extractive question answering: the answer is a span of the context, found by an encoder.

transformers 5 has no question-answering pipeline; this follows the former pipeline's algorithm
on `AutoModelForQuestionAnswering`, in three stages, and differs from it where said below:

1. windows: the question and the context are tokenized as one pair. A context longer than the
   model's window is cut into overlapping windows; each repeats the question, and neighbours
   share `doc_stride` context tokens, so an answer cut by one window's edge is whole in the next.
2. forward: one pass per window gives every token a start logit and an end logit.
3. span search: in each window, every (start, end) pair of context tokens is a candidate; with
   `align_to_words` (the default, as in the former pipeline) a candidate is widened to the whole
   words its first and last tokens belong to. The candidates of all windows are merged by their
   character span and the best `top_n` returned.

Scores, and how they differ from the former pipeline:
- Normalisation. Here, in each window the start logits go through a softmax over the window's
  context tokens only (the question, the special tokens and the padding get probability 0), the
  end logits likewise; a span scores p(start) * p(end). With `handle_impossible_answer`, the
  first special token ([CLS], <s>) joins both softmaxes as the "no answer" option and scores
  p(start=CLS) * p(end=CLS); over several windows the lowest of these counts (one window that
  sees an answer is enough, as in the former pipeline). The former pipeline kept [CLS] in both
  softmaxes always, asked for "no answer" or not, so its span scores were lower by the mass
  [CLS] took (and rankings may differ where [CLS] is likely): its figures are not these.
- Merging. Here a character span seen by several windows (they overlap) is listed once with its
  best score. The former pipeline merged answers with equal text across windows by adding their
  scores, so an answer in the overlap counted twice, and equal texts at different places of the
  context became one answer; here they stay apart (they are different spans).
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from backend.errors import InputError, ParameterError, TaskMismatchError
from backend.fields import integer
from backend.registry import LoadedModel, Task
from backend.tasks.encoding import require_text, window

#: Answers returned at most.
MAX_TOP_N = 20
#: Longest answer that may be asked for, in tokens.
MAX_ANSWER_TOKENS = 512
#: The old pipeline's overlap between neighbouring windows, when it fits.
DEFAULT_DOC_STRIDE = 128
#: A context that needs more windows than this is refused (each window is one forward pass).
MAX_WINDOWS = 128
#: Windows sent to the model in one batch.
WINDOWS_PER_BATCH = 16
_MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class Answer:
    """One candidate answer: a span of the context."""

    text: str  # context[start:end]
    score: float  # p(start) * p(end) in the window that scored it best
    start: int  # character offsets into the context
    end: int
    window: int  # index of that window
    tokens: int  # length of the span in tokens

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "score": self.score,
            "start": self.start,
            "end": self.end,
            "window": self.window,
            "tokens": self.tokens,
        }


@dataclass(frozen=True)
class Window:
    """One slice of the context the model read together with the question."""

    index: int
    start: int  # characters of the context it covers
    end: int
    tokens: int  # context tokens in it
    no_answer_score: float | None  # p(CLS) * p(CLS), with handle_impossible_answer

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start": self.start,
            "end": self.end,
            "tokens": self.tokens,
            "no_answer_score": self.no_answer_score,
        }


@dataclass(frozen=True)
class TokenEvidence:
    """A context token of the best answer's window, with how likely it starts / ends the answer."""

    text: str
    start: int  # character offsets into the context
    end: int
    p_start: float
    p_end: float

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "start": self.start, "end": self.end, "p_start": self.p_start, "p_end": self.p_end}


@dataclass(frozen=True)
class QAResult:
    question: str
    answers: tuple[Answer, ...]  # best first, each character span once; never empty
    no_answer_score: float | None  # None unless handle_impossible_answer
    windows: tuple[Window, ...]
    evidence: tuple[TokenEvidence, ...]  # the context tokens of the best answer's window
    window_tokens: int  # tokens per window (question, context and special tokens)
    doc_stride: int  # context tokens shared by neighbouring windows
    question_tokens: int
    context_tokens: int
    input_tokens: int  # tokens the model read over all windows, special tokens included
    seconds: float
    notes: tuple[str, ...]

    @property
    def best(self) -> Answer | None:
        """The best span, or None when "no answer" scores higher than every span."""
        if self.no_answer_score is not None and self.no_answer_score > self.answers[0].score:
            return None
        return self.answers[0]

    @property
    def summary(self) -> str:
        best = self.best
        if best is None:
            return f"no answer ({self.no_answer_score:.3f})"
        return f"{best.text!r} ({best.score:.3f})"

    def to_json(self) -> dict[str, Any]:
        best = self.best
        return {
            "question": self.question,
            "answer": "" if best is None else best.text,
            "score": self.no_answer_score if best is None else best.score,
            "answers": [a.to_json() for a in self.answers],
            "no_answer_score": self.no_answer_score,
            "windows": [w.to_json() for w in self.windows],
            "evidence": [e.to_json() for e in self.evidence],
            "window_tokens": self.window_tokens,
            "doc_stride": self.doc_stride,
            "question_tokens": self.question_tokens,
            "context_tokens": self.context_tokens,
            "input_tokens": self.input_tokens,
            "seconds": self.seconds,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class _Layout:
    """How question and context share a window."""

    window_tokens: int
    question_tokens: int
    room: int  # context tokens per window
    context_id: int  # the context's sequence id (1 when the question comes first)


@dataclass(frozen=True)
class _Span:
    score: float
    start_token: int
    end_token: int
    start: int  # characters
    end: int


def answer(
    loaded: LoadedModel,
    question: str,
    context: str,
    top_n: int = 5,
    max_answer_len: int = 30,
    doc_stride: int | None = None,
    handle_impossible_answer: bool = False,
    align_to_words: bool = True,
) -> QAResult:
    """Find the `top_n` best spans of `context` that answer `question`.

    `max_answer_len`: longest answer in tokens. `doc_stride`: context tokens shared by
    neighbouring windows, < the context tokens a window holds; None = 128, or half of a
    window's context tokens when 128 does not fit. `handle_impossible_answer`: also score
    "no answer" (the [CLS] token), reported as `no_answer_score`; `best` is None when it wins.
    `align_to_words`: a span starts at the start of its first token's word and ends at the end
    of its last token's word ("capital of Fr" becomes "capital of France"), as the former
    pipeline's align_to_words did; off, spans end where their tokens end.
    """
    started = time.perf_counter()
    top_n, max_answer_len, doc_stride = _check_arguments(
        loaded, question, context, top_n, max_answer_len, doc_stride, handle_impossible_answer
    )
    if not isinstance(align_to_words, bool):
        raise ParameterError("align_to_words", "true or false", align_to_words)
    tokenizer = loaded.tokenizer
    # The old pipeline's rule: a tokenizer that pads on the left (XLNet) reads the context first.
    question_first = tokenizer.padding_side == "right"
    layout = _layout(loaded, question, question_first)
    stride = _stride(doc_stride, layout)

    # 1. windows: (question, context) pairs, the context cut into overlapping slices
    pair = (question, context) if question_first else (context, question)
    encoded = tokenizer(
        *pair,
        truncation="only_second" if question_first else "only_first",
        max_length=layout.window_tokens,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )
    n_windows = len(encoded["input_ids"])
    if n_windows > MAX_WINDOWS:
        raise InputError(
            "context",
            f"context needs {n_windows} windows of {layout.window_tokens} tokens; at most {MAX_WINDOWS} are read "
            f"(shorten the context or lower doc_stride).",
        )
    is_context = [
        torch.tensor([s == layout.context_id for s in encoded.sequence_ids(i)], dtype=torch.bool)
        for i in range(n_windows)
    ]
    context_tokens = _count_context_tokens(is_context, stride)
    if context_tokens == 0:
        raise InputError("context", f"context must contain text the tokenizer reads, got {context!r} (no tokens).")
    notes: list[str] = []
    if n_windows > 1 and doc_stride is None and stride != DEFAULT_DOC_STRIDE:
        notes.append(
            f"doc_stride set to {stride}: half of the {layout.room} context tokens a window holds "
            f"(the default {DEFAULT_DOC_STRIDE} does not fit)"
        )
    null_indices = [_null_index(tokenizer, encoded, i) for i in range(n_windows)] if handle_impossible_answer else None
    if null_indices is not None and any(i is None for i in null_indices):
        raise ParameterError(
            "handle_impossible_answer",
            f"false for model {loaded.spec.name!r} (its input has no [CLS] token to stand for 'no answer')",
            True,
        )

    # 2. forward: start and end logits of every window
    logits = _forward(loaded, encoded)

    # 3. span search, window by window, then merged by character span
    best: dict[tuple[int, int], tuple[_Span, int]] = {}
    windows: list[Window] = []
    probabilities: list[tuple[torch.Tensor, torch.Tensor]] = []
    for i, (start_logits, end_logits) in enumerate(logits):
        offsets = encoded["offset_mapping"][i]
        null_index = null_indices[i] if null_indices is not None else None
        p_start, p_end = _probabilities(start_logits, end_logits, is_context[i], null_index)
        probabilities.append((p_start, p_end))
        if align_to_words:
            offsets = _word_offsets(encoded, i, layout.context_id, offsets)
        for span in _window_spans(p_start, p_end, is_context[i], offsets, max_answer_len, top_n):
            key = (span.start, span.end)
            # a span seen by two overlapping windows is listed once, with its better score
            if key not in best or span.score > best[key][0].score:
                best[key] = (span, i)
        context_positions = is_context[i].nonzero().flatten().tolist()
        windows.append(
            Window(
                index=i,
                start=offsets[context_positions[0]][0] if context_positions else 0,
                end=offsets[context_positions[-1]][1] if context_positions else 0,
                tokens=len(context_positions),
                no_answer_score=None if null_index is None else float(p_start[null_index] * p_end[null_index]),
            )
        )
    if not best:
        raise InputError(
            "context", f"context must hold a span the model can point at, got {context!r} (no token covers any text)."
        )
    ranked = sorted(best.values(), key=lambda item: item[0].score, reverse=True)[:top_n]
    answers = tuple(
        Answer(
            text=context[span.start : span.end],
            score=span.score,
            start=span.start,
            end=span.end,
            window=i,
            tokens=span.end_token - span.start_token + 1,
        )
        for span, i in ranked
    )
    null_scores = [w.no_answer_score for w in windows if w.no_answer_score is not None]
    no_answer = min(null_scores) if null_scores else None

    shown = answers[0].window
    evidence = _evidence(context, encoded["offset_mapping"][shown], is_context[shown], *probabilities[shown])
    notes.extend(_layout_notes(layout, stride, n_windows, question_first, handle_impossible_answer))
    if no_answer is not None and no_answer > answers[0].score:
        notes.append(f"'no answer' scores {no_answer:.3f}, more than the best span ({answers[0].score:.3f})")
    return QAResult(
        question=question,
        answers=answers,
        no_answer_score=no_answer,
        windows=tuple(windows),
        evidence=evidence,
        window_tokens=layout.window_tokens,
        doc_stride=stride,
        question_tokens=layout.question_tokens,
        context_tokens=context_tokens,
        input_tokens=sum(len(ids) for ids in encoded["input_ids"]),
        seconds=time.perf_counter() - started,
        notes=tuple(notes),
    )


# -- windows ----------------------------------------------------------------------------------


def _check_arguments(
    loaded: LoadedModel,
    question: object,
    context: object,
    top_n: object,
    max_answer_len: object,
    doc_stride: object,
    handle_impossible_answer: object,
) -> tuple[int, int, int | None]:
    """Everything that can be refused before tokenizing: the model, the texts, the numbers
    (returned as ints: a form sends 5.0 for 5)."""
    if loaded.spec.task is not Task.QUESTION_ANSWERING:
        raise TaskMismatchError(
            f"model {loaded.spec.name!r} is a {loaded.spec.task.value} model, not a question-answering one."
        )
    if not getattr(loaded.tokenizer, "is_fast", False):
        raise TaskMismatchError(
            f"model {loaded.spec.name!r} has a slow tokenizer; extractive QA needs character offsets "
            f"(a fast tokenizer)."
        )
    require_text("question", question)
    require_text("context", context)
    if not isinstance(handle_impossible_answer, bool):
        raise ParameterError("handle_impossible_answer", "true or false", handle_impossible_answer)
    return (
        integer("top_n", top_n, 1, MAX_TOP_N),
        integer("max_answer_len", max_answer_len, 1, MAX_ANSWER_TOKENS),
        None if doc_stride is None else integer("doc_stride", doc_stride, 0),
    )


def _layout(loaded: LoadedModel, question: str, question_first: bool) -> _Layout:
    """Window size, and how many context tokens fit in one next to the question."""
    tokenizer = loaded.tokenizer
    window_tokens = window(loaded)
    question_tokens = len(tokenizer(question, add_special_tokens=False)["input_ids"])
    room = window_tokens - question_tokens - tokenizer.num_special_tokens_to_add(pair=True)
    if room < 1:
        raise InputError(
            "question",
            f"question is {question_tokens} tokens; model {loaded.spec.name!r} reads {window_tokens} tokens at once, "
            f"so no room is left for the context (shorten the question).",
        )
    return _Layout(window_tokens, question_tokens, room, 1 if question_first else 0)


def _stride(doc_stride: int | None, layout: _Layout) -> int:
    """The overlap: the tokenizer needs it strictly below the context tokens of a window."""
    if doc_stride is None:
        return DEFAULT_DOC_STRIDE if DEFAULT_DOC_STRIDE < layout.room else layout.room // 2
    if doc_stride >= layout.room:
        raise ParameterError(
            "doc_stride",
            f"< {layout.room} (the context tokens a {layout.window_tokens}-token window holds "
            f"next to this {layout.question_tokens}-token question)",
            doc_stride,
        )
    return doc_stride


def _count_context_tokens(is_context: Sequence[torch.Tensor], stride: int) -> int:
    """Context tokens in all: every window after the first repeats `stride` of them."""
    counts = [int(mask.sum()) for mask in is_context]
    return counts[0] + sum(max(c - stride, 0) for c in counts[1:])


def _null_index(tokenizer: Any, encoded: Any, i: int) -> int | None:
    """Position of the [CLS] (or <s>) special token in window i, the "no answer" slot."""
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    if cls_id is None:
        return None
    for position, (token_id, sequence) in enumerate(zip(encoded["input_ids"][i], encoded.sequence_ids(i))):
        if sequence is None and token_id == cls_id:
            return position
    return None


def _layout_notes(
    layout: _Layout, stride: int, n_windows: int, question_first: bool, with_null: bool
) -> list[str]:
    notes = []
    if n_windows > 1:
        notes.append(
            f"context split into {n_windows} overlapping windows of {layout.window_tokens} tokens "
            f"({layout.room} context tokens each next to the {layout.question_tokens}-token question; "
            f"neighbours share {stride})"
        )
    else:
        notes.append(f"context fits in one window of {layout.window_tokens} tokens")
    if not question_first:
        notes.append("the context comes before the question (the tokenizer pads on the left)")
    over = "the context tokens and [CLS] ('no answer')" if with_null else "the context tokens"
    notes.append(f"scores: softmax over {over} of each window, score = p(start) × p(end)")
    return notes


# -- forward ----------------------------------------------------------------------------------


def _forward(loaded: LoadedModel, encoded: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Start and end logits of every window, as 1-D float tensors on the CPU.

    Windows of equal length go through the model together (all but the last have the full
    length), so nothing is padded and each window reads exactly as it would alone."""
    accepted = inspect.signature(loaded.model.forward).parameters
    # DistilBERT takes no token_type_ids: pass only the inputs forward() names
    names = [n for n in _MODEL_INPUTS if n in encoded and n in accepted]
    lengths = [len(ids) for ids in encoded["input_ids"]]
    out: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(lengths)
    for length in sorted(set(lengths)):
        same = [i for i, n in enumerate(lengths) if n == length]
        for first in range(0, len(same), WINDOWS_PER_BATCH):
            batch = same[first : first + WINDOWS_PER_BATCH]
            inputs = {n: torch.tensor([encoded[n][i] for i in batch], device=loaded.device) for n in names}
            with torch.inference_mode():
                result = loaded.model(**inputs)
            for row, i in enumerate(batch):
                out[i] = (result.start_logits[row].float().cpu(), result.end_logits[row].float().cpu())
    return [pair for pair in out if pair is not None]


# -- span search ------------------------------------------------------------------------------


def _probabilities(
    start_logits: torch.Tensor, end_logits: torch.Tensor, is_context: torch.Tensor, null_index: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """p(start) and p(end) over one window's tokens; 0 outside the context (and the null slot)."""
    # the tokens an answer may start or end at: the context, plus [CLS] as "no answer" if asked
    allowed = is_context.clone()
    if null_index is not None:
        allowed[null_index] = True
    # every other token gets -inf, hence probability 0, before the softmax
    p_start = torch.softmax(start_logits.masked_fill(~allowed, -math.inf), dim=-1)
    p_end = torch.softmax(end_logits.masked_fill(~allowed, -math.inf), dim=-1)
    return p_start, p_end


def _word_offsets(encoded: Any, i: int, context_id: int, offsets: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Each context token's characters widened to its whole word (the tokenizer's words: split
    at spaces and punctuation); other tokens keep their own."""
    words = encoded.word_ids(i)
    sequences = encoded.sequence_ids(i)
    widened = list(offsets)
    for t, (word, sequence) in enumerate(zip(words, sequences)):
        if word is not None and sequence == context_id:
            span = encoded.word_to_chars(i, word, sequence_index=context_id)
            widened[t] = (span.start, span.end)
    return widened


def _window_spans(
    p_start: torch.Tensor,
    p_end: torch.Tensor,
    is_context: torch.Tensor,
    offsets: Sequence[tuple[int, int]],
    max_answer_len: int,
    top_n: int,
) -> list[_Span]:
    """The window's `top_n` best spans with distinct, non-empty character spans.

    Keeping each window's top_n is enough for the global top_n: a span beaten by top_n other
    spans of its own window is beaten by them after merging too."""
    n = p_start.shape[0]
    # 1. every (start, end) pair scores p(start) * p(end): one outer product, rows = starts
    scores = p_start[:, None] * p_end[None, :]
    # 2. span length in tokens, end - start + 1, for every pair
    positions = torch.arange(n)
    length = positions[None, :] - positions[:, None] + 1
    # 3. valid pairs: both ends in the context, end >= start, at most max_answer_len tokens
    valid = is_context[:, None] & is_context[None, :] & (length >= 1) & (length <= max_answer_len)
    # 4. the valid pairs, best first
    flat = valid.flatten().nonzero().flatten()
    order = scores.flatten()[flat].argsort(descending=True)
    # 5. walk down until top_n distinct character spans are found; tokens without characters
    #    (a lone byte-level space) or split characters can map two pairs to the same span
    spans: list[_Span] = []
    seen: set[tuple[int, int]] = set()
    for index in flat[order].tolist():
        s, e = divmod(index, n)
        char_start, char_end = offsets[s][0], offsets[e][1]
        if char_end <= char_start or (char_start, char_end) in seen:
            continue
        seen.add((char_start, char_end))
        spans.append(_Span(float(scores[s, e]), s, e, char_start, char_end))
        if len(spans) == top_n:
            break
    return spans


def _evidence(
    context: str,
    offsets: Sequence[tuple[int, int]],
    is_context: torch.Tensor,
    p_start: torch.Tensor,
    p_end: torch.Tensor,
) -> tuple[TokenEvidence, ...]:
    rows = []
    for position in is_context.nonzero().flatten().tolist():
        start, end = offsets[position]
        rows.append(TokenEvidence(context[start:end], start, end, float(p_start[position]), float(p_end[position])))
    return tuple(rows)
