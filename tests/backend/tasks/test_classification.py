"""classify(): every label with its probability, the text-classification pipeline's numbers."""

from __future__ import annotations

import json

import pytest
from transformers import pipeline

from backend.errors import InputError
from backend.tasks import as_task_output
from backend.tasks.classification import ScoreFunction, classify
from tests.tiny_encoders import SENTIMENT, SHORT_CONTEXT, TOPICS, Twin

TEXT = "The movie was wonderful, and I loved every minute of it."
LONG = " ".join(["The food was terrible and the service was even worse."] * 12)


def pipeline_scores(loaded, text: str, **tokenizer_kwargs) -> list[dict]:
    classifier = pipeline("text-classification", model=loaded.model, tokenizer=loaded.tokenizer, top_k=None)
    nested = classifier(text, **tokenizer_kwargs)
    return nested[0] if isinstance(nested[0], list) else nested  # one string: a nested list


def assert_same(result, expected: list[dict]) -> None:
    assert [s.label for s in result.scores] == [e["label"] for e in expected]
    for got, want in zip(result.scores, expected, strict=True):
        assert got.score == pytest.approx(want["score"], abs=1e-5)


@pytest.mark.parametrize("twin", list(Twin), ids=lambda t: t.value)
def test_matches_the_pipeline_with_every_label(load, twin: Twin) -> None:
    loaded = load(f"tiny-{twin.value}-sentiment")
    result = classify(loaded, TEXT)
    assert_same(result, pipeline_scores(loaded, TEXT))
    assert {s.label for s in result.scores} == set(SENTIMENT)
    assert result.function is ScoreFunction.SOFTMAX
    assert sum(s.score for s in result.scores) == pytest.approx(1.0, abs=1e-6)
    assert [s.score for s in result.scores] == sorted((s.score for s in result.scores), reverse=True)
    assert result.top == result.scores[0] and not result.truncated and result.notes == ()


def test_multi_label_model_gets_independent_sigmoid_scores(load) -> None:
    loaded = load("tiny-bert-multilabel")
    result = classify(loaded, TEXT)
    assert result.function is ScoreFunction.SIGMOID
    assert {s.label for s in result.scores} == set(TOPICS)
    assert_same(result, pipeline_scores(loaded, TEXT))
    assert all(0.0 < s.score < 1.0 for s in result.scores)


def test_json_is_plain(load) -> None:
    result = classify(load("tiny-roberta-sentiment"), TEXT)
    data = json.loads(json.dumps(result.to_json()))
    assert data["label"] == result.top.label and data["function"] == "softmax"
    assert all(type(s["score"]) is float for s in result.to_json()["scores"])
    assert data["input_tokens"] == result.input_tokens > 2


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_text_is_an_input_error(load, text: str) -> None:
    with pytest.raises(InputError, match=r"^text must be non-empty text, got .*\.$") as info:
        classify(load("tiny-bert-sentiment"), text)
    assert info.value.field == "text"


@pytest.mark.parametrize("twin", list(Twin), ids=lambda t: t.value)
def test_long_text_is_cut_to_the_window_and_says_so(load, twin: Twin) -> None:
    loaded = load(f"tiny-{twin.value}-sentiment-short")
    result = classify(loaded, LONG)
    assert result.truncated and result.input_tokens == SHORT_CONTEXT
    assert len(result.notes) == 1 and f"to {SHORT_CONTEXT} tokens" in result.notes[0]
    assert_same(result, pipeline_scores(loaded, LONG, truncation=True, max_length=SHORT_CONTEXT))


def test_as_task_output_wraps_the_result(load) -> None:
    result = classify(load("tiny-bert-sentiment"), TEXT)
    output = as_task_output(result, seconds=0.25)
    assert output.summary == result.summary and output.result == result.to_json()
    assert output.seconds == 0.25 and output.input_tokens == result.input_tokens
