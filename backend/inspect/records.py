"""What the inspector returns: small typed records with a documented shape (the data contract
between the part that reads numbers from the model and the part that draws them). Heavy tensors
never leave backend.inspect: a record holds at most a few thousand floats.

Shapes (`to_json()`, as the API returns them):

- TokenInspection: {run_id, position, token: {token_id, text}, mode, stages: [StageView...],
  attention: AttentionView | {unavailable}, logit_lens: [LensLayer...] | {unavailable}, notes}
- StageView: {name, label, description, support, entropy_bits, removed_mass, chosen_prob,
  chosen_rank, top: [{token_id, text, prob}], sentence}. The first stage is "raw" (softmax of the
  model's logits), the last "final" (the distribution the token was chosen from); between them
  every stage of the run's chain, in order. `top` lists the same candidates at every stage: the
  union of each stage's top N, always with the chosen token, most probable (final, then raw) first.
- AttentionView: {context: [texts], layers, heads, weights: [[per context token] per layer]
  (averaged over heads), layer, head_weights: [[per context token] per head] of `layer`,
  cross: {context, weights, head_weights} (encoder-decoder: attention over the source) or null}.
- LensLayer: {layer, name, top: [{token_id, text, prob}] (5), chosen_rank, chosen_prob}.
- PromptSurprisal: {run_id, tokens: [{token_id, text, logprob, rank, alternatives}], perplexity,
  most_surprising: [indices], notes} or {run_id, unavailable}.
- Tokenization: {model, tokens: [{token_id, text, start, end, special}], count, max_context,
  chars_per_token, notes}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Candidate:
    token_id: int
    text: str
    prob: float

    def to_json(self) -> dict[str, Any]:
        return {"token_id": self.token_id, "text": self.text, "prob": self.prob}


@dataclass(frozen=True)
class StageView:
    """One stage of the chain at one position, seen from its output distribution."""

    name: str  # "raw", a chain stage's name ("top-p"), or "final"
    label: str  # the name with its setting ("top-p 0.9")
    description: str  # what the stage does, in general
    support: int  # tokens still allowed (finite logit)
    entropy_bits: float
    removed_mass: float  # probability (under the stage before) of the tokens this stage removed
    chosen_prob: float  # the chosen token's probability after this stage
    chosen_rank: int  # 1 = most probable after this stage
    top: tuple[Candidate, ...]
    sentence: str  # what the stage did at this position, in one sentence

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "description": self.description,
            "support": self.support,
            "entropy_bits": self.entropy_bits,
            "removed_mass": self.removed_mass,
            "chosen_prob": self.chosen_prob,
            "chosen_rank": self.chosen_rank,
            "top": [c.to_json() for c in self.top],
            "sentence": self.sentence,
        }


@dataclass(frozen=True)
class AttentionOver:
    """Attention of one query position over a context: per layer averaged over heads, and per
    head for one chosen layer."""

    context: tuple[str, ...]
    weights: tuple[tuple[float, ...], ...]  # [layer][context position]
    head_weights: tuple[tuple[float, ...], ...]  # [head][context position] of the chosen layer

    def to_json(self) -> dict[str, Any]:
        return {
            "context": list(self.context),
            "weights": [list(row) for row in self.weights],
            "head_weights": [list(row) for row in self.head_weights],
        }


@dataclass(frozen=True)
class AttentionView:
    layers: int
    heads: int
    layer: int  # the layer whose heads are in head_weights (0 = first layer)
    self_attention: AttentionOver  # over the tokens before this one (prompt and generated)
    cross: AttentionOver | None  # encoder-decoder: over the source text

    def to_json(self) -> dict[str, Any]:
        own = self.self_attention.to_json()
        return {
            "context": own["context"],
            "layers": self.layers,
            "heads": self.heads,
            "weights": own["weights"],
            "layer": self.layer,
            "head_weights": own["head_weights"],
            "cross": None if self.cross is None else self.cross.to_json(),
        }


@dataclass(frozen=True)
class LensLayer:
    layer: int  # 0 = the embeddings, L = the last layer (the model's own output)
    name: str
    top: tuple[Candidate, ...]
    chosen_rank: int
    chosen_prob: float

    def to_json(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "name": self.name,
            "top": [c.to_json() for c in self.top],
            "chosen_rank": self.chosen_rank,
            "chosen_prob": self.chosen_prob,
        }


@dataclass(frozen=True)
class Unavailable:
    """A view this model or run cannot have, and why."""

    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"unavailable": self.reason}


@dataclass(frozen=True)
class TokenInspection:
    run_id: int
    position: int  # 0 = the first new token
    token_id: int
    text: str
    mode: str  # greedy / sample / beam / beam_sample
    stages: tuple[StageView, ...]
    attention: AttentionView | Unavailable
    logit_lens: tuple[LensLayer, ...] | Unavailable
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "position": self.position,
            "token": {"token_id": self.token_id, "text": self.text},
            "mode": self.mode,
            "stages": [s.to_json() for s in self.stages],
            "attention": self.attention.to_json(),
            "logit_lens": (
                self.logit_lens.to_json()
                if isinstance(self.logit_lens, Unavailable)
                else [layer.to_json() for layer in self.logit_lens]
            ),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class PromptToken:
    token_id: int
    text: str
    logprob: float | None  # None for the first token (nothing before it to predict it from)
    rank: int | None  # 1 = the model's first guess
    alternatives: tuple[Candidate, ...]  # what the model expected there instead (its top 5)

    def to_json(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "text": self.text,
            "logprob": self.logprob,
            "rank": self.rank,
            "alternatives": [c.to_json() for c in self.alternatives],
        }


@dataclass(frozen=True)
class PromptSurprisal:
    run_id: int
    tokens: tuple[PromptToken, ...]
    perplexity: float | None  # exp(mean negative log-likelihood) over the predicted tokens
    most_surprising: tuple[int, ...]  # indices into tokens, most surprising first
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "tokens": [t.to_json() for t in self.tokens],
            "perplexity": self.perplexity,
            "most_surprising": list(self.most_surprising),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class TokenPiece:
    token_id: int
    text: str  # the token as the tokenizer names it ("Ġthe" in byte-level BPE)
    start: int | None  # characters of the input it covers (None: a token the tokenizer added, or a slow tokenizer)
    end: int | None
    special: bool  # added by the tokenizer ([CLS], </s>) or a special token in the text ([MASK])

    def to_json(self) -> dict[str, Any]:
        return {"token_id": self.token_id, "text": self.text, "start": self.start, "end": self.end, "special": self.special}


@dataclass(frozen=True)
class Tokenization:
    model: str
    tokens: tuple[TokenPiece, ...]
    max_context: int
    chars_per_token: float | None  # characters of the text per token of the text (added tokens not counted)
    notes: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.tokens)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "tokens": [t.to_json() for t in self.tokens],
            "count": self.count,
            "max_context": self.max_context,
            "chars_per_token": self.chars_per_token,
            "notes": list(self.notes),
        }
