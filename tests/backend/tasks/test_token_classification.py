"""ner(): the token-classification pipeline's entities for every aggregation, plus highlights."""

from __future__ import annotations

import json
import re

import pytest
from transformers import pipeline

from backend.errors import InputError, ParameterError
from backend.tasks.token_classification import Aggregation, Entity, highlight, ner
from tests.tiny_encoders import NER, Twin

TEXT = "John Smith lives in London and works for the United Nations with Angela Merkel."
LONG = " ".join(["Mary Johnson visited Paris, Berlin and Rome last summer."] * 8)


def pipeline_entities(loaded, text: str, aggregation: str) -> list[dict]:
    tagger = pipeline("token-classification", model=loaded.model, tokenizer=loaded.tokenizer)
    return tagger(text, aggregation_strategy=aggregation)


@pytest.mark.filterwarnings("ignore:Tokenizer does not support real words")
@pytest.mark.parametrize("aggregation", [a.value for a in Aggregation])
@pytest.mark.parametrize("twin", list(Twin), ids=lambda t: t.value)
def test_matches_the_pipeline(load, twin: Twin, aggregation: str) -> None:
    loaded = load(f"tiny-{twin.value}-ner")
    result = ner(loaded, TEXT, aggregation)
    expected = pipeline_entities(loaded, TEXT, aggregation)
    got = result.entity_dicts()
    assert len(got) == len(expected) > 0
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.keys() == theirs.keys()
        assert mine["score"] == pytest.approx(float(theirs["score"]), abs=1e-5)
        assert {k: v for k, v in mine.items() if k != "score"} == {
            k: (int(v) if k == "index" else v) for k, v in theirs.items() if k != "score"
        }
    labels = {e.label for e in result.entities}
    if aggregation == "none":
        assert labels <= set(NER) - {"O"}
    else:
        assert labels <= {"PER", "LOC", "ORG"}


@pytest.mark.filterwarnings("ignore:Tokenizer does not support real words")
@pytest.mark.parametrize("aggregation", [a.value for a in Aggregation])
@pytest.mark.parametrize("twin", list(Twin), ids=lambda t: t.value)
def test_highlight_segments_cover_the_whole_text(load, twin: Twin, aggregation: str) -> None:
    result = ner(load(f"tiny-{twin.value}-ner"), TEXT, aggregation)
    assert "".join(segment for segment, _ in result.segments) == TEXT
    assert all(segment for segment, _ in result.segments)
    labelled = [(segment, label) for segment, label in result.segments if label is not None]
    assert labelled  # random weights still tag most tokens as something other than O
    assert {label for _, label in labelled} <= {e.label for e in result.entities}


def test_json_is_plain_with_python_floats(load) -> None:
    result = ner(load("tiny-bert-ner"), TEXT, "simple")
    data = result.to_json()
    assert all(type(e["score"]) is float for e in data["entities"])
    assert json.loads(json.dumps(data))["highlighted"] == [list(s) for s in result.segments]
    assert data["aggregation"] == "simple" and result.input_tokens > 10


def test_word_strategies_on_a_tokenizer_without_subword_marks_say_so(load) -> None:
    with pytest.warns(UserWarning, match="Tokenizer does not support real words"):
        result = ner(load("tiny-roberta-ner"), TEXT, "first")
    assert any("guesses words from spaces" in note for note in result.notes)
    assert not ner(load("tiny-bert-ner"), TEXT, "first").notes


def test_word_strategies_never_split_a_word(load) -> None:
    loaded = load("tiny-bert-ner")
    words = [m.span() for m in re.finditer(r"\w+|[^\w\s]", TEXT)]
    starts, ends = {start for start, _ in words}, {end for _, end in words}
    for aggregation in ("first", "average", "max"):
        for entity in ner(loaded, TEXT, aggregation).entities:
            assert entity.start in starts and entity.end in ends


@pytest.mark.parametrize("bad", ["bogus", "SIMPLE", None])
def test_unknown_aggregation_is_a_parameter_error(load, bad) -> None:
    with pytest.raises(ParameterError) as info:
        ner(load("tiny-bert-ner"), TEXT, bad)
    assert str(info.value) == f"aggregation_strategy must be one of none, simple, first, average, max, got {bad!r}."


def test_empty_text_is_an_input_error(load) -> None:
    with pytest.raises(InputError, match=r"^text must be non-empty text"):
        ner(load("tiny-bert-ner"), "  ", "simple")


@pytest.mark.parametrize("twin", list(Twin), ids=lambda t: t.value)
def test_long_text_is_cut_to_the_window_and_says_so(load, twin: Twin) -> None:
    loaded = load(f"tiny-{twin.value}-ner-short")
    result = ner(loaded, LONG, "simple")
    assert result.truncated and len(result.notes) == 1 and "to 16 tokens" in result.notes[0]
    assert result.input_tokens <= 16
    assert "".join(segment for segment, _ in result.segments) == LONG
    read_up_to = max(e.end for e in result.entities)
    assert read_up_to < len(LONG) // 4
    assert result.segments[-1][1] is None and len(result.segments[-1][0]) > len(LONG) // 2


def test_highlight_clips_overlaps_and_merges_gaps() -> None:
    entities = [Entity("PER", 0.9, "john", 0, 4), Entity("LOC", 0.8, "hn sm", 2, 7), Entity("ORG", 0.7, "x", 9, 9)]
    assert highlight("John Smith!", entities) == (("John", "PER"), (" Sm", "LOC"), ("ith!", None))
