"""embed(): pooled sentence vectors equal to the feature-extraction pipeline's token vectors pooled."""

from __future__ import annotations

import json
from dataclasses import replace
from types import MappingProxyType

import pytest
import torch
from transformers import pipeline

from backend.errors import InputError, ParameterError
from backend.tasks.feature_extraction import MAX_SENTENCES, Pooling, embed
from tests.tiny_encoders import Twin

SENTENCES = [
    "The cat sat on the mat.",
    "A cat was sitting on the mat while the dog slept by the door.",
    "Stocks fell sharply as the central bank raised interest rates.",
]


def pipeline_pooled(loaded, sentences: list[str], pooling: str) -> torch.Tensor:
    extractor = pipeline("feature-extraction", model=loaded.model, tokenizer=loaded.tokenizer)
    tokens = [torch.tensor(extractor(s)[0]) for s in sentences]  # [tokens, hidden] each
    return torch.stack([t.mean(dim=0) if pooling == "mean" else t[0] for t in tokens])


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize("twin", list(Twin), ids=lambda t: t.value)
def test_matches_the_pipeline_pooled_the_same_way(load, twin: Twin, pooling: str) -> None:
    loaded = load(f"tiny-{twin.value}-base")
    reference = pipeline_pooled(loaded, SENTENCES, pooling)
    result = embed(loaded, SENTENCES, pooling=pooling)
    assert result.pooling is Pooling(pooling) and result.dimension == 32 and result.normalized
    assert list(result.norms) == pytest.approx(reference.norm(dim=-1).tolist(), abs=1e-5)
    unit = torch.nn.functional.normalize(reference, dim=-1)
    assert torch.allclose(torch.tensor(result.vectors), unit, atol=1e-5)
    assert torch.allclose(torch.tensor(result.similarity), unit @ unit.T, atol=1e-5)

    raw = embed(loaded, SENTENCES, pooling=pooling, normalize=False)
    assert torch.allclose(torch.tensor(raw.vectors), reference, atol=1e-5)
    assert torch.allclose(torch.tensor(raw.similarity), torch.tensor(result.similarity), atol=1e-6)


def test_similarity_matrix_is_symmetric_with_ones_on_the_diagonal(load) -> None:
    result = embed(load("tiny-bert-base"), SENTENCES)
    matrix = torch.tensor(result.similarity)
    assert torch.allclose(matrix, matrix.T, atol=1e-6)
    assert torch.allclose(matrix.diagonal(), torch.ones(len(SENTENCES)), atol=1e-5)
    assert all(abs(sum(v * v for v in vector) - 1.0) < 1e-5 for vector in result.vectors)


def test_pooling_defaults_to_the_model_option(load) -> None:
    loaded = load("tiny-bert-base")
    assert embed(loaded, SENTENCES[:1]).pooling is Pooling.MEAN
    cls_model = replace(loaded, spec=replace(loaded.spec, options=MappingProxyType({"pooling": "cls"})))
    assert embed(cls_model, SENTENCES[:1]).pooling is Pooling.CLS


def test_real_minilm_puts_similar_sentences_closer(load) -> None:
    loaded = load("minilm")
    result = embed(loaded, SENTENCES)
    assert result.dimension == 384 and result.pooling is Pooling.MEAN
    cat_cat, cat_stocks = result.similarity[0][1], result.similarity[0][2]
    assert cat_cat > cat_stocks + 0.3
    reference = torch.nn.functional.normalize(pipeline_pooled(loaded, SENTENCES, "mean"), dim=-1)
    assert torch.allclose(torch.tensor(result.vectors), reference, atol=1e-5)


def test_json_is_plain(load) -> None:
    result = embed(load("tiny-roberta-base"), SENTENCES[:2])
    data = json.loads(json.dumps(result.to_json()))
    assert data["dimension"] == 32 and len(data["vectors"]) == 2 and len(data["similarity"]) == 2
    assert all(type(v) is float for v in result.to_json()["vectors"][0])
    assert data["tokens"] == list(result.tokens) and data["input_tokens"] == sum(result.tokens)


@pytest.mark.parametrize(
    ("sentences", "error", "message"),
    [
        ([], InputError, "sentences must contain at least one sentence, got none."),
        (["fine", "  "], InputError, "sentences[1] must be non-empty text, got '  '."),
        ("one string", ParameterError, "sentences must be a list of strings, got 'one string'."),
        (["x"] * (MAX_SENTENCES + 1), ParameterError, f"sentences must be at most {MAX_SENTENCES} sentences"),
    ],
    ids=["none", "blank", "string", "too-many"],
)
def test_bad_sentences(load, sentences, error, message) -> None:
    with pytest.raises(error) as info:
        embed(load("tiny-bert-base"), sentences)
    assert str(info.value).startswith(message)


def test_unknown_pooling_is_a_parameter_error(load) -> None:
    with pytest.raises(ParameterError, match=r"^pooling must be one of mean, cls, got 'max'\.$"):
        embed(load("tiny-bert-base"), SENTENCES, pooling="max")


def test_long_sentences_are_cut_and_each_cut_is_noted(load) -> None:
    long = " ".join(SENTENCES * 3)
    result = embed(load("tiny-distilbert-base-short"), ["short one", long, long])
    assert result.tokens[1] == result.tokens[2] == 16 and result.tokens[0] < 16
    assert [note.split(" cut")[0] for note in result.notes] == ["sentences[1]", "sentences[2]"]
