"""Zero-shot classification: labels a person makes up at run time, no training on them.

What it shows a person: an encoder trained for something else can still sort text into new
labels, in one of two ways (the model's `options.method` in models.yaml):

- "nli" (default): a natural-language-inference classifier reads the text as a premise and each
  label as a hypothesis ("This example is sports.") and says how much the premise entails it.
  Single-label: softmax of the entailment logits across the labels (scores sum to 1).
  Multi-label, or one label: for each label on its own, softmax of [contradiction, entailment]
  and the entailment share. Same numbers as the `zero-shot-classification` pipeline.
- "similarity": a sentence-embedding model embeds the text and each hypothesis (the template is
  applied here too, so the two methods compare the same sentences; use the template "{}" to embed
  bare labels), and compares them by cosine. Single-label: softmax of cosine / temperature across
  the labels; the temperature is 0.05 (a scale of 20, the one sentence-transformers trains such
  models with), or the model's `options.temperature`. Multi-label: (cosine + 1) / 2 for each
  label on its own, a linear map of [-1, 1] onto [0, 1] (0.5 = orthogonal, not "50 % likely").
  The raw cosines are returned too.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from backend.errors import InputError, ParameterError
from backend.registry import LoadedModel
from backend.tasks.encoding import encode, require_text, valid_unicode, window
from backend.tasks.feature_extraction import cosine_matrix, parse_pooling, sentence_embeddings

DEFAULT_TEMPLATE = "This example is {}."
DEFAULT_TEMPERATURE = 0.05  # similarity method, single-label: softmax(cosine / 0.05)
MAX_LABELS = 32  # NLI runs the model once per label: keep a CPU run short


class ZeroShotMethod(enum.Enum):
    NLI = "nli"
    SIMILARITY = "similarity"


@dataclass(frozen=True)
class ZeroShotScore:
    label: str
    score: float
    hypothesis: str  # the sentence the text was compared with
    entailment_logit: float | None = None  # NLI only
    cosine: float | None = None  # similarity only


@dataclass(frozen=True)
class ZeroShotResult:
    text: str
    method: ZeroShotMethod
    scores: tuple[ZeroShotScore, ...]  # every label, highest score first
    hypothesis_template: str
    multi_label: bool  # as computed: True also when a single label was given
    temperature: float | None  # similarity, single-label only
    input_tokens: int
    truncated: bool
    notes: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        top = self.scores[0]
        return f"{top.label} ({top.score:.3f}, {self.method.value})"

    def to_json(self) -> dict[str, Any]:
        return {
            "sequence": self.text,
            "method": self.method.value,
            "labels": [s.label for s in self.scores],
            "scores": [s.score for s in self.scores],
            "details": [
                {
                    "label": s.label,
                    "score": s.score,
                    "hypothesis": s.hypothesis,
                    "entailment_logit": s.entailment_logit,
                    "cosine": s.cosine,
                }
                for s in self.scores
            ],
            "hypothesis_template": self.hypothesis_template,
            "multi_label": self.multi_label,
            "temperature": self.temperature,
            "input_tokens": self.input_tokens,
            "truncated": self.truncated,
            "notes": list(self.notes),
        }


def parse_labels(labels: str | Sequence[str]) -> list[str]:
    """Candidate labels, stripped; a string is split on commas. Blank entries are skipped; none
    left, or the same label twice (ignoring case), is an InputError."""
    if isinstance(labels, str):
        labels = labels.split(",")
    if not isinstance(labels, Sequence) or not all(isinstance(label, str) for label in labels):
        raise ParameterError("labels", "a list of strings", labels)
    cleaned = [valid_unicode("labels", label.strip()) for label in labels if label.strip()]
    if not cleaned:
        raise InputError("labels", f"labels must contain at least one label, got {list(labels)!r}.")
    if len(cleaned) > MAX_LABELS:
        raise ParameterError("labels", f"at most {MAX_LABELS} labels", f"{len(cleaned)} labels")
    seen: dict[str, str] = {}
    for label in cleaned:
        key = label.casefold()
        if key in seen:
            raise InputError(
                "labels", f"labels must all be different, got {seen[key]!r} and {label!r} (case is ignored)."
            )
        seen[key] = label
    return cleaned


def hypotheses(template: str, labels: Sequence[str]) -> list[str]:
    """The template with each label in place of its "{}"."""
    if not isinstance(template, str) or "{}" not in template:
        raise InputError(
            "hypothesis_template",
            f'hypothesis_template must contain "{{}}" where the label goes, got {template!r}.',
        )
    valid_unicode("hypothesis_template", template)
    try:
        return [template.format(label) for label in labels]
    except (IndexError, KeyError, ValueError):
        raise InputError(
            "hypothesis_template",
            f'hypothesis_template must contain only "{{}}" between braces (write {{{{ and }}}} for '
            f"literal braces), got {template!r}.",
        ) from None


def method_of(loaded: LoadedModel) -> ZeroShotMethod:
    value = loaded.spec.options.get("method", "nli")
    try:
        return ZeroShotMethod(value)
    except ValueError:
        raise ParameterError("options.method", "one of nli, similarity", value) from None


def zero_shot(
    loaded: LoadedModel,
    text: str,
    labels: str | Sequence[str],
    hypothesis_template: str = DEFAULT_TEMPLATE,
    multi_label: bool = False,
) -> ZeroShotResult:
    """Score `text` against each candidate label, highest first (see the module docstring)."""
    require_text("text", text)
    if not isinstance(multi_label, bool):
        raise ParameterError("multi_label", "true or false", multi_label)
    cleaned = parse_labels(labels)
    sentences = hypotheses(hypothesis_template, cleaned)
    method = method_of(loaded)
    if method is ZeroShotMethod.NLI:
        return _by_entailment(loaded, text, cleaned, sentences, hypothesis_template, multi_label)
    return _by_similarity(loaded, text, cleaned, sentences, hypothesis_template, multi_label)


def entailment_index(label2id: Mapping[str, int]) -> int | None:
    """The id of the first label that starts with "entail" (any case), the pipeline's lookup."""
    for label, index in label2id.items():
        if str(label).lower().startswith("entail"):
            return int(index)
    return None


def _by_entailment(
    loaded: LoadedModel,
    text: str,
    labels: list[str],
    sentences: list[str],
    template: str,
    multi_label: bool,
) -> ZeroShotResult:
    config = loaded.model.config
    notes: list[str] = []
    entailment = entailment_index(config.label2id)
    if entailment is None:
        entailment = config.num_labels - 1
        notes.append(
            f"the model's labels ({', '.join(map(str, config.label2id))}) name no entailment class: the last "
            "one was taken as entailment, as the transformers pipeline does; the scores may mean nothing."
        )
    # The pipeline takes class 0 as contradiction (the last one when 0 is entailment).
    contradiction = -1 if entailment == 0 else 0
    limit = window(loaded)
    for label, sentence in zip(labels, sentences, strict=True):
        # The text can be cut to fit, the hypothesis cannot: it needs room beside the text.
        hypothesis_tokens = len(loaded.tokenizer("", sentence, verbose=False)["input_ids"])
        if hypothesis_tokens >= limit:
            raise InputError(
                "labels",
                f"labels must give hypotheses shorter than the model's window of {limit} tokens, "
                f"got {hypothesis_tokens} tokens for {label!r}.",
            )
    encoded = encode(loaded, [text] * len(labels), names=["text"] * len(labels), pairs=sentences)
    with torch.inference_mode():
        logits = loaded.model(**encoded.inputs).logits.float().cpu().numpy()
    if any(encoded.truncated):
        longest = max(encoded.lengths)
        notes.insert(
            0,
            f"text cut to fit beside each hypothesis: the longest pair was {longest} tokens and "
            f"{loaded.spec.name} reads at most {limit}; the end of the text was not read.",
        )
    single = multi_label or len(labels) == 1
    if single:
        pair = logits[:, [contradiction, entailment]]
        scores = (np.exp(pair) / np.exp(pair).sum(-1, keepdims=True))[:, 1]
        if not multi_label:
            notes.append("one label: its score is entailment against contradiction, not a share among labels.")
    else:
        entail = logits[:, entailment]
        scores = np.exp(entail) / np.exp(entail).sum(-1, keepdims=True)
    order = list(reversed(scores.argsort()))  # the pipeline's order, ties included
    return ZeroShotResult(
        text=text,
        method=ZeroShotMethod.NLI,
        scores=tuple(
            ZeroShotScore(labels[i], float(scores[i]), sentences[i], entailment_logit=float(logits[i, entailment]))
            for i in order
        ),
        hypothesis_template=template,
        multi_label=single,
        temperature=None,
        input_tokens=encoded.input_tokens,
        truncated=any(encoded.truncated),
        notes=tuple(notes),
    )


def _by_similarity(
    loaded: LoadedModel,
    text: str,
    labels: list[str],
    sentences: list[str],
    template: str,
    multi_label: bool,
) -> ZeroShotResult:
    options = loaded.spec.options
    pooling = parse_pooling(options.get("pooling", "mean"))
    temperature = options.get("temperature", DEFAULT_TEMPERATURE)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ParameterError("options.temperature", "a number > 0", temperature)
    names = ["text"] + [f"hypothesis for {label!r}" for label in labels]
    vectors, encoded = sentence_embeddings(loaded, [text, *sentences], names, pooling)
    cosines = cosine_matrix(vectors[:1], vectors[1:])[0]
    if multi_label:
        scores = (cosines + 1) / 2
    else:
        scores = torch.softmax(cosines / float(temperature), dim=-1)
    scores_np = scores.cpu().numpy()
    order = list(reversed(scores_np.argsort()))
    return ZeroShotResult(
        text=text,
        method=ZeroShotMethod.SIMILARITY,
        scores=tuple(
            ZeroShotScore(labels[i], float(scores_np[i]), sentences[i], cosine=float(cosines[i])) for i in order
        ),
        hypothesis_template=template,
        multi_label=multi_label,
        temperature=None if multi_label else float(temperature),
        input_tokens=encoded.input_tokens,
        truncated=any(encoded.truncated),
        notes=encoded.notes,
    )
