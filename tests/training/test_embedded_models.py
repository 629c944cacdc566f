"""The embedded encoder and encoder-decoder models under models/ load offline, fit the limits, and
the trained ones beat their baselines on held-out data computed here.

Every folder that models.yaml ships is checked (the scripts in training/ build them).
"Beats its baseline" is measured on a small held-out sample, so each check takes a few seconds:

- stdlib-bert-mlm: masked-token accuracy on held-out windows > always-the-most-frequent-train-token;
- stdlib-topic-classifier: held-out accuracy > always answering the training set's majority topic;
- stdlib-ner: held-out entity F1 > a dictionary of the training labels' entity strings.

The translator, the summarizer and the QA model trained on the machine's own text are scored in
tests/training/test_trained_models.py.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # plain `pytest` (not `python -m pytest`) from anywhere
    sys.path.insert(0, str(REPO))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from training import corpus  # noqa: E402

MODELS = REPO / "models"
TOTAL_LIMIT = 120_000_000  # all committed weights of the repository together (bytes)
UNTRAINED_LINE = "untrained: shows the mechanics, not the answers"

# folder -> (Auto class, byte limit of model.safetensors, trained)
FOLDERS = {
    "stdlib-bert-mlm": ("AutoModelForMaskedLM", 12_000_000, True),
    "stdlib-topic-classifier": ("AutoModelForSequenceClassification", 12_000_000, True),
    "stdlib-ner": ("AutoModelForTokenClassification", 12_000_000, True),
    "marian-fr-en": ("AutoModelForSeq2SeqLM", 20_000_000, True),
    "bart-debian-summarizer": ("AutoModelForSeq2SeqLM", 15_000_000, True),
    "minilm-qa": ("AutoModelForQuestionAnswering", 50_000_000, True),
    "untrained-bert-qa": ("AutoModelForQuestionAnswering", 2_000_000, False),
    "untrained-bert-nli": ("AutoModelForSequenceClassification", 2_000_000, False),
    "untrained-marian-fr-en": ("AutoModelForSeq2SeqLM", 2_000_000, False),
    "untrained-bart-summarizer": ("AutoModelForSeq2SeqLM", 2_500_000, False),
}



def folder_or_skip(name: str) -> Path:
    """A shipped model's folder; a missing one is a failure (every folder here is committed)."""
    folder = MODELS / name
    assert (folder / "config.json").exists(), f"{folder} is missing: rebuild it with its script in training/"
    return folder


def load(name: str):
    folder = folder_or_skip(name)
    torch.set_num_threads(2)
    auto = getattr(transformers, FOLDERS[name][0])
    model = auto.from_pretrained(folder, use_safetensors=True).eval()
    return model, transformers.AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def heldout_docs() -> list[str]:
    return [corpus.render_module(n) for n in corpus.heldout_names()]


@pytest.fixture(scope="module")
def train_docs() -> list[str]:
    return corpus.split()[0]


# ---------------------------------------------------------------------------
# Every folder
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FOLDERS))
def test_files_and_size(name):
    folder = folder_or_skip(name)
    weights = folder / "model.safetensors"
    assert weights.exists()
    assert weights.stat().st_size < FOLDERS[name][1], f"{weights}: {weights.stat().st_size:,} bytes"
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt")), "pickled weights"
    for file in ("config.json", "tokenizer.json", "tokenizer_config.json", "training.json", "README.md"):
        assert (folder / file).exists(), file
    report = json.loads((folder / "training.json").read_text())
    assert report["model_bytes"] == weights.stat().st_size  # training.json describes these weights
    trained = FOLDERS[name][2]
    assert report.get("trained", True) is trained
    readme = (folder / "README.md").read_text()
    assert (UNTRAINED_LINE in readme) is not trained


@pytest.mark.parametrize("name", sorted(FOLDERS))
def test_loads_offline(name):
    model, tokenizer = load(name)
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.pad_token_id is not None
    enc = tokenizer(["Return the number of items."], return_tensors="pt")
    if model.config.is_encoder_decoder:
        out = model.generate(**enc, max_new_tokens=4)
        assert out.shape[0] == 1
    else:
        with torch.no_grad():
            model(**enc)


def test_total_committed_weights_under_limit():
    total = sum(p.stat().st_size for p in MODELS.rglob("*.safetensors"))
    assert total < TOTAL_LIMIT, f"models/**/*.safetensors: {total:,} bytes"


# ---------------------------------------------------------------------------
# Trained models beat their baselines
# ---------------------------------------------------------------------------


def test_bert_mlm_beats_unigram(train_docs, heldout_docs):
    from training.train_stdlib_bert import encode_stream, heldout_batches, masked_accuracy, unigram_accuracy

    model, tokenizer = load("stdlib-bert-mlm")
    inputs, labels = heldout_batches(tokenizer, heldout_docs, 256, seed=7, max_windows=24)
    acc = masked_accuracy(model, inputs, labels)
    base = unigram_accuracy(encode_stream(tokenizer, train_docs), labels, tokenizer.all_special_ids)
    assert acc["masked_tokens"] > 500
    # A weak model (see its README): it beats guessing the most frequent tokens, not by much.
    assert acc["top1"] > base["top1"], (acc, base)
    assert acc["top5"] > base["top5"], (acc, base)


def test_fill_mask_pipeline_gives_words():
    folder = folder_or_skip("stdlib-bert-mlm")
    fill = transformers.pipeline("fill-mask", model=str(folder), device="cpu")
    top = [r["token_str"] for r in fill("Return the [MASK] of the list.", top_k=5)]
    assert sum(t.isalpha() for t in top) >= 2, top  # words among the fills, not only punctuation


def test_classifier_beats_constant_answer():
    from training.train_stdlib_classifier import LABELS, labelled_paragraphs, predict

    model, tokenizer = load("stdlib-topic-classifier")
    assert tuple(model.config.id2label[i] for i in range(len(LABELS))) == LABELS
    rows = labelled_paragraphs(corpus.heldout_names(), cap=25, seed=0)
    gold = [y for _, y, _ in rows]
    preds = predict(model, tokenizer, [t for t, _, _ in rows])
    accuracy = sum(p == g for p, g in zip(preds, gold)) / len(gold)
    # the constant answer a model could know: the most common topic of the training paragraphs
    majority = json.loads((folder_or_skip("stdlib-topic-classifier") / "training.json").read_text())["majority_label"]
    constant = gold.count(majority) / len(gold)
    assert accuracy > constant, (accuracy, constant, majority)


def test_ner_beats_dictionary(train_docs, heldout_docs):
    from training.train_stdlib_ner import (
        build_dictionary,
        dictionary_tags,
        entity_f1,
        labelled_sentences,
        predict_tags,
    )

    model, tokenizer = load("stdlib-ner")
    heldout = labelled_sentences(heldout_docs)
    words, gold = [w for w, _ in heldout], [t for _, t in heldout]
    dictionary = build_dictionary(labelled_sentences(train_docs))
    model_f1 = entity_f1(gold, predict_tags(model, tokenizer, words))["all"]["f1"]
    dict_f1 = entity_f1(gold, [dictionary_tags(w, dictionary) for w in words])["all"]["f1"]
    assert model_f1 > dict_f1, (model_f1, dict_f1)


def test_ner_pipeline_finds_a_call():
    folder = folder_or_skip("stdlib-ner")
    ner = transformers.pipeline("token-classification", model=str(folder), aggregation_strategy="first", device="cpu")
    found = {(e["word"], e["entity_group"]) for e in ner("Call the close() method, or it raises ValueError.")}
    assert ("close", "FUNC") in found, found


def test_every_embedded_model_in_models_yaml_is_tested_here():
    from backend.registry import load_specs

    shipped = {spec.path.name for spec in load_specs(REPO / "models.yaml") if spec.path is not None and MODELS in spec.path.parents}
    assert shipped - {"stdlib-gpt2"} == set(FOLDERS), shipped


@pytest.mark.parametrize(
    "folder, script",
    [
        ("stdlib-gpt2", "train_stdlib_gpt2"),
        ("stdlib-bert-mlm", "train_stdlib_bert"),
        ("stdlib-topic-classifier", "train_stdlib_classifier"),
        ("stdlib-ner", "train_stdlib_ner"),
        ("marian-fr-en", "train_marian_fr_en"),
        ("bart-debian-summarizer", "train_debian_summarizer"),
        ("minilm-qa", "train_minilm_qa"),
    ],
)
def test_model_card_is_what_its_script_writes_from_training_json(folder: str, script: str) -> None:
    """The committed README.md of a trained model is the card its script renders from the
    committed training.json: the card code and the committed figures agree."""
    import importlib

    module = importlib.import_module(f"training.{script}")
    report = json.loads((MODELS / folder / "training.json").read_text(encoding="utf-8"))
    assert module.model_card(report) == (MODELS / folder / "README.md").read_text(encoding="utf-8")


def test_the_project_and_every_embedded_model_name_their_licence() -> None:
    licence = (MODELS.parent / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert "license: apache-2.0" in (MODELS.parent / "README.md").read_text(encoding="utf-8").split("---")[1]
    folders = sorted(p for p in MODELS.iterdir() if (p / "config.json").is_file())
    assert len(folders) == 11
    for folder in folders:
        card = (folder / "README.md").read_text(encoding="utf-8")
        section = card.split("## Data and licence", 1)[1].split("\n## ", 1)[0]
        assert "Training data:" in section and "Apache-2.0" in section, folder.name
        assert any(name in section for name in ("PSF License", "written for this project", "DFSG-free")), folder.name
