"""Twins of the Hub checkpoints' architectures that the other tests do not already build:
LLaMA (SmolLM2) for text generation, and BART with a sequence-classification head
(bart-large-mnli) for zero-shot NLI. Each goes through the real loading code and its task path
and is checked against transformers' own reference on the same model."""

from __future__ import annotations

import threading

import pytest
import torch
from transformers import BartConfig, BartForSequenceClassification, pipeline

from backend.generation import GenerationDone, GenerationEngine
from backend.params import DecodingParams
from backend.registry import Family, ModelRegistry, ModelSpec, Task
from backend.tasks.zero_shot import zero_shot
from tests.tiny_models import build_tiny_llama
from tests.tiny_seq2seq import bart_tokenizer


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    root = tmp_path_factory.mktemp("twins")
    build_tiny_llama(root / "llama")
    torch.manual_seed(0)
    bart_tok = bart_tokenizer()
    nli = BartForSequenceClassification(
        BartConfig(
            vocab_size=len(bart_tok), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
            decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
            pad_token_id=bart_tok.pad_token_id, bos_token_id=bart_tok.bos_token_id, eos_token_id=bart_tok.eos_token_id,
            num_labels=3, id2label={0: "contradiction", 1: "neutral", 2: "entailment"},
            label2id={"contradiction": 0, "neutral": 1, "entailment": 2},
        )
    )
    nli.save_pretrained(root / "bart-nli")
    bart_tok.save_pretrained(root / "bart-nli")
    specs = (
        ModelSpec("llama", Task.TEXT_GENERATION, Family.DECODER, "tiny LLaMA", 128, path=root / "llama"),
        ModelSpec("bart-nli", Task.ZERO_SHOT_CLASSIFICATION, Family.ENCODER_DECODER, "tiny BART NLI", 64, path=root / "bart-nli"),
    )
    return ModelRegistry(specs, max_loaded=2, device="cpu", offline=True)


def test_llama_greedy_and_sampling_equal_model_generate(registry: ModelRegistry) -> None:
    loaded = registry.get("llama")
    engine = GenerationEngine()
    inputs = loaded.tokenizer("Return the number of", return_tensors="pt")
    n = inputs["input_ids"].shape[1]
    for params, kwargs in (
        (DecodingParams(max_new_tokens=12), {"do_sample": False}),
        (DecodingParams(max_new_tokens=12, temperature=0.8, top_k=20, seed=5), {"do_sample": True, "temperature": 0.8, "top_k": 20}),
    ):
        done = list(engine.stream(loaded, "Return the number of", params, threading.Event()))[-1]
        assert isinstance(done, GenerationDone)
        torch.manual_seed(5)
        ref = loaded.model.generate(**inputs, max_new_tokens=12, pad_token_id=loaded.tokenizer.eos_token_id, **kwargs)
        assert list(done.result.sequences[0].token_ids) == ref[0, n:].tolist()
        assert len(done.result.steps) == 12


def test_bart_nli_zero_shot_equals_the_pipeline(registry: ModelRegistry) -> None:
    loaded = registry.get("bart-nli")
    text, labels = "The striker scored twice in the final minutes.", ["sports", "politics", "cooking"]
    expected = pipeline("zero-shot-classification", model=loaded.model, tokenizer=loaded.tokenizer)(text, candidate_labels=labels)
    result = zero_shot(loaded, text, labels)
    assert [s.label for s in result.scores] == expected["labels"]
    assert [s.score for s in result.scores] == pytest.approx(expected["scores"], abs=1e-5)
