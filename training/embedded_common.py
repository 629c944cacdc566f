"""Helpers shared by the scripts that build the embedded encoder and encoder-decoder models.

Used by ``train_stdlib_bert``, ``train_stdlib_classifier``,
``train_stdlib_ner`` and ``build_untrained``:

* :func:`seed_everything` -- python/numpy/torch seeds, thread count, deterministic kernels;
* :func:`train_wordpiece` -- the uncased BERT WordPiece tokenizer, trained on given texts;
* :func:`dropout_kwargs` -- the config overrides that set an encoder's dropout (BERT or ModernBERT);
* :func:`paragraphs` / :func:`sentences` -- prose units cut out of a rendered corpus document;
* :func:`write_outputs` -- ``training.json`` and ``README.md`` next to the weights;
* :func:`finish_report` -- the bookkeeping fields every ``training.json`` carries.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

WORDPIECE_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4, BERT's order of use


def seed_everything(seed: int, threads: int) -> None:
    """Seed every RNG we touch, pin the thread count and ask for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def train_wordpiece(texts: Iterable[str], vocab_size: int, min_frequency: int, max_length: int):
    """An uncased BERT WordPiece tokenizer ([PAD] [UNK] [CLS] [SEP] [MASK], "##" sub-words).

    Trained with the ``tokenizers`` library (BERT normaliser: lower-case, accents stripped;
    BERT pre-tokeniser: split on whitespace and punctuation), then handed to transformers'
    ``BertTokenizer`` so that the saved folder reads back as a regular BERT tokenizer.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizer

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(WORDPIECE_SPECIALS),
        continuing_subword_prefix="##",
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return BertTokenizer(vocab=tok.get_vocab(), do_lower_case=True, model_max_length=max_length)


def dropout_kwargs(model_folder: str, p: float) -> dict:
    """Config overrides that set every dropout of the encoder in ``model_folder`` to ``p``."""
    config = json.loads((Path(model_folder) / "config.json").read_text())
    if config["model_type"] == "modernbert":
        return {"embedding_dropout": p, "mlp_dropout": p, "attention_dropout": p, "classifier_dropout": p}
    return {"hidden_dropout_prob": p, "attention_probs_dropout_prob": p}


# ---------------------------------------------------------------------------
# Prose units of a rendered document
# ---------------------------------------------------------------------------

# A line that is code or a signature rather than prose: ">>> x", "f(a, b)", "name = value", "...".
_CODE_LINE_RE = re.compile(r"^\s*(>>>|\.\.\.|[\w.]+\(.*\)\s*(->.*)?$|[\w.]+ = |class \w)")
# A sentence ends at . ! or ? followed by white space and an upper-case letter or a quote.
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'`(*])")


def paragraphs(doc: str, min_words: int = 12, max_words: int = 200) -> Iterator[str]:
    """Blank-line separated blocks of prose, whitespace collapsed (code and signature lines dropped)."""
    for block in re.split(r"\n\s*\n", doc):
        lines = [line for line in block.splitlines() if line.strip() and not _CODE_LINE_RE.match(line)]
        text = " ".join(" ".join(lines).split())
        if min_words <= len(text.split()) <= max_words:
            yield text


def sentences(doc: str, min_words: int = 4, max_words: int = 60) -> Iterator[str]:
    """Sentences of the document's prose paragraphs (and its one-line docstrings)."""
    for paragraph in paragraphs(doc, min_words=min_words, max_words=10_000):
        for sentence in _SENTENCE_END_RE.split(paragraph):
            if min_words <= len(sentence.split()) <= max_words:
                yield sentence


# ---------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------


def finish_report(report: dict, out: Path, command: str, config: dict) -> dict:
    """Add the fields every training.json carries (sizes, versions, command, config)."""
    import transformers

    weights = out / "model.safetensors"
    report.update(
        model_bytes=weights.stat().st_size,
        command=command,
        python=sys.version,
        torch=torch.__version__,
        transformers=transformers.__version__,
        config=config,
    )
    return report


#: Where the embedded models' text comes from, and under which licence.
STDLIB_DOCS = (
    "the documentation of the Python standard library, read with `pydoc` from the docstrings of the "
    "modules installed with the Python that ran the script (CPython 3.11 here); © Python Software "
    "Foundation, under the PSF License Agreement (https://docs.python.org/3/license.html), which allows "
    "derived works"
)


def licence_section(data: str) -> str:
    """A model card's "Data and licence" section: where its training text comes from, its licence,
    and the licence of the weights (the repository's)."""
    return (
        "## Data and licence\n\n"
        f"- Training data: {data}.\n"
        "- The weights, the tokenizer and the code that built them: Apache-2.0, as the whole repository "
        "(`LICENSE`).\n\n"
    )


def rebuild_section(report: dict, script: str, how: str) -> str:
    """A model card's last section: the command that built the model, what a rebuild needs to
    give the same model (`how`), and where the configuration and the code are."""
    return (
        f"## Rebuild\n\n```\n{report['command']}\n```\n\n{how}\n"
        f"See `training.json` for the full configuration and `training/{script}` for the code.\n"
    )


def write_outputs(out: Path, report: dict, card: str) -> None:
    """Write training.json and README.md; refuse a folder that holds pickled weights."""
    assert (out / "model.safetensors").exists(), "save_pretrained did not write model.safetensors"
    assert not list(out.glob("*.bin")), "pickled weights in the output folder"
    (out / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "README.md").write_text(card)
    print(json.dumps({k: v for k, v in report.items() if k != "config"}, indent=2), flush=True)


def training_parser(doc: str, defaults: object) -> argparse.ArgumentParser:
    """The options every training script has (--out, --steps, --minutes, --seed), defaulting to
    `defaults` (the script's config); a script adds its own, named like its config's fields."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--out", default=defaults.out, help="output folder")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="optimizer steps")
    parser.add_argument("--minutes", type=float, default=defaults.minutes, help="wall-clock safety cap (0 = none)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    return parser


def parse_config(parser: argparse.ArgumentParser, defaults, argv: list[str] | None):
    """`defaults` with the options of the command line put in (each option names a field)."""
    return dataclasses.replace(defaults, **vars(parser.parse_args(argv)))


def command_line(module: str, argv: list[str] | None) -> str:
    """The command that reproduces this run."""
    used = sys.argv[1:] if argv is None else argv
    return " ".join([f"python -m training.{module}", *used])


def save_folder(out: Path, model, tokenizer, report: dict, command: str, config: dict, card) -> dict:
    """Save the weights and the tokenizer to ``out``, complete the report (sizes, versions,
    command, config), and write training.json and the card rendered by ``card(report)``."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # a batched call leaves padding and truncation on; tokenizer.json keeps neither
        backend.no_padding()
        backend.no_truncation()
    tokenizer.save_pretrained(out)
    finish_report(report, out, command, config)
    write_outputs(out, report, card(report))
    return report


def script_main(doc: str, defaults, train, module: str, argv: list[str] | None, options: tuple[str, ...] = ()) -> dict:
    """A training script's command line: --out, --steps, --minutes, --seed, --threads and the
    config fields named in ``options`` (``eval_pairs`` becomes ``--eval-pairs``); then
    ``train(cfg, command)``, the command being the line that reproduces the run."""
    import os

    parser = training_parser(doc, defaults)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    for name in options:
        default = getattr(defaults, name)
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=type(default), default=default)
    cfg = parse_config(parser, defaults, argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return train(cfg, command_line(module, argv))
