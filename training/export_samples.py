"""Write the small held-out samples the tests score the shipped models on (tests/data/).

    python -m training.export_samples [--out tests/data] [--n 80]

Each sample is drawn from the very evaluation set its training script scores (same split, same
seed), every k-th item, so a test checks on committed data what the model card reports:

* ``heldout_fr_en.jsonl``: French, English reference, and the word-by-word dictionary baseline's
  translation (the dictionary is built from the training pairs, which the tests do not have);
* ``heldout_synopsis.jsonl``: Debian description and synopsis (the lead baseline is computed by
  the test);
* ``heldout_qa.jsonl``: question, context, answer and its offset (the overlap baseline is computed
  by the test).

Sources and licences are those of the data (training/machine_text.py), written into each file's
first line.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import asdict
from pathlib import Path

from training import corpus, machine_text, qa_data
from training.train_debian_summarizer import SummarizerConfig
from training.train_debian_summarizer import split_pairs as summary_split
from training.train_marian_fr_en import TranslatorConfig, WordDictionary, sample_heldout
from training.train_marian_fr_en import split_pairs as translation_split
from training.train_minilm_qa import QAConfig


def every_kth(items: list, n: int) -> list:
    return items[:: max(1, len(items) // n)][:n]


def write(path: Path, header: dict, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.write(json.dumps(header, ensure_ascii=False) + "\n")
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{path}: {len(rows)} rows")


SAMPLES = ("fr_en", "synopsis", "qa")


def export(out: Path, n: int, only: tuple[str, ...] = SAMPLES) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if "fr_en" in only:
        export_fr_en(out, n)
    if "synopsis" in only:
        export_synopsis(out, n)
    if "qa" in only:
        export_qa(out, n)


def export_fr_en(out: Path, n: int) -> None:
    cfg = TranslatorConfig()
    pairs, heldout, _ = translation_split(cfg)
    dictionary = WordDictionary(pairs)
    sample = every_kth(sample_heldout(heldout, cfg.eval_pairs, cfg.seed), n)
    write(out / "heldout_fr_en.jsonl",
          {"source": machine_text.GETTEXT_LICENCE + "; and " + machine_text.DEBIAN_LICENCE,
           "built_by": "python -m training.export_samples", "split": "training/train_marian_fr_en.py split_pairs"},
          [{"origin": o, "french": fr, "english": en, "dictionary": dictionary.translate(fr)} for o, fr, en in sample])


def export_synopsis(out: Path, n: int) -> None:
    scfg = SummarizerConfig()
    train_pairs, held = summary_split(scfg)
    rng = random.Random(scfg.seed)
    evaluation = sorted(rng.sample(held, min(scfg.eval_pairs, len(held))))
    lead_words = round(sum(len(s.split()) for _, _, s in train_pairs) / len(train_pairs))
    write(out / "heldout_synopsis.jsonl",
          {"source": machine_text.DEBIAN_LICENCE, "built_by": "python -m training.export_samples",
           "lead_words": lead_words, "split": "training/train_debian_summarizer.py split_pairs"},
          [{"package": p, "description": b, "synopsis": s} for p, b, s in every_kth(evaluation, n)])


def export_qa(out: Path, n: int) -> None:
    qcfg = QAConfig()
    names = sorted(set(corpus.extra_module_names()) | set(corpus.module_names()))
    train_examples, heldout_qa = qa_data.build(qcfg.seed, names)
    qrng = random.Random(qcfg.seed)
    debian = [e for e in train_examples if e.source.startswith("debian:")]
    qrng.sample(debian, min(qcfg.debian_examples, len(debian)))  # the training script's draw, so the next one matches
    chosen = sorted(qrng.sample(heldout_qa, min(qcfg.eval_examples, len(heldout_qa))), key=lambda e: e.id)
    write(out / "heldout_qa.jsonl",
          {"source": corpus_licence(), "built_by": "python -m training.export_samples",
           "split": "training/qa_data.py build"},
          [asdict(e) for e in every_kth(chosen, n)])


def corpus_licence() -> str:
    from training.embedded_common import STDLIB_DOCS

    return STDLIB_DOCS + "; " + machine_text.DEBIAN_LICENCE


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tests/data")
    parser.add_argument("--n", type=int, default=80)
    parser.add_argument("--only", nargs="+", choices=SAMPLES, default=list(SAMPLES))
    args = parser.parse_args(argv)
    export(Path(args.out), args.n, tuple(args.only))


if __name__ == "__main__":
    main()
