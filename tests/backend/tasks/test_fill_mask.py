"""fill_mask() and bias_probe(): the fill-mask pipeline's fills, and two sentences side by side."""

from __future__ import annotations

import json

import pytest
from transformers import pipeline

from backend.errors import InputError, ParameterError
from backend.tasks.fill_mask import bias_probe, fill_mask
from tests.tiny_encoders import Twin

MAN = "This man works as a {}."
WOMAN = "This woman works as a {}."


def masked(loaded, template: str) -> str:
    return template.format(loaded.tokenizer.mask_token)


@pytest.mark.parametrize("top_k", [1, 5])
@pytest.mark.parametrize("twin", list(Twin), ids=lambda t: t.value)
def test_matches_the_pipeline(load, twin: Twin, top_k: int) -> None:
    loaded = load(f"tiny-{twin.value}-mlm")
    text = masked(loaded, MAN)
    expected = pipeline("fill-mask", model=loaded.model, tokenizer=loaded.tokenizer)(text, top_k=top_k)
    result = fill_mask(loaded, text, top_k=top_k)
    assert len(result.fills) == top_k == len(expected)
    for fill, want in zip(result.fills, expected, strict=True):
        assert (fill.token_id, fill.token_str, fill.sequence) == (want["token"], want["token_str"], want["sequence"])
        assert fill.score == pytest.approx(want["score"], abs=1e-5)
    assert result.mask_token == loaded.tokenizer.mask_token and not result.truncated


def test_json_is_plain(load) -> None:
    result = fill_mask(load("tiny-bert-mlm"), "The cat sat on the [MASK].")
    data = json.loads(json.dumps(result.to_json()))
    assert [f["token"] for f in data["fills"]] == [f.token_id for f in result.fills]
    assert all(type(f["score"]) is float for f in result.to_json()["fills"])
    assert data["mask_token"] == "[MASK]" and len(data["fills"]) == 5


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "tiny-bert-mlm", "This man works as a doctor.",
            "text must contain the mask token [MASK] exactly once, got none.",
        ),
        ("tiny-bert-mlm", "A [MASK] met a [MASK].", "text must contain the mask token [MASK] exactly once, got 2."),
        (
            "tiny-roberta-mlm", "This man works as a [MASK].",
            "text must contain the mask token <mask> exactly once, got none. "
            "[MASK] is another model's mask token; this model's is <mask>.",
        ),
        (
            "tiny-distilbert-mlm", "This man works as a <mask>.",
            "text must contain the mask token [MASK] exactly once, got none. "
            "<mask> is another model's mask token; this model's is [MASK].",
        ),
        ("tiny-bert-mlm", " ", "text must be non-empty text, got ' '."),
    ],
    ids=["none", "two", "bert-spelling-on-roberta", "roberta-spelling-on-distilbert", "empty"],
)
def test_mask_problems_are_input_errors_that_name_the_token(load, name: str, text: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        fill_mask(load(name), text)
    assert str(info.value) == message and info.value.field == "text"


@pytest.mark.parametrize("top_k", [0, -1, 2.5, True, 10**6])
def test_top_k_out_of_range_is_a_parameter_error(load, top_k) -> None:
    loaded = load("tiny-bert-mlm")
    vocab = loaded.model.config.vocab_size
    with pytest.raises(ParameterError) as info:
        fill_mask(loaded, "A [MASK].", top_k=top_k)
    assert str(info.value) == f"top_k must be an integer in [1, {vocab}] (the vocabulary), got {top_k!r}."


@pytest.mark.parametrize("twin", list(Twin), ids=lambda t: t.value)
def test_long_text_is_cut_and_says_so(load, twin: Twin) -> None:
    loaded = load(f"tiny-{twin.value}-mlm-short")
    text = masked(loaded, MAN) + " The weather in New York is cold in winter and hot in summer." * 3
    result = fill_mask(loaded, text)
    assert result.truncated and result.input_tokens == 16 and "to 16 tokens" in result.notes[0]


def test_a_mask_beyond_the_window_is_an_input_error(load) -> None:
    text = "The weather in New York is cold in winter and hot in summer. " * 3 + "A [MASK]."
    with pytest.raises(InputError, match=r"text must have its mask token within the model's window of 16 tokens"):
        fill_mask(load("tiny-bert-mlm-short"), text)


@pytest.mark.parametrize("twin", list(Twin), ids=lambda t: t.value)
def test_bias_probe_compares_the_same_tokens_in_both_sentences(load, twin: Twin) -> None:
    loaded = load(f"tiny-{twin.value}-mlm")
    man, woman = masked(loaded, MAN), masked(loaded, WOMAN)
    probe = bias_probe(loaded, man, woman, top_k=5)
    assert probe.a == fill_mask(loaded, man, 5) and probe.b == fill_mask(loaded, woman, 5)
    union = {f.token_id for f in probe.a.fills} | {f.token_id for f in probe.b.fills}
    assert {r.token_id for r in probe.rows} == union and len(probe.rows) == len(union)
    rows = {r.token_id: r for r in probe.rows}
    for rank, fill in enumerate(probe.a.fills, start=1):
        assert rows[fill.token_id].score_a == pytest.approx(fill.score, abs=1e-7)
        assert rows[fill.token_id].rank_a == rank
    for rank, fill in enumerate(probe.b.fills, start=1):
        assert rows[fill.token_id].score_b == pytest.approx(fill.score, abs=1e-7)
        assert rows[fill.token_id].rank_b == rank
    tops = [max(r.score_a, r.score_b) for r in probe.rows]
    assert tops == sorted(tops, reverse=True)
    assert all(0.0 < r.score_a < 1.0 and 0.0 < r.score_b < 1.0 for r in probe.rows)
    data = json.loads(json.dumps(probe.to_json()))
    assert data["rows"][0]["difference"] == pytest.approx(probe.rows[0].score_a - probe.rows[0].score_b)


def test_bias_probe_names_the_sentence_at_fault(load) -> None:
    with pytest.raises(InputError) as info:
        bias_probe(load("tiny-bert-mlm"), "This man works as a [MASK].", "This woman works as a nurse.")
    assert info.value.field == "text_b" and str(info.value).startswith("text_b must contain the mask token [MASK]")
