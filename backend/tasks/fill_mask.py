"""Fill-mask: what a masked language model puts in a blank, and what that reveals about it.

What it shows a person: masked language modelling is how encoders like BERT are pretrained:
hide a token, predict it from both sides. `fill_mask` lists the most likely tokens for the blank
with their probabilities (the `fill-mask` pipeline's numbers). `bias_probe` asks the same
question about two sentences that differ in one word ("This man works as a [MASK]." against
"This woman works as a [MASK].") and lays the two answers side by side: the biases of the
training text show up as different probabilities for the same tokens.

The text must contain the model's own mask token exactly once (BERT: [MASK], RoBERTa: <mask>);
the other common spelling is not translated, but the error names the one this model uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from backend.errors import InputError, ParameterError
from backend.fields import integer
from backend.registry import LoadedModel
from backend.tasks.encoding import encode, require_text

COMMON_MASK_TOKENS = ("[MASK]", "<mask>")


@dataclass(frozen=True)
class Fill:
    token_id: int
    token_str: str  # the token decoded alone (may start with a space)
    score: float  # probability of this token in the blank
    sequence: str  # the text with the blank filled in


@dataclass(frozen=True)
class FillMaskResult:
    text: str
    mask_token: str
    fills: tuple[Fill, ...]  # most likely first
    input_tokens: int
    truncated: bool
    notes: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        return ", ".join(f"{f.token_str.strip()} ({f.score:.3f})" for f in self.fills[:3])

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "mask_token": self.mask_token,
            "fills": [
                {"token": f.token_id, "token_str": f.token_str, "score": f.score, "sequence": f.sequence}
                for f in self.fills
            ],
            "input_tokens": self.input_tokens,
            "truncated": self.truncated,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class BiasRow:
    """One token of the union of both top-k lists, with where it stands in each sentence."""

    token_id: int
    token_str: str
    score_a: float  # probability in sentence A (whether or not it made A's top k)
    score_b: float
    rank_a: int  # 1 = the most likely token of the whole vocabulary for A's blank
    rank_b: int

    @property
    def difference(self) -> float:
        return self.score_a - self.score_b


@dataclass(frozen=True)
class BiasProbeResult:
    a: FillMaskResult
    b: FillMaskResult
    rows: tuple[BiasRow, ...]  # highest score in either sentence first

    @property
    def input_tokens(self) -> int:
        return self.a.input_tokens + self.b.input_tokens

    @property
    def summary(self) -> str:
        return f"A: {self.a.summary} | B: {self.b.summary}"

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a.to_json(),
            "b": self.b.to_json(),
            "rows": [
                {
                    "token": r.token_id,
                    "token_str": r.token_str,
                    "score_a": r.score_a,
                    "score_b": r.score_b,
                    "rank_a": r.rank_a,
                    "rank_b": r.rank_b,
                    "difference": r.difference,
                }
                for r in self.rows
            ],
            "input_tokens": self.input_tokens,
            "notes": [f"A: {n}" for n in self.a.notes] + [f"B: {n}" for n in self.b.notes],
        }


@dataclass(frozen=True)
class _Blank:
    """The model's distribution over the vocabulary for the one blank of a text."""

    probs: torch.Tensor  # [vocab], on the CPU
    input_ids: torch.Tensor  # [tokens] as the model read them, on the CPU
    position: int  # index of the mask token in input_ids
    input_tokens: int
    truncated: bool
    notes: tuple[str, ...]


def _check_top_k(loaded: LoadedModel, top_k: object) -> int:
    vocab = int(loaded.model.config.vocab_size)
    return integer("top_k", top_k, 1, vocab, f"an integer in [1, {vocab}] (the vocabulary)")


def _mask_error(field: str, text: str, mask: str, count: int) -> InputError:
    found = "none" if count == 0 else f"{count}"
    message = f"{field} must contain the mask token {mask} exactly once, got {found}."
    others = [t for t in COMMON_MASK_TOKENS if t != mask and t in text]
    if count == 0 and others:
        message += f" {others[0]} is another model's mask token; this model's is {mask}."
    return InputError(field, message)


def _blank(loaded: LoadedModel, text: str, field: str) -> _Blank:
    require_text(field, text)
    tokenizer = loaded.tokenizer
    mask, mask_id = tokenizer.mask_token, tokenizer.mask_token_id
    if mask is None or mask_id is None:
        raise ParameterError("model", "a masked language model whose tokenizer has a mask token", loaded.spec.name)
    encoded = encode(loaded, [text], names=[field])
    count = encoded.full_ids[0].count(mask_id)
    if count != 1:
        raise _mask_error(field, text, mask, count)
    input_ids = encoded.inputs["input_ids"][0].cpu()
    positions = (input_ids == mask_id).nonzero().flatten().tolist()
    if not positions:
        full_position = encoded.full_ids[0].index(mask_id)
        raise InputError(
            field,
            f"{field} must have its mask token within the model's window of {encoded.window} tokens, "
            f"got it at token {full_position + 1} of {encoded.lengths[0]}; move it earlier or shorten the text.",
        )
    with torch.inference_mode():
        logits = loaded.model(**encoded.inputs).logits[0, positions[0]]
    return _Blank(
        probs=logits.float().softmax(dim=-1).cpu(),
        input_ids=input_ids,
        position=positions[0],
        input_tokens=encoded.input_tokens,
        truncated=encoded.truncated[0],
        notes=encoded.notes,
    )


def _fills(loaded: LoadedModel, blank: _Blank, top_k: int) -> tuple[Fill, ...]:
    """The top-k tokens, decoded the way the pipeline decodes them."""
    tokenizer = loaded.tokenizer
    values, ids = blank.probs.topk(top_k)
    fills = []
    for score, token_id in zip(values.tolist(), ids.tolist(), strict=True):
        tokens = blank.input_ids.clone()
        tokens[blank.position] = token_id
        if tokenizer.pad_token_id is not None:
            tokens = tokens[tokens != tokenizer.pad_token_id]
        fills.append(
            Fill(
                token_id=int(token_id),
                token_str=tokenizer.decode([token_id]),
                score=float(score),
                sequence=tokenizer.decode(tokens.tolist(), skip_special_tokens=True),
            )
        )
    return tuple(fills)


def _result(loaded: LoadedModel, text: str, blank: _Blank, top_k: int) -> FillMaskResult:
    return FillMaskResult(
        text=text,
        mask_token=loaded.tokenizer.mask_token,
        fills=_fills(loaded, blank, top_k),
        input_tokens=blank.input_tokens,
        truncated=blank.truncated,
        notes=blank.notes,
    )


def fill_mask(loaded: LoadedModel, text: str, top_k: int = 5) -> FillMaskResult:
    """The `top_k` most likely tokens for the one mask token in `text`."""
    k = _check_top_k(loaded, top_k)
    return _result(loaded, text, _blank(loaded, text, "text"), k)


def bias_probe(loaded: LoadedModel, text_a: str, text_b: str, top_k: int = 10) -> BiasProbeResult:
    """Fill the blank of two sentences and compare: every token in either top-k list, with its
    probability and rank in both sentences (for a side-by-side bar chart)."""
    k = _check_top_k(loaded, top_k)
    blank_a, blank_b = _blank(loaded, text_a, "text_a"), _blank(loaded, text_b, "text_b")
    a, b = _result(loaded, text_a, blank_a, k), _result(loaded, text_b, blank_b, k)
    rows = []
    seen: dict[int, str] = {}
    for fill in a.fills + b.fills:
        seen.setdefault(fill.token_id, fill.token_str)
    for token_id, token_str in seen.items():
        pa, pb = float(blank_a.probs[token_id]), float(blank_b.probs[token_id])
        rows.append(
            BiasRow(
                token_id=token_id,
                token_str=token_str,
                score_a=pa,
                score_b=pb,
                rank_a=int((blank_a.probs > blank_a.probs[token_id]).sum()) + 1,
                rank_b=int((blank_b.probs > blank_b.probs[token_id]).sum()) + 1,
            )
        )
    rows.sort(key=lambda r: max(r.score_a, r.score_b), reverse=True)
    return BiasProbeResult(a=a, b=b, rows=tuple(rows))
