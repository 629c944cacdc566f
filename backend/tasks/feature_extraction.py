"""Sentence embeddings: one vector per sentence, and how alike the sentences are.

What it shows a person: an encoder gives every token a vector; pooling them (the mean over the
tokens, or the first [CLS] token's vector) gives one vector per sentence, and the cosine between
two such vectors says how close their meanings are. The token vectors are the
`feature-extraction` pipeline's (the model's last hidden state); mean pooling averages them over
the real tokens (special tokens included, padding excluded), as sentence-transformers does.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from backend.errors import InputError, ParameterError
from backend.registry import LoadedModel
from backend.tasks.encoding import Encoded, encode, require_text

MAX_SENTENCES = 64  # one forward pass on CPU stays short; the similarity matrix stays readable


class Pooling(enum.Enum):
    MEAN = "mean"  # average of the token vectors (sentence-transformers models)
    CLS = "cls"  # the first token's vector ([CLS] / <s>)


def parse_pooling(value: object) -> Pooling:
    try:
        return Pooling(value)
    except ValueError:
        raise ParameterError("pooling", f"one of {', '.join(p.value for p in Pooling)}", value) from None


def token_vectors(loaded: LoadedModel, texts: Sequence[str], names: Sequence[str]) -> tuple[torch.Tensor, Encoded]:
    """The last hidden state of a padded batch, [batch, tokens, hidden], with its encoding."""
    encoded = encode(loaded, texts, names=names)
    with torch.inference_mode():
        hidden = loaded.model(**encoded.inputs)[0]
    return hidden.float(), encoded


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """[batch, tokens, hidden] -> [batch, hidden]."""
    if pooling is Pooling.CLS:
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def sentence_embeddings(
    loaded: LoadedModel, texts: Sequence[str], names: Sequence[str], pooling: Pooling
) -> tuple[torch.Tensor, Encoded]:
    """Pooled, not normalised, sentence vectors [batch, hidden], with the encoding."""
    hidden, encoded = token_vectors(loaded, texts, names)
    return pool(hidden, encoded.inputs["attention_mask"], pooling), encoded


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every row of `a` with every row of `b`."""
    return torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(b, dim=-1).T


@dataclass(frozen=True)
class EmbeddingResult:
    sentences: tuple[str, ...]
    pooling: Pooling
    normalized: bool  # True: the vectors were L2-normalised (length 1)
    dimension: int
    norms: tuple[float, ...]  # each pooled vector's length before normalisation
    vectors: tuple[tuple[float, ...], ...]
    similarity: tuple[tuple[float, ...], ...]  # cosine of every pair, [i][j]
    tokens: tuple[int, ...]  # tokens each sentence was read as (after any cut)
    input_tokens: int
    notes: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        return f"{len(self.sentences)} sentence(s) -> {self.dimension}-d vectors ({self.pooling.value} pooling)"

    def to_json(self) -> dict[str, Any]:
        return {
            "sentences": list(self.sentences),
            "pooling": self.pooling.value,
            "normalized": self.normalized,
            "dimension": self.dimension,
            "norms": list(self.norms),
            "vectors": [list(v) for v in self.vectors],
            "similarity": [list(row) for row in self.similarity],
            "tokens": list(self.tokens),
            "input_tokens": self.input_tokens,
            "notes": list(self.notes),
        }


def embed(
    loaded: LoadedModel, sentences: Sequence[str], pooling: str | None = None, normalize: bool = True
) -> EmbeddingResult:
    """Embed each sentence and compare every pair by cosine similarity.

    `pooling`: "mean" or "cls"; None takes the model's `options.pooling` in models.yaml, else
    "mean". `normalize`: return unit-length vectors (the cosines do not depend on it)."""
    if isinstance(sentences, str) or not isinstance(sentences, Sequence):
        raise ParameterError("sentences", "a list of strings", sentences)
    if not sentences:
        raise InputError("sentences", "sentences must contain at least one sentence, got none.")
    if len(sentences) > MAX_SENTENCES:
        raise ParameterError("sentences", f"at most {MAX_SENTENCES} sentences", f"{len(sentences)} sentences")
    names = [f"sentences[{i}]" for i in range(len(sentences))]
    for name, sentence in zip(names, sentences, strict=True):
        require_text(name, sentence)
    if not isinstance(normalize, bool):
        raise ParameterError("normalize", "true or false", normalize)
    chosen = parse_pooling(loaded.spec.options.get("pooling", "mean") if pooling is None else pooling)

    vectors, encoded = sentence_embeddings(loaded, sentences, names, chosen)
    norms = vectors.norm(dim=-1)
    shown = torch.nn.functional.normalize(vectors, dim=-1) if normalize else vectors
    return EmbeddingResult(
        sentences=tuple(sentences),
        pooling=chosen,
        normalized=normalize,
        dimension=int(vectors.shape[-1]),
        norms=tuple(norms.tolist()),
        vectors=tuple(tuple(v) for v in shown.tolist()),
        similarity=tuple(tuple(row) for row in cosine_matrix(vectors, vectors).tolist()),
        tokens=tuple(encoded.inputs["attention_mask"].sum(dim=1).tolist()),
        input_tokens=encoded.input_tokens,
        notes=encoded.notes,
    )
