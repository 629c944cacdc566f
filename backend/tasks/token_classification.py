"""Token classification (named-entity recognition): a label for every token, then for words.

What it shows a person: the encoder labels each sub-word token (B-PER, I-PER, O...) with the
whole sentence in view, and the aggregation strategy decides how tokens become entities:

- "none": every token on its own, with its B-/I- tag (tokens labelled O are left out);
- "simple": adjacent tokens with the same entity type are joined (a word may still be split);
- "first" / "average" / "max": first make each word agree on one label (the first token's, the
  average of its tokens' probabilities, or its most confident token's), then join as "simple".

The entities are exactly the `token-classification` pipeline's: the pipeline class itself runs
here, on text cut to the model's window. The word-level strategies find words from the
tokenizer's sub-word marker ("##"); a tokenizer without one (byte-level BPE, e.g. RoBERTa) makes
the pipeline guess words from spaces, and the result says so in its notes.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from transformers import TokenClassificationPipeline

from backend.errors import ParameterError
from backend.registry import LoadedModel
from backend.tasks.encoding import require_text, truncation_note, window


class Aggregation(enum.Enum):
    NONE = "none"
    SIMPLE = "simple"
    FIRST = "first"
    AVERAGE = "average"
    MAX = "max"


WORD_LEVEL = frozenset({Aggregation.FIRST, Aggregation.AVERAGE, Aggregation.MAX})

Segment = tuple[str, str | None]  # a piece of the text and its label (None: no entity)


def parse_aggregation(value: object) -> Aggregation:
    try:
        return Aggregation(value)
    except ValueError:
        raise ParameterError("aggregation_strategy", f"one of {', '.join(a.value for a in Aggregation)}", value) from None


@dataclass(frozen=True)
class Entity:
    label: str  # the entity type ("PER") when grouped, the token's tag ("B-PER") with "none"
    score: float
    word: str  # the tokens decoded; text[start:end] is the exact span
    start: int  # character offsets into the text
    end: int
    index: int | None = None  # the token's position, "none" only


@dataclass(frozen=True)
class NerResult:
    text: str
    aggregation: Aggregation
    entities: tuple[Entity, ...]  # in text order
    segments: tuple[Segment, ...]  # the whole text, in order, for gr.HighlightedText
    input_tokens: int
    truncated: bool
    notes: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        kinds = sorted({e.label for e in self.entities})
        return f"{len(self.entities)} entit{'y' if len(self.entities) == 1 else 'ies'}" + (
            f" ({', '.join(kinds)})" if kinds else ""
        )

    def entity_dicts(self) -> list[dict[str, Any]]:
        """The entities with the pipeline's keys ("entity" + "index" for "none", else "entity_group")."""
        if self.aggregation is Aggregation.NONE:
            return [
                {"entity": e.label, "score": e.score, "index": e.index, "word": e.word, "start": e.start, "end": e.end}
                for e in self.entities
            ]
        return [
            {"entity_group": e.label, "score": e.score, "word": e.word, "start": e.start, "end": e.end}
            for e in self.entities
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "aggregation": self.aggregation.value,
            "entities": self.entity_dicts(),
            "highlighted": [[segment, label] for segment, label in self.segments],
            "input_tokens": self.input_tokens,
            "truncated": self.truncated,
            "notes": list(self.notes),
        }


def ner(loaded: LoadedModel, text: str, aggregation: str = "simple") -> NerResult:
    """Find the entities in `text`, grouped by `aggregation` (see the module docstring)."""
    require_text("text", text)
    strategy = parse_aggregation(aggregation)
    tokenizer = loaded.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise ParameterError(
            "model", "a model with a fast tokenizer (character offsets)", type(tokenizer).__name__
        )
    notes: list[str] = []
    read, length, limit = _cut_to_window(loaded, text)
    if len(read) < len(text):
        notes.append(truncation_note("text", length, limit, loaded.spec.name))
    if strategy in WORD_LEVEL and not getattr(tokenizer.backend_tokenizer.model, "continuing_subword_prefix", None):
        notes.append(
            f"this tokenizer marks no sub-words, so '{strategy.value}' guesses words from spaces "
            "(a token not preceded by a space continues the word before it)."
        )
    pipe = TokenClassificationPipeline(model=loaded.model, tokenizer=tokenizer, device=loaded.device)
    raw = pipe(read, aggregation_strategy=strategy.value)
    entities = tuple(
        Entity(
            label=str(item.get("entity_group", item.get("entity"))),
            score=float(item["score"]),
            word=str(item["word"]),
            start=int(item["start"]),
            end=int(item["end"]),
            index=int(item["index"]) if "index" in item else None,
        )
        for item in raw
    )
    return NerResult(
        text=text,
        aggregation=strategy,
        entities=entities,
        segments=highlight(text, entities),
        input_tokens=len(tokenizer(read)["input_ids"]),
        truncated=len(read) < len(text),
        notes=tuple(notes),
    )


def highlight(text: str, entities: Sequence[Entity]) -> tuple[Segment, ...]:
    """Cut `text` into consecutive pieces, each with its entity label or None; the pieces joined
    give the text back. An entity overlapping the one before it is clipped."""
    segments: list[Segment] = []

    def add(piece: str, label: str | None) -> None:
        if not piece:
            return
        if segments and segments[-1][1] is None and label is None:
            segments[-1] = (segments[-1][0] + piece, None)
        else:
            segments.append((piece, label))

    cursor = 0
    for entity in sorted(entities, key=lambda e: (e.start, e.end)):
        start, end = max(entity.start, cursor), min(entity.end, len(text))
        if end <= start:
            continue
        add(text[cursor:start], None)
        add(text[start:end], entity.label)
        cursor = end
    add(text[cursor:], None)
    return tuple(segments)


def _cut_to_window(loaded: LoadedModel, text: str) -> tuple[str, int, int]:
    """The longest prefix of `text`, ending at a token boundary, that fits the model's window;
    with the text's full length in tokens and the window."""
    tokenizer = loaded.tokenizer
    limit = window(loaded)
    specials = tokenizer.num_special_tokens_to_add(pair=False)
    plain = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    length = len(plain["input_ids"]) + specials
    keep = limit - specials
    if length <= limit:
        return text, length, limit
    offsets = plain["offset_mapping"]
    # A prefix can re-tokenize a little differently at its end: shrink until it fits.
    while keep > 0:
        prefix = text[: offsets[keep - 1][1]]
        if len(tokenizer(prefix, verbose=False)["input_ids"]) <= limit:
            return prefix, length, limit
        keep -= 1
    return "", length, limit
