"""zero_shot(): NLI (the zero-shot pipeline's numbers) and sentence-embedding similarity."""

from __future__ import annotations

import json
from dataclasses import replace
from types import MappingProxyType

import pytest
import torch
from transformers import pipeline

from backend.errors import InputError, ParameterError
from backend.tasks.zero_shot import DEFAULT_TEMPERATURE, ZeroShotMethod, entailment_index, parse_labels, zero_shot
from tests.tiny_encoders import Twin

TEXT = "The football match ended in a draw after extra time."
LABELS = ["sports", "politics", "business", "technology"]
LONG = " ".join(["Stocks fell sharply as the central bank raised interest rates."] * 10)


def assert_same_as_pipeline(loaded, text: str, labels: list[str], **kwargs) -> None:
    classifier = pipeline("zero-shot-classification", model=loaded.model, tokenizer=loaded.tokenizer)
    expected = classifier(text, candidate_labels=labels, **kwargs)
    result = zero_shot(loaded, text, labels, **kwargs)
    assert [s.label for s in result.scores] == expected["labels"]
    assert [s.score for s in result.scores] == pytest.approx(expected["scores"], abs=1e-5)


@pytest.mark.parametrize("multi_label", [False, True], ids=["single", "multi"])
@pytest.mark.parametrize("twin", list(Twin), ids=lambda t: t.value)
def test_nli_matches_the_pipeline(load, twin: Twin, multi_label: bool) -> None:
    loaded = load(f"tiny-{twin.value}-nli")
    assert_same_as_pipeline(loaded, TEXT, LABELS, multi_label=multi_label)
    result = zero_shot(loaded, TEXT, LABELS, multi_label=multi_label)
    assert result.method is ZeroShotMethod.NLI and result.multi_label is multi_label
    assert [s.hypothesis for s in sorted(result.scores, key=lambda s: LABELS.index(s.label))] == [
        f"This example is {label}." for label in LABELS
    ]
    if not multi_label:
        assert sum(s.score for s in result.scores) == pytest.approx(1.0, abs=1e-6)


def test_nli_with_one_label_scores_entailment_against_contradiction(load) -> None:
    loaded = load("tiny-bert-nli")
    assert_same_as_pipeline(loaded, TEXT, ["sports"], hypothesis_template="The topic is {}.")
    result = zero_shot(loaded, TEXT, ["sports"], hypothesis_template="The topic is {}.")
    assert result.multi_label and any("one label" in note for note in result.notes)


def test_nli_without_an_entailment_label_follows_the_pipeline_and_says_so(load) -> None:
    loaded = load("tiny-distilbert-sentiment")  # NEGATIVE/POSITIVE: no "entailment"
    assert_same_as_pipeline(loaded, TEXT, LABELS)
    result = zero_shot(loaded, TEXT, LABELS)
    assert any("no entailment class" in note for note in result.notes)


def test_entailment_index_is_found_by_prefix_in_any_case() -> None:
    assert entailment_index({"CONTRADICTION": 0, "NEUTRAL": 1, "ENTAILMENT": 2}) == 2
    assert entailment_index({"entails": 0, "other": 1}) == 0
    assert entailment_index({"LABEL_0": 0, "LABEL_1": 1}) is None


@pytest.mark.parametrize("twin", list(Twin), ids=lambda t: t.value)
def test_similarity_is_cosine_of_mean_pooled_embeddings(load, twin: Twin) -> None:
    loaded = load(f"tiny-{twin.value}-similarity")
    extractor = pipeline("feature-extraction", model=loaded.model, tokenizer=loaded.tokenizer)
    sentences = [TEXT] + [f"This example is {label}." for label in LABELS]
    vectors = torch.stack([torch.tensor(extractor(s)[0]).mean(dim=0) for s in sentences])
    vectors = torch.nn.functional.normalize(vectors, dim=-1)
    cosines = (vectors[1:] @ vectors[0]).tolist()

    single = zero_shot(loaded, TEXT, LABELS)
    assert single.method is ZeroShotMethod.SIMILARITY and single.temperature == DEFAULT_TEMPERATURE
    by_label = {s.label: s for s in single.scores}
    assert [by_label[label].cosine for label in LABELS] == pytest.approx(cosines, abs=1e-5)
    expected = torch.softmax(torch.tensor(cosines) / DEFAULT_TEMPERATURE, dim=-1).tolist()
    assert [by_label[label].score for label in LABELS] == pytest.approx(expected, abs=1e-5)
    assert [s.score for s in single.scores] == sorted((s.score for s in single.scores), reverse=True)

    multi = zero_shot(loaded, TEXT, LABELS, multi_label=True)
    assert multi.temperature is None
    assert {s.label: s.score for s in multi.scores} == pytest.approx(
        {label: (c + 1) / 2 for label, c in zip(LABELS, cosines, strict=True)}, abs=1e-5
    )


def test_similarity_on_the_real_minilm_picks_the_right_topic(load) -> None:
    result = zero_shot(load("minilm-zero-shot"), TEXT, ["sports", "cooking", "finance"])
    assert result.scores[0].label == "sports"
    json.loads(json.dumps(result.to_json()))


def test_json_has_the_pipeline_keys_and_details(load) -> None:
    data = json.loads(json.dumps(zero_shot(load("tiny-roberta-nli"), TEXT, LABELS).to_json()))
    assert data["sequence"] == TEXT and sorted(data["labels"]) == sorted(LABELS)
    assert len(data["scores"]) == len(LABELS) and data["method"] == "nli"
    assert all(d["entailment_logit"] is not None and d["cosine"] is None for d in data["details"])


def test_labels_may_come_as_one_comma_separated_string() -> None:
    assert parse_labels(" sports, politics ,, business ") == ["sports", "politics", "business"]


@pytest.mark.parametrize(
    ("text", "labels", "template", "field", "message"),
    [
        ("", LABELS, "This example is {}.", "text", "text must be non-empty text, got ''."),
        (TEXT, [], "This example is {}.", "labels", "labels must contain at least one label, got []."),
        (TEXT, ["  ", ""], "This example is {}.", "labels", "labels must contain at least one label, got ['  ', '']."),
        (
            TEXT, ["Sports", "politics", " sports "], "This example is {}.", "labels",
            "labels must all be different, got 'Sports' and 'sports' (case is ignored).",
        ),
        (
            TEXT, LABELS, "This example is about it.", "hypothesis_template",
            "hypothesis_template must contain \"{}\" where the label goes, got 'This example is about it.'.",
        ),
        (TEXT, LABELS, "{} or {label}", "hypothesis_template", None),
    ],
    ids=["empty-text", "no-labels", "blank-labels", "duplicate-labels", "no-braces", "named-braces"],
)
def test_bad_inputs_are_input_errors(load, text, labels, template, field, message) -> None:
    with pytest.raises(InputError) as info:
        zero_shot(load("tiny-bert-nli"), text, labels, hypothesis_template=template)
    assert info.value.field == field
    if message is not None:
        assert str(info.value) == message


def test_too_many_labels_or_a_non_boolean_multi_label_are_parameter_errors(load) -> None:
    with pytest.raises(ParameterError, match=r"^labels must be at most 32 labels, got '33 labels'\.$"):
        zero_shot(load("tiny-bert-nli"), TEXT, [f"label {i}" for i in range(33)])
    with pytest.raises(ParameterError, match=r"^multi_label must be true or false, got 'yes'\.$"):
        zero_shot(load("tiny-bert-nli"), TEXT, LABELS, multi_label="yes")


def test_an_unknown_method_is_a_parameter_error(load) -> None:
    loaded = load("tiny-bert-nli")
    odd = replace(loaded, spec=replace(loaded.spec, options=MappingProxyType({"method": "vibes"})))
    with pytest.raises(ParameterError, match=r"^options.method must be one of nli, similarity, got 'vibes'\.$"):
        zero_shot(odd, TEXT, LABELS)


@pytest.mark.parametrize("name", ["tiny-bert-nli-short", "tiny-roberta-nli-short", "tiny-distilbert-similarity-short"])
def test_long_text_is_cut_and_says_so(load, name: str) -> None:
    result = zero_shot(load(name), LONG, LABELS)
    assert result.truncated and len(result.notes) >= 1 and "not read" in result.notes[0]


def test_a_hypothesis_longer_than_the_window_is_an_input_error(load) -> None:
    with pytest.raises(InputError, match="labels must give hypotheses shorter") as info:
        zero_shot(load("tiny-bert-nli-short"), TEXT, ["a very long label " * 5])
    assert info.value.field == "labels"
