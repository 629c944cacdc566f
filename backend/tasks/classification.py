"""Text classification: every label a sequence classifier knows, with its probability.

What it shows a person: an encoder reads the whole sentence at once and a small head turns its
summary into one score per label. All labels are returned, not only the winner, so a close call
(0.51 against 0.49) looks like one. The scores are the `text-classification` pipeline's
(`top_k=None`): softmax over the labels, sigmoid per label for a multi-label model (or a model
with a single label), the raw value for a regression model.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import torch

from backend.registry import LoadedModel
from backend.tasks.encoding import encode, require_text


class ScoreFunction(enum.Enum):
    """How logits become scores (the pipeline's `function_to_apply`)."""

    SOFTMAX = "softmax"  # one label is true: scores sum to 1
    SIGMOID = "sigmoid"  # each label is true or not on its own: each score in (0, 1)
    NONE = "none"  # regression: the raw output


def score_function(config: Any) -> ScoreFunction:
    """The pipeline's default rule, read from the model's config."""
    if config.problem_type == "regression":
        return ScoreFunction.NONE
    if config.problem_type == "multi_label_classification" or config.num_labels == 1:
        return ScoreFunction.SIGMOID
    return ScoreFunction.SOFTMAX


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float


@dataclass(frozen=True)
class ClassificationResult:
    text: str
    scores: tuple[LabelScore, ...]  # every label, highest score first
    function: ScoreFunction
    input_tokens: int
    truncated: bool
    notes: tuple[str, ...] = ()

    @property
    def top(self) -> LabelScore:
        return self.scores[0]

    @property
    def summary(self) -> str:
        return f"{self.top.label} ({self.top.score:.3f})"

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.top.label,
            "score": self.top.score,
            "scores": [{"label": s.label, "score": s.score} for s in self.scores],
            "function": self.function.value,
            "input_tokens": self.input_tokens,
            "truncated": self.truncated,
            "notes": list(self.notes),
        }


def classify(loaded: LoadedModel, text: str) -> ClassificationResult:
    """Score `text` against every label of the model, highest first."""
    require_text("text", text)
    encoded = encode(loaded, [text], names=["text"])
    with torch.inference_mode():
        logits = loaded.model(**encoded.inputs).logits[0].float()
    function = score_function(loaded.model.config)
    if function is ScoreFunction.SOFTMAX:
        values = torch.softmax(logits, dim=-1)
    elif function is ScoreFunction.SIGMOID:
        values = torch.sigmoid(logits)
    else:
        values = logits
    id2label = loaded.model.config.id2label
    scores = [LabelScore(str(id2label[i]), float(v)) for i, v in enumerate(values.tolist())]
    scores.sort(key=lambda s: s.score, reverse=True)  # stable, like the pipeline's sort
    return ClassificationResult(
        text=text,
        scores=tuple(scores),
        function=function,
        input_tokens=encoded.input_tokens,
        truncated=encoded.truncated[0],
        notes=encoded.notes,
    )
