"""Train the embedded French-to-English translator: a small Marian on the machine's own French/English text.

    python -m training.train_marian_fr_en [--out models/marian-fr-en] [--steps N] [--minutes N]

Needs Debian's French package descriptions in apt's lists:
``apt-get -o Acquire::Languages=en,fr update`` (as root; see training/machine_text.py).

1. pairs: the gettext catalogues' English/French messages (software messages) and Debian's package
   descriptions with their French translations (synopses, and paragraphs where both sides have as
   many paragraphs); French is the source. Held out by source, never by sentence: whole catalogues
   and whole package groups (a library with its -dev and -doc packages). A training pair whose
   French or English text also occurs in the held-out set is dropped;
2. a shared cased SentencePiece-style BPE (``</s> <unk> <pad>``, as opus-mt) on both languages;
3. a Marian encoder-decoder (the architecture of Helsinki-NLP's opus-mt models; shared, tied
   embeddings), trained with teacher forcing and label smoothing by training/loop.py;
4. held-out BLEU and chrF (sacrebleu) of greedy translations, against a word-by-word dictionary
   baseline built from the same training pairs (each French word becomes the English word with
   the highest Dice coefficient over the pairs; unknown words are copied);
5. saved in fp16 (the held-out figures are measured on the fp16 weights), with training.json and a
   model card.

Same seed + same steps + same thread count + same data gives the same model; ``--minutes`` is a
safety cap only (recorded as ``stopped_early``).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from training import machine_text, seq2seq
from training.embedded_common import (
    licence_section,
    rebuild_section,
    save_folder,
    script_main,
    seed_everything,
    write_outputs,
)


@dataclass(frozen=True)
class TranslatorConfig:
    out: str = "models/marian-fr-en"
    seed: int = 0
    threads: int = 1
    steps: int = 2000
    minutes: float = 0.0
    init: str = ""  # a built folder to train further (its tokenizer and weights); "" = from scratch
    # data
    heldout_percent: int = 8  # of catalogues and of package groups
    max_words: int = 48  # longest English side kept for training
    eval_pairs: int = 600  # held-out pairs scored (a seeded sample of the held-out set)
    # tokenizer and model
    vocab_size: int = 8000
    d_model: int = 256
    layers: int = 3
    heads: int = 4
    ffn: int = 1024
    positions: int = 128
    dropout: float = 0.1
    # optimisation
    tokens_per_batch: int = 3000
    lr: float = 7e-4
    warmup: int = 400
    label_smoothing: float = 0.1
    max_new_tokens: int = 96


def split_pairs(cfg: TranslatorConfig) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]], dict]:
    """(training pairs (fr, en), held-out (origin, fr, en), counts)."""
    train, heldout = [], []
    catalogues = machine_text.gettext_pairs("fr")
    held_catalogues = sorted(c for c in catalogues if machine_text.held_out("catalogue:" + c, cfg.heldout_percent))
    for name, pairs in catalogues.items():
        for en, fr in pairs:
            (heldout.append((f"gettext:{name}", fr, en)) if name in held_catalogues else train.append((fr, en)))
    descriptions = machine_text.description_pairs()
    held_packages = set()
    for package, fr, en in descriptions:
        group = machine_text.package_group(package)
        if machine_text.held_out("package:" + group, cfg.heldout_percent):
            held_packages.add(group)
            heldout.append((f"debian:{package}", fr, en))
        else:
            train.append((fr, en))
    held_texts = {t for _, fr, en in heldout for t in (fr, en)}
    seen: set[tuple[str, str]] = set()
    kept = []
    for fr, en in train:
        if (fr, en) in seen or fr in held_texts or en in held_texts or len(en.split()) > cfg.max_words:
            continue
        seen.add((fr, en))
        kept.append((fr, en))
    held_seen: set[tuple[str, str]] = set()
    unique_held = []
    for origin, fr, en in heldout:
        if (fr, en) not in held_seen:
            held_seen.add((fr, en))
            unique_held.append((origin, fr, en))
    counts = {
        "catalogues": len(catalogues),
        "heldout_catalogues": held_catalogues,
        "heldout_package_groups": len(held_packages),
        "train_pairs": len(kept),
        "heldout_pairs": len(unique_held),
    }
    return kept, unique_held, counts


# ---------------------------------------------------------------------------
# The word-by-word dictionary baseline
# ---------------------------------------------------------------------------

# Format specifiers (%s, %02lx, %1$s) stay whole; French elisions (l', d', qu') are words of their own.
_FRENCH_RE = re.compile(r"%[-#0-9.$]*[a-zA-Z]+|\w+['’]|\w+|[^\w\s]", re.UNICODE)
_ENGLISH_RE = re.compile(r"%[-#0-9.$]*[a-zA-Z]+|\w+(?:'\w+)?|[^\w\s]", re.UNICODE)


def _is_word(token: str) -> bool:
    return token[:1].isalnum() or token[:1] == "_"


class WordDictionary:
    """Each French word -> the English word with the highest Dice coefficient over the training pairs
    (co-occurrence in a pair, counted once per pair; at least two co-occurrences). Only words are
    translated (punctuation, numbers in symbols and format specifiers are copied), and a word the
    dictionary does not know is copied."""

    def __init__(self, pairs: list[tuple[str, str]], max_words: int = 30):
        fr_count: Counter[str] = Counter()
        en_count: Counter[str] = Counter()
        both: defaultdict[str, Counter[str]] = defaultdict(Counter)
        for fr, en in pairs:
            fw = {w.lower() for w in _FRENCH_RE.findall(fr) if _is_word(w)}
            ew = {w.lower() for w in _ENGLISH_RE.findall(en) if _is_word(w)}
            if len(fw) > max_words or len(ew) > max_words:
                continue
            fr_count.update(fw)
            en_count.update(ew)
            for f in fw:
                both[f].update(ew)
        self.table = {}
        for f, counter in both.items():
            best, score = None, 0.0
            for e, c in counter.items():
                if c >= 2:
                    dice = 2 * c / (fr_count[f] + en_count[e])
                    if dice > score:
                        best, score = e, dice
            if best is not None:
                self.table[f] = best

    def translate(self, french: str) -> str:
        out = []
        for w in _FRENCH_RE.findall(french):
            e = self.table.get(w.lower(), w) if _is_word(w) else w
            out.append(e.capitalize() if w[:1].isupper() and not e[:1].isupper() else e)
        return re.sub(r" ([.,;:!?)»])", r"\1", " ".join(out)).replace("( ", "(")


def scores(hypotheses: list[str], references: list[str]) -> dict:
    import sacrebleu

    return {
        "bleu": round(sacrebleu.corpus_bleu(hypotheses, [references]).score, 2),
        "chrf": round(sacrebleu.corpus_chrf(hypotheses, [references]).score, 2),
    }


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


def build_model(tokenizer, cfg: TranslatorConfig):
    from transformers import GenerationConfig, MarianConfig, MarianMTModel

    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    model = MarianMTModel(MarianConfig(
        vocab_size=len(tokenizer), decoder_vocab_size=len(tokenizer), d_model=cfg.d_model,
        encoder_layers=cfg.layers, decoder_layers=cfg.layers,
        encoder_attention_heads=cfg.heads, decoder_attention_heads=cfg.heads,
        encoder_ffn_dim=cfg.ffn, decoder_ffn_dim=cfg.ffn, max_position_embeddings=cfg.positions,
        dropout=cfg.dropout, attention_dropout=0.0, activation_function="swish", scale_embedding=True,
        pad_token_id=pad, eos_token_id=eos, decoder_start_token_id=pad, forced_eos_token_id=eos,
        share_encoder_decoder_embeddings=True, tie_word_embeddings=True,
    ))
    model.generation_config = GenerationConfig(
        pad_token_id=pad, eos_token_id=eos, decoder_start_token_id=pad, forced_eos_token_id=eos,
        bad_words_ids=[[pad]], do_sample=False, num_beams=1, max_new_tokens=cfg.max_new_tokens,
    )
    return model


def sample_heldout(heldout: list[tuple[str, str, str]], n: int, seed: int) -> list[tuple[str, str, str]]:
    import random

    rng = random.Random(seed)
    return sorted(rng.sample(heldout, min(n, len(heldout))))


def model_card(report: dict) -> str:
    c = report["config"]
    rows = "\n".join(f"| {s['french']} | {s['reference']} | {s['model']} | {s['baseline']} |" for s in report["samples"])
    e, b = report["heldout"], report["baseline"]
    how = (f"Seeded everywhere (seed {c['seed']}); the same seed, steps, thread count and data (this machine's "
           "catalogues and Debian 12's descriptions) give the same model.")
    return f"""# marian-fr-en

A {report['params'] / 1e6:.1f} M-parameter Marian encoder-decoder (the architecture of Helsinki-NLP's
opus-mt models: {c['layers']} + {c['layers']} layers, {c['heads']} heads, {c['d_model']} wide, shared tied
embeddings) with its own {report['vocab_size']}-token cased SentencePiece-style BPE over French and English,
trained from scratch to translate **French into English**. It knows the language of software:
program messages and Debian package descriptions. Outside that domain it is weak. Loads with
`AutoModelForSeq2SeqLM` / `AutoTokenizer`; decoding starts from `<pad>` as in opus-mt; saved in fp16.

## Data

{report['counts']['train_pairs']:,} training pairs: the messages of {report['counts']['catalogues']} gettext
catalogues and the French translations of Debian's package descriptions (synopses and paragraphs).
Held out by source, not by sentence: the catalogues {', '.join(report['counts']['heldout_catalogues'])}
and {report['counts']['heldout_package_groups']:,} package families ({report['counts']['heldout_pairs']:,} pairs);
a training pair whose French or English also occurs there was dropped.

## Numbers ({report['eval_pairs']} held-out pairs, greedy, fp16 weights)

| | BLEU | chrF |
|---|---|---|
| this model | **{e['bleu']}** | **{e['chrf']}** |
| word-by-word dictionary (same training pairs) | {b['bleu']} | {b['chrf']} |

BLEU and chrF are sacrebleu's corpus scores with its defaults. Training: {report['steps']} steps of about
{c['tokens_per_batch']} tokens, {report['seconds'] / 60:.0f} minutes on {c['threads']} CPU thread(s); final
training loss {report['final_train_loss']:.3f} (label smoothing {c['label_smoothing']}).

## Samples (held-out)

| French | reference | model | dictionary |
|---|---|---|---|
{rows}

{seq2seq.runs_line(report)}{licence_section(machine_text.GETTEXT_LICENCE + '; and ' + machine_text.DEBIAN_LICENCE)}{rebuild_section(report, 'train_marian_fr_en.py', how)}"""


def held_out_figures(hyp: list[str], evaluation: list[tuple[str, str, str]], dictionary: WordDictionary) -> dict:
    """BLEU and chrF of the model's translations `hyp` and of the dictionary's, overall and by origin."""
    french = [fr for _, fr, _ in evaluation]
    references = [en for _, _, en in evaluation]
    base = [dictionary.translate(f) for f in french]
    return {
        "eval_pairs": len(evaluation),
        "heldout": scores(hyp, references),
        "heldout_by_origin": {
            origin: scores([h for h, (o, _, _) in zip(hyp, evaluation) if o.startswith(origin)],
                           [r for r, (o, _, _) in zip(references, evaluation) if o.startswith(origin)])
            for origin in ("gettext:", "debian:")
        },
        "baseline": scores(base, references),
        "samples": [
            {"french": f, "reference": r, "model": h, "baseline": b}
            for f, r, h, b in list(zip(french, references, hyp, base))[:: max(1, len(french) // 10)][:10]
        ],
    }


def rescore(folder: Path) -> dict:
    """Score a built folder again with this file's evaluation code (the same held-out pairs and
    dictionary as its run), rewriting training.json's figures and the card; the weights stay."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    report = json.loads((folder / "training.json").read_text(encoding="utf-8"))
    cfg = TranslatorConfig(**report["config"])
    pairs, heldout, _ = split_pairs(cfg)
    evaluation = sample_heldout(heldout, cfg.eval_pairs, cfg.seed)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    hyp = seq2seq.generate_all(model, tokenizer, [fr for _, fr, _ in evaluation], cfg.positions)
    report.update(held_out_figures(hyp, evaluation, WordDictionary(pairs)))
    write_outputs(folder, report, model_card(report))
    return report


def train(cfg: TranslatorConfig, command: str) -> dict:
    t0 = time.time()
    seed_everything(cfg.seed, cfg.threads)
    out = Path(cfg.out)
    pairs, heldout, counts = split_pairs(cfg)
    print(f"pairs: { {k: v for k, v in counts.items() if k != 'heldout_catalogues'} }", flush=True)
    first_run = None
    if cfg.init:  # train a built folder further: its tokenizer, its weights
        tokenizer, model, first_run = seq2seq.continued(cfg.init)
    else:
        tokenizer = seq2seq.train_tokenizer([t for p in pairs for t in p], cfg.vocab_size, cfg.positions)
    sources = seq2seq.encode(tokenizer, [fr for fr, _ in pairs], cfg.positions)
    targets = seq2seq.encode(tokenizer, [en for _, en in pairs], cfg.positions)
    if not cfg.init:
        model = build_model(tokenizer, cfg)
    params = sum(p.numel() for p in model.parameters())
    print(f"vocab {len(tokenizer)}, {params:,} parameters, {sum(map(len, sources)) + sum(map(len, targets)):,} tokens", flush=True)
    evaluation = sample_heldout(heldout, cfg.eval_pairs, cfg.seed)
    probe = evaluation[:: max(1, len(evaluation) // 48)]

    def evaluate(step: int) -> dict:
        hyp = seq2seq.generate_all(model, tokenizer, [fr for _, fr, _ in probe], cfg.positions)
        return {"probe_bleu": scores(hyp, [en for _, _, en in probe])["bleu"]}

    result = seq2seq.fit(model, tokenizer, sources, targets, cfg, evaluate, eval_every=1000)
    hyp = seq2seq.outputs_in_fp16(model, tokenizer, [fr for _, fr, _ in evaluation], cfg.positions)
    report = {
        "model": "marian-fr-en",
        "params": params,
        "vocab_size": len(tokenizer),
        "counts": counts,
        "steps": result.steps,
        "seconds": result.seconds,
        "stopped_early": result.stopped_early,
        "final_train_loss": result.final_train_loss,
        "log": result.log,
        **({"first_run": first_run} if first_run else {}),
        **held_out_figures(hyp, evaluation, WordDictionary(pairs)),
        "total_seconds": time.time() - t0,
    }
    return save_folder(out, model, tokenizer, report, command, asdict(cfg), model_card)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--rescore"]:  # python -m training.train_marian_fr_en --rescore models/marian-fr-en
        rescore(Path(args[1]))
        return
    script_main(__doc__, TranslatorConfig(), train, 'train_marian_fr_en', argv, ("eval_pairs", "init"))


if __name__ == "__main__":
    main()
