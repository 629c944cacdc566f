"""Train the embedded fill-mask model: a small BERT-family masked LM (ModernBERT) on the stdlib docs.

    python -m training.train_stdlib_bert [--out models/stdlib-bert-mlm] [--steps N] [--minutes N]

What it does, step by step:

1. render the corpus (:mod:`training.corpus`): ~120 stdlib modules to train on,
   8 held-out modules that neither the tokenizer nor the model ever sees;
2. train an uncased WordPiece tokenizer (6000 tokens; [PAD] [UNK] [CLS] [SEP] [MASK],
   "##" sub-words) on the train split, saved as a regular ``BertTokenizer``;
3. build a ModernBERT encoder (4 layers, 4 heads, 128 wide, rotary positions, 256 tokens;
   ~1.6 M parameters, ~6.6 MB in fp32; output embeddings tied to the input ones) from
   scratch. Why ModernBERT and not the original BERT: with BERT's learned absolute position
   embeddings this budget (a few million tokens on one CPU core) leaves the model blind to
   word order -- it predicts from the bag of context words ("Return the [MASK] of the list."
   -> ".", "the"; 6.4 % held-out top-1 after 4000 steps against 4.5 % for the unigram
   baseline). Rotary position embeddings make "look at the neighbours" easy to learn: the
   same budget reaches ~20 % top-1 after 1000 steps. Same tokenizer, same heads, same
   pipelines (fill-mask, text and token classification);
4. train it on masked language modelling: random windows of the train docs, 15 % of
   the tokens chosen, of which 80 % become [MASK], 10 % a random token, 10 % stay;
   the loss is computed on the chosen tokens only. Most steps use 128-token windows,
   the last ``long_fraction`` of them 256-token windows (half as many), BERT's own
   two-phase recipe, so that full-length inputs are seen too;
5. measure held-out masked-token accuracy (15 % of the held-out tokens, each replaced
   by [MASK], a fixed seed) against a unigram baseline that always answers the most
   frequent train token, on the same positions; top-5 accuracy likewise;
6. save model and tokenizer (safetensors) to ``--out``, plus ``training.json`` and a
   ``README.md`` model card.

Same seed + same steps + same thread count + same Python (the corpus is the installed
Python's docs) gives the same training run, with one caveat: the ``tokenizers`` WordPiece trainer
breaks ties between equally frequent pieces in hash-map order, so a rebuilt vocabulary differs
in a handful of rare pieces (7 of 6000 in one check) and the ids after them shift; the figures
reproduce within noise, not bit for bit. ``--minutes`` is only a safety cap (recorded as
``stopped_early``). The classifier and NER scripts fine-tune this model.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from training import corpus, loop
from training.embedded_common import (
    command_line,
    finish_report,
    parse_config,
    STDLIB_DOCS,
    licence_section,
    rebuild_section,
    seed_everything,
    train_wordpiece,
    training_parser,
    write_outputs,
)


@dataclass
class MLMConfig:
    out: str = "models/stdlib-bert-mlm"  # output folder (relative to the current directory)
    seed: int = 1337  # seeds python, numpy (if installed) and torch
    threads: int = 1  # torch intra-op threads; reproducible per thread count. 1: on a shared 2-core
    # machine two OpenMP threads stall whenever another process takes a core (3x slower here)
    # tokenizer
    vocab_size: int = 6000  # WordPiece vocabulary including the 5 special tokens
    min_frequency: int = 2  # a piece must occur at least this often in the train split
    # model (BERT architecture, trained from scratch)
    hidden_size: int = 128  # width
    num_layers: int = 4  # transformer blocks
    num_heads: int = 4  # attention heads (32 dims each)
    intermediate_size: int = 384  # feed-forward width (gated: the input projection is 2 x 384 wide)
    max_position: int = 256  # positions; also the tokenizer's model_max_length
    dropout: float = 0.0  # embedding/MLP/attention dropout during MLM; off: a few epochs still underfit
    global_every: int = 2  # every Nth layer attends globally, the others in a local_window window
    local_window: int = 128  # width of the sliding-window attention (ModernBERT's default)
    # masking
    mask_prob: float = 0.15  # share of tokens the model must predict
    # optimisation
    block_size: int = 128  # tokens per window in phase 1, [CLS] and [SEP] included
    batch_size: int = 8  # windows per step in phase 1 (1024 tokens): many small steps beat few big ones here
    long_fraction: float = 0.15  # last share of steps on max_position windows, batch halved
    steps: int = 4000  # optimizer steps (~4.1 M tokens, ~15 epochs, ~9 min on one core); fixed, not timed
    lr: float = 7e-4  # peak learning rate
    min_lr: float = 1e-4  # cosine decays to this
    warmup_steps: int = 200  # linear warmup from 0
    weight_decay: float = 0.01  # AdamW decay on weight matrices
    betas: tuple[float, float] = (0.9, 0.98)  # AdamW betas
    grad_clip: float = 1.0  # clip the global gradient norm
    # evaluation and bookkeeping
    eval_seed: int = 2024  # which held-out positions are masked (fixed across runs and tests)
    log_every: int = 200  # print the training loss every N steps
    eval_every: int = 1000  # print held-out accuracy every N steps (does not steer training)
    minutes: float = 0.0  # wall-clock safety cap; 0 = none


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def encode_stream(tokenizer, docs: list[str]) -> torch.Tensor:
    """Token ids of the docs joined as doc [SEP] doc [SEP] ... (1-D int64, no [CLS])."""
    sep = tokenizer.sep_token_id
    ids: list[int] = []
    for encoding in tokenizer.backend_tokenizer.encode_batch(docs, add_special_tokens=False):
        ids.extend(encoding.ids)
        ids.append(sep)
    return torch.tensor(ids, dtype=torch.long)


def random_windows(stream: torch.Tensor, size: int, count: int, cls_id: int, sep_id: int, gen) -> torch.Tensor:
    """``count`` random windows of ``size`` tokens: [CLS] + size-2 stream tokens + [SEP]."""
    starts = torch.randint(0, len(stream) - size + 2, (count,), generator=gen)
    body = torch.stack([stream[s : s + size - 2] for s in starts.tolist()])
    cls = torch.full((count, 1), cls_id, dtype=torch.long)
    sep = torch.full((count, 1), sep_id, dtype=torch.long)
    return torch.cat([cls, body, sep], dim=1)


def tiled_windows(stream: torch.Tensor, size: int, cls_id: int, sep_id: int) -> torch.Tensor:
    """The stream cut into consecutive windows of ``size`` ([CLS] ... [SEP]); a short tail is dropped."""
    body = size - 2
    n = len(stream) // body
    rows = stream[: n * body].view(n, body)
    cls = torch.full((n, 1), cls_id, dtype=torch.long)
    sep = torch.full((n, 1), sep_id, dtype=torch.long)
    return torch.cat([cls, rows, sep], dim=1)


def mask_tokens(ids: torch.Tensor, tokenizer, prob: float, gen, *, corrupt: bool = True):
    """BERT's masking: (inputs, labels). Labels are -100 except at the chosen positions.

    ``corrupt=True``: chosen tokens become [MASK] 80 %, a random non-special token 10 %,
    themselves 10 %. ``corrupt=False`` (evaluation): every chosen token becomes [MASK].
    Special tokens are never chosen.
    """
    special = torch.zeros_like(ids, dtype=torch.bool)
    for sid in tokenizer.all_special_ids:
        special |= ids == sid
    chosen = (torch.rand(ids.shape, generator=gen) < prob) & ~special
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    inputs = ids.clone()
    if not corrupt:
        inputs[chosen] = tokenizer.mask_token_id
        return inputs, labels
    roll = torch.rand(ids.shape, generator=gen)
    inputs[chosen & (roll < 0.8)] = tokenizer.mask_token_id
    n_special = len(tokenizer.all_special_ids)  # the specials are ids 0..4
    random_ids = torch.randint(n_special, len(tokenizer), ids.shape, generator=gen)
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[swap] = random_ids[swap]
    return inputs, labels


def masked_lm_loss(model, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the chosen positions only (the vocabulary projection skips the rest)."""
    chosen = labels != -100
    return torch.nn.functional.cross_entropy(mlm_logits(model, inputs, chosen), labels[chosen])


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------


def heldout_batches(tokenizer, docs: list[str], size: int, seed: int, max_windows: int | None = None):
    """The held-out docs as fixed windows, 15 % of tokens replaced by [MASK] with a fixed seed."""
    stream = encode_stream(tokenizer, docs)
    windows = tiled_windows(stream, size, tokenizer.cls_token_id, tokenizer.sep_token_id)
    if max_windows is not None:
        windows = windows[:max_windows]
    gen = torch.Generator().manual_seed(seed)
    return mask_tokens(windows, tokenizer, 0.15, gen, corrupt=False)


@torch.no_grad()
def masked_accuracy(model, inputs: torch.Tensor, labels: torch.Tensor, batch: int = 32) -> dict:
    """Top-1 and top-5 accuracy of the model at the masked positions."""
    model.eval()
    top1 = top5 = n = 0
    for i in range(0, len(inputs), batch):
        x, y = inputs[i : i + batch], labels[i : i + batch]
        chosen = y != -100
        best = mlm_logits(model, x, chosen).topk(5, dim=-1).indices
        gold = y[chosen]
        top1 += (best[:, 0] == gold).sum().item()
        top5 += (best == gold[:, None]).any(dim=-1).sum().item()
        n += len(gold)
    return {"top1": top1 / n, "top5": top5 / n, "masked_tokens": n}


def unigram_accuracy(train_stream: torch.Tensor, labels: torch.Tensor, special_ids: list[int]) -> dict:
    """Always answer the most frequent train tokens (specials excluded): top-1 and top-5 accuracy."""
    counts = Counter(train_stream.tolist())
    for sid in special_ids:
        counts.pop(sid, None)
    ranked = [tok for tok, _ in counts.most_common(5)]
    gold = labels[labels != -100]
    top1 = (gold == ranked[0]).float().mean().item()
    top5 = torch.isin(gold, torch.tensor(ranked)).float().mean().item()
    return {"top1": top1, "top5": top5, "tokens": ranked}


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


def build_model(tokenizer, cfg: MLMConfig):
    """A fresh ModernBertForMaskedLM sized by cfg (decoder tied to the word embeddings)."""
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    layer_types = ["full_attention" if i % cfg.global_every == 0 else "sliding_attention" for i in range(cfg.num_layers)]
    config = ModernBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position,
        layer_types=layer_types,
        local_attention=cfg.local_window,
        embedding_dropout=cfg.dropout,
        mlp_dropout=cfg.dropout,
        attention_dropout=cfg.dropout,
        pad_token_id=tokenizer.pad_token_id,
        cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        tie_word_embeddings=True,
    )
    return ModernBertForMaskedLM(config)


def mlm_logits(model, inputs: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Vocabulary logits at the chosen positions only (the projection skips the others)."""
    hidden = model.model(input_ids=inputs, attention_mask=torch.ones_like(inputs)).last_hidden_state
    return model.decoder(model.head(hidden[chosen]))


def model_card(report: dict) -> str:
    c = report["config"]
    samples = "\n".join(
        f"| `{s['text']}` | {', '.join(f'{t} ({p:.2f})' for t, p in s['top'])} |" for s in report["samples"]
    )
    how = (
        f"Seeded everywhere (seed {c['seed']}); the same seed, steps, thread count and Python version\n"
        f"({report['python'].split()[0]}, whose docs are the corpus) give the same model."
    )
    return f"""# stdlib-bert-mlm

A {report['params'] / 1e6:.1f} M-parameter ModernBERT encoder ({c['num_layers']} layers, {c['num_heads']} heads,
{c['hidden_size']} wide, rotary positions, {c['max_position']} tokens) with its own uncased {report['vocab_size']}-token
WordPiece tokenizer ([CLS] [SEP] [PAD] [UNK] [MASK], "##" sub-words), trained from scratch by
masked language modelling on the Python standard library's documentation (`pydoc` text of
{report['train_modules']} stdlib modules, {report['train_tokens']:,} tokens).
It is the project's embedded fill-mask model: it ships in the repository, needs no network and
loads with `AutoModelForMaskedLM` / `AutoTokenizer` / `pipeline("fill-mask")`. The topic
classifier and the NER model are fine-tuned from it, and the untrained QA/NLI models reuse its
tokenizer.

Why ModernBERT rather than the original BERT architecture: trained the same way on this budget, a
BERT with learned absolute position embeddings stayed blind to word order (it filled
"Return the [MASK] of the list." with "." and "the"; 6.4 % held-out top-1 against 4.5 % for the
unigram baseline after 4000 steps). ModernBERT's rotary positions let a small model learn to read
its neighbours within the first thousand steps. Tokenizer, heads and pipelines are BERT's.

**It is a teaching model.** It knows the vocabulary of docstrings ("Return the [MASK] of the
list." -> number, length, ...), nothing else.

## Numbers

| | |
|---|---|
| parameters | {report['params']:,} |
| training | {report['steps']} steps ({c['batch_size']} x {c['block_size']} tokens, the last {c['long_fraction']:.0%} {c['batch_size'] // 2} x {c['max_position']}), {report['tokens_seen']:,} tokens, {report['seconds']:.0f} s on {c['threads']} CPU threads |
| masking | {c['mask_prob']:.0%} of tokens; 80 % [MASK], 10 % random, 10 % unchanged; loss on those only |
| final training loss | {report['final_train_loss']:.3f} |
| held-out masked-token accuracy | **{report['heldout_top1']:.1%}** top-1, {report['heldout_top5']:.1%} top-5 ({report['heldout_masked_tokens']:,} masked tokens of {', '.join(report['heldout_modules'])}) |
| unigram baseline | {report['unigram_top1']:.1%} top-1, {report['unigram_top5']:.1%} top-5 (always the most frequent train tokens: {', '.join(report['unigram_tokens'])}) |

Held-out evaluation: the held-out modules cut into {c['max_position']}-token windows, 15 % of the
tokens (a fixed seed) replaced by [MASK]; the held-out modules were used neither for the
tokenizer nor for the model.

## Samples (top-3 of the fill-mask pipeline)

| input | predictions |
|---|---|
{samples}

{licence_section(STDLIB_DOCS)}{rebuild_section(report, 'train_stdlib_bert.py', how)}"""


SAMPLE_INPUTS = (
    "Return the [MASK] of the list.",
    "Raise a [MASK] if the file does not exist.",
    "The [MASK] argument is a string.",
    "Open the file and [MASK] its contents.",
)


def fill_mask_samples(out: Path) -> list[dict]:
    """The fill-mask pipeline on the saved folder (it also proves the folder loads)."""
    from transformers import pipeline

    fill = pipeline("fill-mask", model=str(out), device="cpu")
    return [
        {"text": text, "top": [(r["token_str"], round(float(r["score"]), 4)) for r in fill(text, top_k=3)]}
        for text in SAMPLE_INPUTS
    ]


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def train(cfg: MLMConfig, command: str) -> dict:
    t0 = time.time()
    seed_everything(cfg.seed, cfg.threads)
    out = Path(cfg.out)

    # Step 1: the corpus.
    train_docs, heldout_docs = corpus.split()
    print(f"corpus: {len(train_docs)} train docs, {len(heldout_docs)} held-out docs", flush=True)

    # Step 2: the tokenizer, on the train split only.
    tokenizer = train_wordpiece(train_docs, cfg.vocab_size, cfg.min_frequency, cfg.max_position)
    train_stream = encode_stream(tokenizer, train_docs)
    eval_inputs, eval_labels = heldout_batches(tokenizer, heldout_docs, cfg.max_position, cfg.eval_seed)
    print(f"tokens: {len(train_stream):,} train; held-out {eval_inputs.numel():,} "
          f"({(eval_labels != -100).sum().item():,} masked); vocab {len(tokenizer)}", flush=True)

    # Step 3: the model.
    model = build_model(tokenizer, cfg)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params:,} parameters", flush=True)

    # Step 4: masked language modelling (training/loop.py).
    gen = torch.Generator().manual_seed(cfg.seed)
    long_from = int(cfg.steps * (1.0 - cfg.long_fraction))
    seen = {"tokens": 0}

    def batch_at(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        size, count = (cfg.block_size, cfg.batch_size) if step < long_from else (cfg.max_position, cfg.batch_size // 2)
        windows = random_windows(train_stream, size, count, tokenizer.cls_token_id, tokenizer.sep_token_id, gen)
        seen["tokens"] += windows.numel()
        return mask_tokens(windows, tokenizer, cfg.mask_prob, gen)

    def on_step(info: loop.StepInfo) -> None:
        if info.step % cfg.log_every == 0 or info.step == cfg.steps - 1:
            print(f"step {info.step:5d}  loss {info.loss_ema:.3f}  lr {info.lr:.2e}  {info.seconds:6.0f}s  "
                  f"{seen['tokens'] / info.seconds:,.0f} tok/s", flush=True)
        if cfg.eval_every and info.step and info.step % cfg.eval_every == 0:
            acc = masked_accuracy(model, eval_inputs[:64], eval_labels[:64])
            print(f"step {info.step:5d}  held-out top-1 {acc['top1']:.3f} (first 64 windows)", flush=True)

    result = loop.run(
        model, batch_at, lambda m, batch: masked_lm_loss(m, *batch),
        loop.Schedule(steps=cfg.steps, lr=cfg.lr, warmup=cfg.warmup_steps, min_lr=cfg.min_lr, weight_decay=cfg.weight_decay,
                      betas=cfg.betas, grad_clip=cfg.grad_clip, minutes=cfg.minutes, log_every=0),
        on_step=on_step,
    )
    step, loss_ema, stopped_early, train_seconds = result.steps, result.final_train_loss, result.stopped_early, result.seconds
    tokens_seen = seen["tokens"]

    # Step 5: held-out masked-token accuracy against the unigram baseline.
    acc = masked_accuracy(model, eval_inputs, eval_labels)
    base = unigram_accuracy(train_stream, eval_labels, tokenizer.all_special_ids)
    print(f"held-out top-1 {acc['top1']:.3f} top-5 {acc['top5']:.3f}; "
          f"unigram top-1 {base['top1']:.3f} top-5 {base['top5']:.3f}", flush=True)

    # Step 6: save.
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    report = {
        "steps": step,
        "stopped_early": stopped_early,
        "tokens_seen": tokens_seen,
        "seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - t0, 1),
        "params": params,
        "vocab_size": len(tokenizer),
        "final_train_loss": round(loss_ema, 4),
        "heldout_top1": round(acc["top1"], 4),
        "heldout_top5": round(acc["top5"], 4),
        "heldout_masked_tokens": acc["masked_tokens"],
        "unigram_top1": round(base["top1"], 4),
        "unigram_top5": round(base["top5"], 4),
        "unigram_tokens": tokenizer.convert_ids_to_tokens(base["tokens"]),
        "train_tokens": len(train_stream),
        "train_modules": len(train_docs),
        "heldout_modules": corpus.heldout_names(),
        "samples": fill_mask_samples(out),
    }
    for s in report["samples"]:
        print(f"{s['text']!r} -> {s['top']}", flush=True)
    finish_report(report, out, command, asdict(cfg))
    write_outputs(out, report, model_card(report))
    return report


def main(argv: list[str] | None = None) -> None:
    defaults = MLMConfig()
    parser = training_parser(__doc__, defaults)
    parser.add_argument("--lr", type=float, default=defaults.lr, help="peak learning rate")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="windows per step")
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    parser.add_argument("--mask-prob", type=float, default=defaults.mask_prob)
    parser.add_argument("--threads", type=int, default=defaults.threads, help="torch threads")
    cfg = parse_config(parser, defaults, argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    train(cfg, command_line("train_stdlib_bert", argv))


if __name__ == "__main__":
    main()
