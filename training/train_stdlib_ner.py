"""Train the embedded token classifier: exceptions, modules and function calls in sentences of the stdlib docs.

    python -m training.train_stdlib_ner [--base models/stdlib-bert-mlm] [--out models/stdlib-ner]
        [--steps N] [--minutes N]

What it does, step by step:

1. cut the corpus's documents into sentences and label them automatically (:func:`label_words`),
   on the cased text, at the level of the BERT pre-tokenizer's words (split on white space
   and punctuation, the words the ``token-classification`` pipeline aggregates), with BIO tags:

   * ``EXC``  -- a builtin exception class whose name ends in Error, Exception or Warning
     (``ValueError``, ``DeprecationWarning``; from :mod:`builtins`, so ``csv.Error`` is not one);
   * ``FUNC`` -- a (dotted) identifier written directly before ``()``: ``wrap()``,
     ``os.path.join()`` (the parentheses themselves are not part of the entity);
   * ``MOD``  -- a module of :func:`training.corpus.module_names` (or its parent package,
     ``email``, ``xml``...) written as a module: before ``.attribute``, after ``import`` /
     ``from``, before ``module``/``package``, inside ``:mod:`...```. A bare mention does not
     count: most of these names are also words or types ("a string", "the mailbox", "a datetime").

   Priority where spans overlap: FUNC > EXC > MOD (``json.loads()`` is one FUNC);
2. train on sentences of the corpus's training modules (all with an entity, plus a seeded
   third of those without), evaluate on every sentence of the 8 held-out modules;
3. start from the masked LM ``--base`` (train_stdlib_bert.py) with a fresh token-classification
   head; word labels go to the FIRST sub-token of each word, the other sub-tokens get -100
   (ignored by the loss), which is what ``aggregation_strategy="first"`` reads back;
4. fine-tune (AdamW, warmup + cosine, dropout 0.1);
5. measure held-out entity-level F1 (exact span and type, conlleval style) against a
   dictionary-lookup baseline: every entity string seen in the training labels, with its most
   frequent type, matched longest-first in the held-out words. The labels come from rules, so a
   baseline that re-ran the rules would score 100 %: the comparison shows what the model
   generalises beyond memorised names (new functions before "()", context for modules);
6. save model and tokenizer (safetensors) to ``--out``, plus ``training.json`` and README.md.
"""

from __future__ import annotations

import builtins
import os
import random
import re
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import torch

from training import corpus, loop
from training.embedded_common import (
    command_line,
    dropout_kwargs,
    finish_report,
    parse_config,
    STDLIB_DOCS,
    licence_section,
    rebuild_section,
    seed_everything,
    sentences,
    training_parser,
    write_outputs,
)

TYPES = ("EXC", "MOD", "FUNC")
TAGS = ("O",) + tuple(f"{bio}-{t}" for t in TYPES for bio in ("B", "I"))

@lru_cache(maxsize=None)
def builtin_exceptions() -> frozenset[str]:
    return frozenset(
        name for name, obj in vars(builtins).items()
        if isinstance(obj, type) and issubclass(obj, BaseException) and name.endswith(("Error", "Exception", "Warning"))
    )


@lru_cache(maxsize=None)
def module_dictionary() -> frozenset[str]:
    """The corpus's module names and their parent packages."""
    names = set(corpus.module_names())
    for name in list(names):
        parts = name.split(".")
        names.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return frozenset(names)


_IDENT = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_FUNC_RE = re.compile(rf"(?<![\w.])({_IDENT})\(\)")


@lru_cache(maxsize=None)
def _exc_re() -> re.Pattern:
    names = sorted(builtin_exceptions(), key=len, reverse=True)
    return re.compile(r"(?<![\w.])(" + "|".join(names) + r")(?!\w)")


@lru_cache(maxsize=None)
def _mod_re() -> re.Pattern:
    names = sorted(module_dictionary(), key=len, reverse=True)
    return re.compile(r"(?<![\w.])(" + "|".join(re.escape(n) for n in names) + r")(?![\w])")


def _module_context(text: str, start: int, end: int) -> bool:
    """Is the module-name match at text[start:end] written as a module?"""
    before, after = text[:start], text[end:]
    if re.match(r"\.[A-Za-z_]", after):  # json.dumps, string.ascii_letters
        return True
    if re.search(r"\b(import|from)\s+$", before) or re.match(r"\s+(module|package)\b", after):
        return True
    if before.endswith(":mod:`") or (before.endswith("`") and after.startswith("`")):
        return True
    return False  # a bare "string", "random", "mailbox", "datetime" is usually prose or a type


def entity_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, type) character spans of the entities in ``text``, FUNC > EXC > MOD, no overlaps."""
    spans: list[tuple[int, int, str]] = []

    def free(s: int, e: int) -> bool:
        return all(e <= a or s >= b for a, b, _ in spans)

    for m in _FUNC_RE.finditer(text):
        spans.append((m.start(1), m.end(1), "FUNC"))
    for m in _exc_re().finditer(text):
        if free(m.start(1), m.end(1)):
            spans.append((m.start(1), m.end(1), "EXC"))
    for m in _mod_re().finditer(text):
        if free(m.start(1), m.end(1)) and _module_context(text, m.start(1), m.end(1)):
            spans.append((m.start(1), m.end(1), "MOD"))
    return sorted(spans)


@lru_cache(maxsize=1)
def _pre_tokenizer():
    from tokenizers.pre_tokenizers import BertPreTokenizer

    return BertPreTokenizer()


def words_of(text: str) -> list[tuple[str, tuple[int, int]]]:
    """The BERT pre-tokenizer's words with character offsets (white space and punctuation split)."""
    return _pre_tokenizer().pre_tokenize_str(text)


def label_words(text: str) -> tuple[list[str], list[str]]:
    """(words, BIO tags) of one sentence: the automatic labels."""
    words = words_of(text)
    tags = ["O"] * len(words)
    for start, end, kind in entity_spans(text):
        inside = [i for i, (_, (a, b)) in enumerate(words) if a >= start and b <= end]
        for k, i in enumerate(inside):
            tags[i] = ("B-" if k == 0 else "I-") + kind
    return [w for w, _ in words], tags


def labelled_sentences(docs: list[str]) -> list[tuple[list[str], list[str]]]:
    return [label_words(s) for doc in docs for s in sentences(doc)]


# ---------------------------------------------------------------------------
# Entity-level scoring and the dictionary baseline
# ---------------------------------------------------------------------------


def bio_spans(tags: list[str]) -> set[tuple[int, int, str]]:
    """(first word, last word + 1, type) entities from BIO tags; a stray I- starts an entity (conlleval)."""
    spans, start, kind = set(), None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        bio, _, t = tag.partition("-")
        if start is not None and (bio != "I" or t != kind):
            spans.add((start, i, kind))
            start, kind = None, None
        if bio == "B" or (bio == "I" and start is None):
            start, kind = i, t
    return spans


def entity_f1(gold: list[list[str]], pred: list[list[str]]) -> dict:
    """Micro precision/recall/F1 over exact (span, type) matches, overall and per type."""
    counts = defaultdict(lambda: [0, 0, 0])  # tp, n_pred, n_gold
    for g, p in zip(gold, pred):
        gs, ps = bio_spans(g), bio_spans(p)
        for kind in (None,) + TYPES:
            gk = {s for s in gs if kind is None or s[2] == kind}
            pk = {s for s in ps if kind is None or s[2] == kind}
            c = counts[kind or "all"]
            c[0] += len(gk & pk)
            c[1] += len(pk)
            c[2] += len(gk)
    result = {}
    for kind, (tp, n_pred, n_gold) in counts.items():
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        result[kind] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "support": n_gold}
    return result


def build_dictionary(data: list[tuple[list[str], list[str]]]) -> dict[tuple[str, ...], str]:
    """Every entity string (lower-cased words) of the training labels -> its most frequent type."""
    seen: dict[tuple[str, ...], Counter] = defaultdict(Counter)
    for words, tags in data:
        for a, b, kind in bio_spans(tags):
            seen[tuple(w.lower() for w in words[a:b])][kind] += 1
    return {key: c.most_common(1)[0][0] for key, c in seen.items()}


def dictionary_tags(words: list[str], dictionary: dict[tuple[str, ...], str]) -> list[str]:
    """Longest-match dictionary lookup, left to right (case-insensitive, like the uncased model)."""
    longest = max((len(k) for k in dictionary), default=1)
    low = [w.lower() for w in words]
    tags, i = ["O"] * len(words), 0
    while i < len(words):
        for n in range(min(longest, len(words) - i), 0, -1):
            kind = dictionary.get(tuple(low[i : i + n]))
            if kind:
                tags[i : i + n] = [f"B-{kind}"] + [f"I-{kind}"] * (n - 1)
                i += n
                break
        else:
            i += 1
    return tags


# ---------------------------------------------------------------------------
# Model input and prediction
# ---------------------------------------------------------------------------


def encode_words(tokenizer, batch_words: list[list[str]], max_length: int):
    """Tokenise pre-split words; return the encoding and, per row, each word's first sub-token index."""
    enc = tokenizer(batch_words, is_split_into_words=True, truncation=True, max_length=max_length,
                    padding=True, return_tensors="pt")
    firsts = []
    for row in range(len(batch_words)):
        first: dict[int, int] = {}
        for pos, wid in enumerate(enc.word_ids(row)):
            if wid is not None and wid not in first:
                first[wid] = pos
        firsts.append(first)
    return enc, firsts


def label_tensor(batch_tags: list[list[str]], firsts: list[dict[int, int]], width: int) -> torch.Tensor:
    labels = torch.full((len(batch_tags), width), -100, dtype=torch.long)
    for row, (tags, first) in enumerate(zip(batch_tags, firsts)):
        for wid, pos in first.items():
            labels[row, pos] = TAGS.index(tags[wid])
    return labels


@torch.no_grad()
def predict_tags(model, tokenizer, batch_words: list[list[str]], max_length: int = 128, batch: int = 64) -> list[list[str]]:
    """Word tags from each word's first sub-token (words cut off by max_length get O)."""
    model.eval()
    id2label = model.config.id2label
    out: list[list[str]] = []
    for i in range(0, len(batch_words), batch):
        chunk = batch_words[i : i + batch]
        enc, firsts = encode_words(tokenizer, chunk, max_length)
        best = model(**enc).logits.argmax(-1)
        for row, words in enumerate(chunk):
            out.append([id2label[best[row, firsts[row][w]].item()] if w in firsts[row] else "O" for w in range(len(words))])
    return out


# ---------------------------------------------------------------------------
# Config, card, main
# ---------------------------------------------------------------------------


@dataclass
class NERConfig:
    base: str = "models/stdlib-bert-mlm"  # the masked LM whose encoder is fine-tuned
    out: str = "models/stdlib-ner"  # output folder
    seed: int = 1337  # seeds python, numpy (if installed) and torch
    threads: int = 1  # torch intra-op threads; reproducible per thread count (1: see train_stdlib_bert)
    # data
    keep_empty: float = 0.33  # share of training sentences without any entity that is kept
    max_length: int = 128  # tokens per sentence ([CLS]/[SEP] included); sentences are <= 60 words
    # model
    dropout: float = 0.1  # encoder dropout while fine-tuning
    # optimisation
    batch_size: int = 32  # sentences per step
    steps: int = 400  # optimizer steps (~3 epochs); fixed, not timed
    lr: float = 5e-4  # peak learning rate
    min_lr: float = 2e-5  # cosine decays to this
    warmup_steps: int = 30  # linear warmup from 0
    weight_decay: float = 0.01  # AdamW decay on weight matrices
    betas: tuple[float, float] = (0.9, 0.98)  # AdamW betas
    grad_clip: float = 1.0  # clip the global gradient norm
    # bookkeeping
    log_every: int = 40  # print the training loss every N steps
    minutes: float = 0.0  # wall-clock safety cap; 0 = none


SAMPLE_TEXTS = (
    "Use json.dumps() to serialise the object; it raises TypeError for sets.",
    "The shutil module copies files, and copyfile() raises PermissionError if the target is read-only.",
    "Call wait_for_ready() before import asyncio code runs, or a RuntimeWarning is shown.",
)


def model_card(report: dict) -> str:
    c = report["config"]

    def row(name: str, key: str) -> str:
        m, b = report["heldout"][key], report["baseline"][key]
        return f"| {name} | {m['support']} | **{m['f1']:.3f}** ({m['precision']:.2f} / {m['recall']:.2f}) | {b['f1']:.3f} ({b['precision']:.2f} / {b['recall']:.2f}) |"

    rows = "\n".join([row("all entities", "all")] + [row(t, t) for t in TYPES])
    samples = "\n".join(
        f"| {s['text']} | {'; '.join(f'{e[0]} ({e[1]})' for e in s['entities']) or '-'} |" for s in report["samples"]
    )
    how = (
        f"Needs `{c['base']}` (`python -m training.train_stdlib_bert`) first. Seeded everywhere (seed {c['seed']})."
    )
    return f"""# stdlib-ner

A small ModernBERT encoder ({report['params'] / 1e6:.1f} M parameters) that tags names in Python documentation:
`EXC` (builtin exceptions), `MOD` (standard-library modules), `FUNC` (a name written as a call,
`name()`), in BIO tags. It is the masked LM `stdlib-bert-mlm` (same uncased WordPiece tokenizer)
with a fresh token-classification head, fine-tuned on automatically labelled sentences of the
stdlib docs. It ships in the repository, needs no network and loads with
`AutoModelForTokenClassification` / `AutoTokenizer` / `pipeline("token-classification")`
(use `aggregation_strategy="first"`: it was trained on the first sub-token of every word).

**It is a teaching model, and its labels come from rules** (`label_words` in
`training/train_stdlib_ner.py`): builtin exception names ending in Error/Exception/Warning;
identifiers directly before `()`; module names written as modules (before `.attr`, after
`import`/`from`, before "module"/"package", in `:mod:`; a bare "string" or "datetime" is not one).
The tokenizer is uncased and does not see spaces, so `name()` and `name ()` look the same to it.

## Numbers (held-out: every sentence of {', '.join(report['heldout_modules'])})

Entity-level F1 (exact span and type; precision / recall), {report['heldout_sentences']:,} held-out sentences:

| entities | gold | model | dictionary baseline |
|---|---|---|---|
{rows}

The baseline looks up every entity string the training labels contain ({report['dictionary_size']:,}
strings, longest match first, case-insensitive). It is strong on exceptions (a closed list it has
almost entirely seen) and weak where the rules use context: functions it never saw before `()`,
and module names that are also English words. A baseline that re-applied the labelling rules
would score 1.0 by construction; the model is scored against the same rules.

| | |
|---|---|
| parameters | {report['params']:,} |
| training | {report['steps']} steps x {c['batch_size']} sentences (~{report['epochs']:.1f} epochs of {report['train_sentences']:,}: all {report['train_with_entities']:,} with an entity, {c['keep_empty']:.0%} of the rest), {report['seconds']:.0f} s on {c['threads']} CPU threads |
| labels | {', '.join(report['labels'])} (first sub-token of each word; the others -100) |

## Samples (pipeline, aggregation_strategy="first")

| text | entities |
|---|---|
{samples}

{licence_section(STDLIB_DOCS)}{rebuild_section(report, 'train_stdlib_ner.py', how)}"""


def train(cfg: NERConfig, command: str) -> dict:
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    t0 = time.time()
    seed_everything(cfg.seed, cfg.threads)
    out = Path(cfg.out)

    # Steps 1-2: labelled sentences, split by module.
    train_docs, heldout_docs = corpus.split()
    all_train = labelled_sentences(train_docs)
    heldout = labelled_sentences(heldout_docs)
    rng = random.Random(cfg.seed)
    with_entities = [s for s in all_train if any(t != "O" for t in s[1])]
    train_data = [s for s in all_train if any(t != "O" for t in s[1]) or rng.random() < cfg.keep_empty]
    tag_counts = Counter(t for _, tags in train_data for t in tags)
    print(f"sentences: {len(all_train)} train ({len(with_entities)} with entities, {len(train_data)} kept), "
          f"{len(heldout)} held-out; tags {dict(tag_counts)}", flush=True)

    # Step 3: encoder of the masked LM + fresh head.
    tokenizer = AutoTokenizer.from_pretrained(cfg.base)
    model = AutoModelForTokenClassification.from_pretrained(
        cfg.base,
        num_labels=len(TAGS),
        id2label=dict(enumerate(TAGS)),
        label2id={t: i for i, t in enumerate(TAGS)},
        **dropout_kwargs(cfg.base, cfg.dropout),
    )
    params = sum(p.numel() for p in model.parameters())

    # Step 4: fine-tuning.
    gen = torch.Generator().manual_seed(cfg.seed)
    order: list[int] = []

    def batch_at(step: int):
        nonlocal order
        if len(order) < cfg.batch_size:
            order += torch.randperm(len(train_data), generator=gen).tolist()
        idx, order = order[: cfg.batch_size], order[cfg.batch_size :]
        enc, firsts = encode_words(tokenizer, [train_data[i][0] for i in idx], cfg.max_length)
        return enc, label_tensor([train_data[i][1] for i in idx], firsts, enc["input_ids"].shape[1])

    def on_step(info: loop.StepInfo) -> None:
        if info.step % cfg.log_every == 0 or info.step == cfg.steps - 1:
            print(f"step {info.step:5d}  loss {info.loss_ema:.4f}  lr {info.lr:.2e}  {info.seconds:6.0f}s", flush=True)

    result = loop.run(
        model, batch_at, lambda m, batch: m(**batch[0], labels=batch[1]).loss,
        loop.Schedule(steps=cfg.steps, lr=cfg.lr, warmup=cfg.warmup_steps, min_lr=cfg.min_lr, weight_decay=cfg.weight_decay,
                      betas=cfg.betas, grad_clip=cfg.grad_clip, minutes=cfg.minutes, log_every=0),
        on_step=on_step,
    )
    step, stopped_early, train_seconds = result.steps, result.stopped_early, result.seconds

    # Step 5: entity F1 vs the dictionary baseline.
    held_words = [w for w, _ in heldout]
    held_gold = [t for _, t in heldout]
    scores = entity_f1(held_gold, predict_tags(model, tokenizer, held_words, cfg.max_length))
    dictionary = build_dictionary(all_train)
    baseline = entity_f1(held_gold, [dictionary_tags(w, dictionary) for w in held_words])
    print(f"held-out entity F1 {scores['all']['f1']:.3f}; dictionary baseline {baseline['all']['f1']:.3f}", flush=True)
    for kind in TYPES:
        print(f"  {kind:5s} model {scores[kind]} | baseline {baseline[kind]}", flush=True)

    # Step 6: save; samples through the pipeline on the saved folder.
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    ner = pipeline("token-classification", model=str(out), aggregation_strategy="first", device="cpu")
    samples = [
        {"text": t, "entities": [(e["word"], e["entity_group"], round(float(e["score"]), 3)) for e in ner(t)]}
        for t in SAMPLE_TEXTS
    ]
    for s in samples:
        print(f"{s['text']}\n   -> {s['entities']}", flush=True)
    report = {
        "steps": step,
        "stopped_early": stopped_early,
        "epochs": round(step * cfg.batch_size / len(train_data), 2),
        "seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - t0, 1),
        "params": params,
        "labels": list(TAGS),
        "train_sentences": len(train_data),
        "train_with_entities": len(with_entities),
        "heldout_sentences": len(heldout),
        "heldout_modules": corpus.heldout_names(),
        "heldout_f1": scores["all"]["f1"],
        "baseline_f1": baseline["all"]["f1"],
        "heldout": scores,
        "baseline": baseline,
        "dictionary_size": len(dictionary),
        "train_tag_counts": dict(tag_counts),
        "samples": samples,
    }
    finish_report(report, out, command, asdict(cfg))
    write_outputs(out, report, model_card(report))
    return report


def main(argv: list[str] | None = None) -> None:
    defaults = NERConfig()
    parser = training_parser(__doc__, defaults)
    parser.add_argument("--base", default=defaults.base, help="the masked LM folder to start from")
    cfg = parse_config(parser, defaults, argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    train(cfg, command_line("train_stdlib_ner", argv))


if __name__ == "__main__":
    main()
