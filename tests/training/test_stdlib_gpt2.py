"""The committed default generator (models/stdlib-gpt2) loads, fits the limits, and has learnt something.

"Learnt something" = its perplexity on held-out stdlib docs (modules that neither
the tokenizer nor the model saw) is well below an add-one-smoothed unigram model
of the train split, measured on the same tokens.
"""

from __future__ import annotations

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
from training.train_stdlib_gpt2 import encode_docs, model_perplexity, unigram_perplexity  # noqa: E402

MODEL_DIR = REPO / "models" / "stdlib-gpt2"
MAX_BYTES = 30 * 1024 * 1024  # hard limit on the committed weights
EVAL_TOKENS = 20_000  # held-out tokens scored (keeps the test to a few seconds)
WINDOW = 512


@pytest.fixture(scope="module")
def tokenizer():
    return transformers.AutoTokenizer.from_pretrained(MODEL_DIR)


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(2)
    return transformers.AutoModelForCausalLM.from_pretrained(MODEL_DIR).eval()


def test_files_and_size():
    weights = MODEL_DIR / "model.safetensors"
    assert weights.exists()
    assert weights.stat().st_size <= MAX_BYTES
    assert not (MODEL_DIR / "pytorch_model.bin").exists()
    for name in ("config.json", "generation_config.json", "tokenizer.json", "training.json", "README.md"):
        assert (MODEL_DIR / name).exists(), name


def test_config(model, tokenizer):
    assert model.config.n_positions >= 512
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.eos_token == "<|endoftext|>"
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    assert model.generation_config.pad_token_id is not None


def test_tokenizer_round_trip(tokenizer):
    text = "Return the number of bytes.\n\n    def f(x):\n        return x  # naïve ünïcode — ok\n"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text


def test_heldout_perplexity_beats_unigram(model, tokenizer):
    train_docs, heldout_docs = corpus.split()
    heldout_ids = encode_docs(tokenizer, heldout_docs)[:EVAL_TOKENS]
    train_ids = encode_docs(tokenizer, train_docs)
    ppl = model_perplexity(model, heldout_ids, WINDOW)
    unigram = unigram_perplexity(train_ids, heldout_ids, len(tokenizer), WINDOW)
    assert ppl < 0.5 * unigram, f"model ppl {ppl:.1f} vs unigram {unigram:.1f}"


def test_greedy_generation_runs(model, tokenizer):
    inputs = tokenizer("Return the", return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
