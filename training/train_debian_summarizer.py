"""Train the embedded summarizer: a small BART that writes a Debian package's one-line synopsis from its description.

    python -m training.train_debian_summarizer [--out models/bart-debian-summarizer] [--steps N] [--minutes N]

Needs Debian's package descriptions in apt's lists:
``apt-get -o Acquire::Languages=en,fr update`` (as root; see training/machine_text.py).

1. pairs: (long description, synopsis) from Debian 12's ``Translation-en``, bodies of 30 words or
   more, one pair per distinct body (``machine_text.synopsis_pairs``). Held out by package family
   (a library with its -dev and -doc packages; the same split as the translator's);
2. a cased SentencePiece-style BPE on the training descriptions and synopses
   (``<s> <pad> </s> <unk> <mask>``, BART's ids);
3. a BART encoder-decoder in mBART's pre-LN layout (transformers' ``MBartForConditionalGeneration``;
   plain post-LN BART collapsed at this size in train_stdlib_summarizer's trials), decoding from
   ``</s>`` as BART does, trained with teacher forcing and label smoothing by training/loop.py;
4. held-out ROUGE-1/2/L (training/metrics.py) of greedy synopses against the lead baseline: the
   description's first sentence cut to the training synopses' mean length in words;
5. saved in fp16 (the figures are measured on the fp16 weights), with training.json and a card.

Same seed + same steps + same thread count + same data gives the same model; ``--minutes`` is a
safety cap only (recorded as ``stopped_early``).
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path


from training import machine_text, metrics, seq2seq
from training.embedded_common import (
    licence_section,
    rebuild_section,
    save_folder,
    script_main,
    seed_everything,
)
BART_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")  # ids 0..4 as in facebook/bart-*


@dataclass(frozen=True)
class SummarizerConfig:
    out: str = "models/bart-debian-summarizer"
    seed: int = 0
    threads: int = 1
    steps: int = 2000
    minutes: float = 0.0
    init: str = ""  # a built folder to train further (its tokenizer and weights); "" = from scratch
    heldout_percent: int = 8
    eval_pairs: int = 800
    vocab_size: int = 8000
    d_model: int = 256
    encoder_layers: int = 3
    decoder_layers: int = 2
    heads: int = 4
    ffn: int = 1024
    max_source: int = 96
    max_target: int = 32
    dropout: float = 0.1
    tokens_per_batch: int = 4000
    lr: float = 7e-4
    warmup: int = 300
    label_smoothing: float = 0.1


_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def lead(body: str, n_words: int) -> str:
    """The lead baseline: the first sentence, cut to ``n_words`` words."""
    return " ".join(_SENTENCE_END_RE.split(body, maxsplit=1)[0].split()[:n_words])


def split_pairs(cfg: SummarizerConfig):
    train, heldout = [], []
    for package, body, synopsis in machine_text.synopsis_pairs():
        side = heldout if machine_text.held_out("package:" + machine_text.package_group(package), cfg.heldout_percent) else train
        side.append((package, body, synopsis))
    return train, heldout


def build_model(tokenizer, cfg: SummarizerConfig):
    from transformers import GenerationConfig, MBartConfig, MBartForConditionalGeneration

    ids = {name: tokenizer.convert_tokens_to_ids(t) for name, t in
           (("bos", "<s>"), ("pad", "<pad>"), ("eos", "</s>"))}
    model = MBartForConditionalGeneration(MBartConfig(
        vocab_size=len(tokenizer), d_model=cfg.d_model,
        encoder_layers=cfg.encoder_layers, decoder_layers=cfg.decoder_layers,
        encoder_attention_heads=cfg.heads, decoder_attention_heads=cfg.heads,
        encoder_ffn_dim=cfg.ffn, decoder_ffn_dim=cfg.ffn, max_position_embeddings=cfg.max_source,
        dropout=cfg.dropout, attention_dropout=0.0, activation_function="gelu", scale_embedding=True,
        bos_token_id=ids["bos"], pad_token_id=ids["pad"], eos_token_id=ids["eos"],
        decoder_start_token_id=ids["eos"], forced_eos_token_id=ids["eos"], tie_word_embeddings=True,
    ))
    model.generation_config = GenerationConfig(
        bos_token_id=ids["bos"], pad_token_id=ids["pad"], eos_token_id=ids["eos"],
        decoder_start_token_id=ids["eos"], forced_eos_token_id=ids["eos"],
        do_sample=False, num_beams=1, max_new_tokens=cfg.max_target,
    )
    return model


def model_card(report: dict) -> str:
    c = report["config"]
    rows = "\n".join(
        f"| {s['description'][:180]}{'...' if len(s['description']) > 180 else ''} | {s['reference']} | {s['model']} | {s['lead']} |"
        for s in report["samples"]
    )
    e, b = report["heldout"], report["lead"]
    how = (f"Seeded everywhere (seed {c['seed']}); the same seed, steps, thread count and data (Debian 12's "
           "descriptions) give the same model.")
    return f"""# bart-debian-summarizer

A {report['params'] / 1e6:.1f} M-parameter BART encoder-decoder ({c['encoder_layers']} + {c['decoder_layers']} layers in
mBART's pre-LN layout, {c['heads']} heads, {c['d_model']} wide, tied embeddings) with its own
{report['vocab_size']}-token cased SentencePiece-style BPE, trained from scratch to write the one-line
synopsis of a Debian package from its long description: headline summarization. It knows software
descriptions; on news or stories it writes package-like headlines. Loads with
`AutoModelForSeq2SeqLM` / `AutoTokenizer` (transformers 5 has no summarization pipeline:
`generate()`); decoding starts from `</s>` as BART's; saved in fp16.

## Data

{report['train_pairs']:,} (description, synopsis) pairs from Debian 12's `Translation-en`: bodies of 30 words
or more, each distinct body once. Held out by package family (a library with its -dev and -doc
packages): {report['heldout_pairs']:,} pairs, of which {report['eval_pairs']} (a seeded sample) are scored.

## Numbers ({report['eval_pairs']} held-out pairs, greedy, fp16 weights)

| | ROUGE-1 | ROUGE-2 | ROUGE-L |
|---|---|---|---|
| this model | **{e['rouge1']:.3f}** | **{e['rouge2']:.3f}** | **{e['rougeL']:.3f}** |
| lead (first sentence, first {report['lead_words']} words) | {b['rouge1']:.3f} | {b['rouge2']:.3f} | {b['rougeL']:.3f} |

ROUGE: F1 over lower-cased `\\w+` tokens, no stemming, averaged over pairs (`training/metrics.py`).
Training: {report['steps']} steps of about {c['tokens_per_batch']} tokens, {report['seconds'] / 60:.0f} minutes on
{c['threads']} CPU thread(s); final training loss {report['final_train_loss']:.3f} (label smoothing {c['label_smoothing']}).

## Samples (held-out)

| description | reference | model | lead |
|---|---|---|---|
{rows}

{seq2seq.runs_line(report)}{licence_section(machine_text.DEBIAN_LICENCE)}{rebuild_section(report, 'train_debian_summarizer.py', how)}"""


def train(cfg: SummarizerConfig, command: str) -> dict:
    t0 = time.time()
    seed_everything(cfg.seed, cfg.threads)
    out = Path(cfg.out)
    train_pairs, heldout = split_pairs(cfg)
    print(f"pairs: train {len(train_pairs):,}, held-out {len(heldout):,}", flush=True)
    first_run = None
    if cfg.init:  # train a built folder further: its tokenizer, its weights
        tokenizer, model, first_run = seq2seq.continued(cfg.init)
    else:
        tokenizer = seq2seq.train_tokenizer([t for _, body, syn in train_pairs for t in (body, syn)], cfg.vocab_size,
                                            cfg.max_source, specials=BART_SPECIALS)
    sources = seq2seq.encode(tokenizer, [body for _, body, _ in train_pairs], cfg.max_source)
    targets = seq2seq.encode(tokenizer, [syn for _, _, syn in train_pairs], cfg.max_target)
    if not cfg.init:
        model = build_model(tokenizer, cfg)
    params = sum(p.numel() for p in model.parameters())
    print(f"vocab {len(tokenizer)}, {params:,} parameters", flush=True)
    rng = random.Random(cfg.seed)
    evaluation = sorted(rng.sample(heldout, min(cfg.eval_pairs, len(heldout))))
    probe = evaluation[:: max(1, len(evaluation) // 48)]

    def evaluate(step: int) -> dict:
        hyp = seq2seq.generate_all(model, tokenizer, [b for _, b, _ in probe], cfg.max_source)
        return {"probe_rouge1": metrics.rouge(hyp, [s for _, _, s in probe])["rouge1"]}

    result = seq2seq.fit(model, tokenizer, sources, targets, cfg, evaluate, eval_every=800)
    bodies = [b for _, b, _ in evaluation]
    references = [s for _, _, s in evaluation]
    hyp = seq2seq.outputs_in_fp16(model, tokenizer, bodies, cfg.max_source)
    lead_words = round(sum(len(s.split()) for _, _, s in train_pairs) / len(train_pairs))
    leads = [lead(b, lead_words) for b in bodies]
    report = {
        "model": "bart-debian-summarizer",
        "params": params,
        "vocab_size": len(tokenizer),
        "train_pairs": len(train_pairs),
        "heldout_pairs": len(heldout),
        "steps": result.steps,
        "seconds": result.seconds,
        "stopped_early": result.stopped_early,
        "final_train_loss": result.final_train_loss,
        "log": result.log,
        **({"first_run": first_run} if first_run else {}),
        "eval_pairs": len(evaluation),
        "heldout": metrics.rouge(hyp, references),
        "lead": metrics.rouge(leads, references),
        "lead_words": lead_words,
        "samples": [
            {"package": p, "description": b, "reference": r, "model": h, "lead": ld}
            for (p, b, r), h, ld in list(zip(evaluation, hyp, leads))[:: max(1, len(evaluation) // 8)][:8]
        ],
        "total_seconds": time.time() - t0,
    }
    return save_folder(out, model, tokenizer, report, command, asdict(cfg), model_card)


def main(argv: list[str] | None = None) -> None:
    script_main(__doc__, SummarizerConfig(), train, 'train_debian_summarizer', argv, ("eval_pairs", "init"))


if __name__ == "__main__":
    main()
