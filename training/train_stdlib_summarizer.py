"""Train the embedded summariser: a small BART that turns a docstring's body into its one-line summary.

    python -m training.train_stdlib_summarizer [--out models/stdlib-bart-summarizer] [--steps N] [--minutes N]

What it does, step by step:

1. collect (long description, one-line summary) pairs from stdlib docstrings with
   :func:`training.corpus.docstring_pairs` (summary = the docstring's first paragraph, one
   sentence ending in "."; source = the rest): from the corpus's training modules and from
   every other importable public stdlib module (more pairs; see :func:`extra_module_names`).
   The corpus's 8 held-out modules give the evaluation pairs and nothing else: a training
   pair whose source or summary also occurs among them is dropped. Sources are flattened
   to one line (runs of white space become one space). Augmentation: a source of several
   paragraphs also appears cut to its first paragraph (same summary);
2. train a cased byte-level BPE tokenizer (4096 tokens; <s> <pad> </s> <unk> <mask>, as BART)
   on the corpus's train split plus the training pairs, saved as a ``BartTokenizer``;
3. build a BART-architecture encoder-decoder (3 + 3 layers, 4 heads, 128 wide, 256 positions;
   ~2 M parameters, ~8 MB in fp32; embeddings and LM head shared) from scratch, with the layer
   norm before each block (``pre_layer_norm``; transformers' mBART classes, which are BART with
   that layout). Plain post-LN BART failed here: at lr 1.5e-3 its encoder collapsed (every
   position encoded the same vector, so the decoder wrote one line for every input; ROUGE-1
   0.09-0.11), at lr 5e-4 it reached ROUGE-1 0.158; pre-LN at 1.5e-3, 1000 steps: 0.182;
4. train it: the first ``denoise_steps`` steps on BART's own text-infilling objective (64-token
   windows of the train docs, ~30 % of the tokens in spans replaced by one <mask> each; the
   decoder writes the window back), then with teacher forcing on the pairs (labels
   "<s> summary </s>", decoder start = </s>, as BART) in length-bucketed random batches; AdamW,
   warmup + cosine over all steps. Without the denoising warm-up the decoder never learned to
   read the encoder: it wrote one generic line ("Return the message's content type.") for
   every input, ROUGE-1 0.105 against 0.191 for the lead baseline;
5. greedy-decode the held-out sources and score ROUGE-1 and ROUGE-L F1 (implemented here,
   lower-cased word tokens) against a lead baseline: the source's first N words, N = the
   mean summary length of the training pairs;
6. save model, tokenizer and generation config (decoder_start </s>, forced <s> first and
   </s> last, greedy, max_new_tokens 32) to ``--out``, plus ``training.json`` and README.md.

Status (measured on this machine, 52 held-out pairs): the default run (1000 steps, ~5 min on
one core) reaches ROUGE-1 0.182 / ROUGE-L 0.155 with greedy decoding against 0.191 / 0.166 for
the lead baseline -- summary-shaped lines ("Return the value of the specified name."), not yet
better than the first nine words of the source; 1500 steps overfit (0.146). Its output is
therefore not shipped: models.yaml's summarizer is the untrained BART of build_untrained.py.
More pairs (docstrings of other packages) or a pretrained encoder are the next steps.

Same seed + same steps + same thread count + same Python gives the same model.
``--minutes`` is only a safety cap (recorded as ``stopped_early``).

transformers 5 has no summarization pipeline: use ``AutoModelForSeq2SeqLM.generate``.
"""

from __future__ import annotations

import os
import pkgutil
import re
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from training import corpus
from training.embedded_common import (
    build_optimizer,
    command_line,
    finish_report,
    lr_at,
    parse_config,
    STDLIB_DOCS,
    licence_section,
    rebuild_section,
    seed_everything,
    training_parser,
    write_outputs,
)

BART_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")  # ids 0..4 as in facebook/bart-*


@dataclass
class SummarizerConfig:
    out: str = "models/stdlib-bart-summarizer"  # output folder (relative to the current directory)
    seed: int = 1337  # seeds python, numpy (if installed) and torch
    threads: int = 1  # torch intra-op threads; reproducible per thread count (1: see train_stdlib_bert)
    # data
    extra_modules: bool = True  # add pairs from all other public stdlib modules (not only the corpus's)
    augment_first_paragraph: bool = True  # also train on each multi-paragraph source cut to paragraph 1
    max_source: int = 256  # source tokens kept (the encoder's positions)
    max_target: int = 48  # summary tokens kept, <s> and </s> included
    # tokenizer
    vocab_size: int = 4096  # byte-level BPE vocabulary including the 256 bytes and 5 specials
    min_frequency: int = 2  # a merge must occur at least this often
    # model (BART architecture, trained from scratch)
    d_model: int = 128  # width
    encoder_layers: int = 3  # encoder blocks
    decoder_layers: int = 3  # decoder blocks
    heads: int = 4  # attention heads in both stacks (32 dims each)
    ffn_dim: int = 512  # feed-forward width (4 x d_model)
    dropout: float = 0.1  # residual dropout: ~2.5k pairs are seen for many epochs
    pre_layer_norm: bool = True  # layer norm before each block (mBART's layout); BART's post-LN collapsed here
    # denoising warm-up (BART's own pretraining objective, on the corpus's train split)
    denoise_steps: int = 350  # the first N steps reconstruct corrupted doc windows instead of summarising
    denoise_batch: int = 16  # windows per denoising step
    denoise_len: int = 64  # tokens per window
    denoise_ratio: float = 0.3  # about this share of each window is replaced, in spans of 1-5 tokens by one <mask>
    # optimisation
    batch_size: int = 32  # pairs per step
    bucket_batches: int = 8  # batches drawn together and sorted by length (less padding)
    steps: int = 1000  # optimizer steps, denoising ones included (~7 min on one core); fixed, not timed
    lr: float = 1.5e-3  # peak learning rate
    min_lr: float = 1e-4  # cosine decays to this
    warmup_steps: int = 60  # linear warmup from 0
    weight_decay: float = 0.01  # AdamW decay on weight matrices
    betas: tuple[float, float] = (0.9, 0.98)  # AdamW betas
    grad_clip: float = 1.0  # clip the global gradient norm
    label_smoothing: float = 0.1  # as in the BART/fairseq summarisation recipes
    # generation (saved to generation_config.json)
    max_new_tokens: int = 32  # summary length cap when decoding
    # bookkeeping
    log_every: int = 50  # print the training loss every N steps
    eval_every: int = 400  # print held-out ROUGE on 16 pairs every N steps (does not steer training)
    minutes: float = 0.0  # wall-clock safety cap; 0 = none


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

# Modules never imported for extra pairs: side effects (opening a browser, printing), GUI,
# the test suite, deprecated or platform-only modules, and packages of codec tables.
_DENY = frozenset({
    "antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test", "lib2to3",
    "distutils", "encodings", "ensurepip", "pydoc_data", "curses", "msilib", "winreg",
    "winsound", "msvcrt", "nt", "crypt", "nis", "spwd", "ossaudiodev", "audioop", "sndhdr",
    "imghdr", "chunk", "cgi", "cgitb", "telnetlib", "asyncore", "asynchat", "smtpd", "imp",
    "nntplib", "pipes", "uu", "xdrlib", "mailcap", "sunau", "aifc", "readline", "rlcompleter",
    "sre_compile", "sre_parse", "sre_constants",
})


def extra_module_names() -> list[str]:
    """Public stdlib modules (and their public submodules) that import quietly, minus the corpus's
    held-out modules and anything in the deny list; sorted."""
    held = set(corpus.heldout_names())
    names: set[str] = set()
    for top in sorted(sys.stdlib_module_names):
        if top.startswith("_") or top in _DENY or top in held:
            continue
        try:
            module = corpus._import_quietly(top)
        except Exception:  # platform-only or broken on this build
            continue
        names.add(top)
        for info in pkgutil.walk_packages(getattr(module, "__path__", []), top + "."):
            parts = info.name.split(".")
            if any(p.startswith("_") or p in ("test", "tests", "idle_test") for p in parts):
                continue
            try:
                corpus._import_quietly(info.name)
            except Exception:
                continue
            names.add(info.name)
    return sorted(names)


def flatten(text: str) -> str:
    """One line: runs of white space become one space."""
    return " ".join(text.split())


def first_paragraph(text: str) -> str:
    return re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0]


def heldout_pairs() -> list[tuple[str, str]]:
    """(source, summary) pairs of the corpus's held-out modules, flattened."""
    return [(flatten(src), summary) for src, summary in corpus.docstring_pairs(corpus.heldout_names())]


def training_pairs(cfg: SummarizerConfig, heldout: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], dict]:
    """Training (source, summary) pairs, disjoint from the held-out ones; plus counts for the report."""
    raw = list(corpus.docstring_pairs())  # the corpus's training modules
    n_corpus = len(raw)
    if cfg.extra_modules:
        raw += list(corpus.docstring_pairs(extra_module_names()))
    held_src = {s for s, _ in heldout}
    held_sum = {t for _, t in heldout}
    pairs: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    n_unique = 0
    for src, summary in raw:
        flat = flatten(src)
        if flat in held_src or summary in held_sum or (flat, summary) in seen:
            continue
        seen.add((flat, summary))
        n_unique += 1
        pairs.append((flat, summary))
        if cfg.augment_first_paragraph:
            head = flatten(first_paragraph(src))
            if head != flat and len(head.split()) >= 8 and (head, summary) not in seen:
                seen.add((head, summary))
                pairs.append((head, summary))
    counts = {"pairs_corpus_modules": n_corpus, "pairs_all_raw": len(raw), "pairs_unique": n_unique,
              "pairs_with_augmentation": len(pairs)}
    return pairs, counts


def encode_pairs(tokenizer, pairs: list[tuple[str, str]], cfg: SummarizerConfig):
    """(source ids, label ids) lists; sources "<s> ... </s>", labels "<s> summary </s>", truncated."""
    sources = tokenizer([s for s, _ in pairs], truncation=True, max_length=cfg.max_source)["input_ids"]
    targets = tokenizer(text_target=[t for _, t in pairs], truncation=True, max_length=cfg.max_target)["input_ids"]
    return sources, targets


def pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def batches(sources, targets, cfg: SummarizerConfig, gen: torch.Generator, pad_id: int):
    """Endless length-bucketed batches: draw batch_size * bucket_batches pairs, sort by source
    length, cut into batches, yield those in random order; reshuffle every epoch."""
    n = len(sources)
    while True:
        order = torch.randperm(n, generator=gen).tolist()
        chunk = cfg.batch_size * cfg.bucket_batches
        for start in range(0, n, chunk):
            group = sorted(order[start : start + chunk], key=lambda i: len(sources[i]))
            cut = [group[i : i + cfg.batch_size] for i in range(0, len(group), cfg.batch_size)]
            for k in torch.randperm(len(cut), generator=gen).tolist():
                idx = cut[k]
                src = pad([sources[i] for i in idx], pad_id)
                labels = pad([targets[i] for i in idx], -100)
                yield src, (src != pad_id).long(), labels


def denoising_batches(stream: torch.Tensor, tokenizer, cfg: SummarizerConfig, gen: torch.Generator):
    """Endless BART text-infilling batches: a random window of the train docs with spans of 1-5
    tokens each replaced by one <mask> (source), and the window itself (labels)."""
    bos, eos, pad_id, mask_id = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.mask_token_id
    span_start = cfg.denoise_ratio / 3  # mean span length 3
    while True:
        sources, labels = [], []
        starts = torch.randint(0, len(stream) - cfg.denoise_len, (cfg.denoise_batch,), generator=gen)
        for start in starts.tolist():
            original = stream[start : start + cfg.denoise_len].tolist()
            draws = torch.rand(len(original), generator=gen).tolist()
            lengths = torch.randint(1, 6, (len(original),), generator=gen).tolist()
            corrupted, i = [], 0
            while i < len(original):
                if draws[i] < span_start:
                    corrupted.append(mask_id)
                    i += lengths[i]
                else:
                    corrupted.append(original[i])
                    i += 1
            sources.append([bos] + corrupted + [eos])
            labels.append([bos] + original + [eos])
        src = pad(sources, pad_id)
        yield src, (src != pad_id).long(), pad(labels, -100)


# ---------------------------------------------------------------------------
# ROUGE (no dependency): F1 over lower-cased word tokens
# ---------------------------------------------------------------------------


def rouge_words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _f1(overlap: int, n_pred: int, n_ref: int) -> float:
    if overlap == 0 or n_pred == 0 or n_ref == 0:
        return 0.0
    p, r = overlap / n_pred, overlap / n_ref
    return 2 * p * r / (p + r)


def rouge_1(pred: str, ref: str) -> float:
    """ROUGE-1 F1: clipped unigram overlap."""
    p, r = rouge_words(pred), rouge_words(ref)
    return _f1(sum((Counter(p) & Counter(r)).values()), len(p), len(r))


def lcs_length(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(pred: str, ref: str) -> float:
    """ROUGE-L F1: longest common subsequence (sentence level, beta = 1)."""
    p, r = rouge_words(pred), rouge_words(ref)
    return _f1(lcs_length(p, r), len(p), len(r))


def rouge_scores(preds: list[str], refs: list[str]) -> dict:
    n = len(refs)
    return {
        "rouge1": sum(rouge_1(p, r) for p, r in zip(preds, refs)) / n,
        "rougeL": sum(rouge_l(p, r) for p, r in zip(preds, refs)) / n,
    }


@torch.no_grad()
def encoder_spread(model, tokenizer, sources: list[str]) -> float:
    """Mean std over positions of the encoder's output (near 0: every token encodes the same vector,
    the collapse that makes the decoder ignore its input)."""
    model.eval()
    enc = tokenizer(sources[:4], truncation=True, max_length=64, padding=True, return_tensors="pt")
    hidden = model.get_encoder()(**enc).last_hidden_state
    return hidden.std(dim=1).mean().item()


def lead(source: str, n_words: int) -> str:
    """The lead baseline: the source's first ``n_words`` words."""
    return " ".join(source.split()[:n_words])


@torch.no_grad()
def summarize(model, tokenizer, sources: list[str], max_source: int = 256, batch: int = 16, **generate_kwargs) -> list[str]:
    """Greedy summaries (the saved generation config) of ``sources``."""
    model.eval()
    outputs: list[str] = []
    for i in range(0, len(sources), batch):
        enc = tokenizer(sources[i : i + batch], truncation=True, max_length=max_source, padding=True, return_tensors="pt")
        ids = model.generate(**enc, **generate_kwargs)
        outputs += [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return outputs


# ---------------------------------------------------------------------------
# Tokenizer and model
# ---------------------------------------------------------------------------


def train_tokenizer(texts: list[str], cfg: SummarizerConfig):
    """A cased byte-level BPE in BART's conventions, wrapped as a transformers ``BartTokenizer``."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import BartTokenizer

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=list(BART_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return BartTokenizer(vocab=dict(model["vocab"]), merges=merges, model_max_length=cfg.max_source)


def build_model(tokenizer, cfg: SummarizerConfig):
    """BART, or with cfg.pre_layer_norm its pre-LN variant (transformers' mBART classes: the same
    encoder-decoder with the layer norm before each block and a final one after each stack)."""
    from transformers import BartConfig, BartForConditionalGeneration, MBartConfig, MBartForConditionalGeneration

    config_class, model_class = (MBartConfig, MBartForConditionalGeneration) if cfg.pre_layer_norm else (BartConfig, BartForConditionalGeneration)
    config = config_class(
        vocab_size=len(tokenizer),
        d_model=cfg.d_model,
        encoder_layers=cfg.encoder_layers,
        decoder_layers=cfg.decoder_layers,
        encoder_attention_heads=cfg.heads,
        decoder_attention_heads=cfg.heads,
        encoder_ffn_dim=cfg.ffn_dim,
        decoder_ffn_dim=cfg.ffn_dim,
        max_position_embeddings=cfg.max_source,
        dropout=cfg.dropout,
        attention_dropout=0.0,
        activation_dropout=0.0,
        scale_embedding=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_bos_token_id=tokenizer.bos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    return model_class(config)


def generation_config(tokenizer, cfg: SummarizerConfig):
    from transformers import GenerationConfig

    return GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_bos_token_id=tokenizer.bos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
        do_sample=False,
        num_beams=1,
        max_new_tokens=cfg.max_new_tokens,
    )


def model_card(report: dict) -> str:
    c = report["config"]
    samples = "\n".join(
        f"| {s['source'][:160]}{'...' if len(s['source']) > 160 else ''} | {s['reference']} | {s['model']} |"
        for s in report["samples"]
    )
    how = (
        f"Seeded everywhere (seed {c['seed']}); the same seed, steps, thread count and Python version\n"
        f"({report['python'].split()[0]}, whose docstrings are the data) give the same model."
    )
    return f"""# stdlib-bart-summarizer

A {report['params'] / 1e6:.1f} M-parameter BART-architecture encoder-decoder ({c['encoder_layers']} + {c['decoder_layers']} layers, {'pre-LN as in mBART, ' if c['pre_layer_norm'] else ''}
{c['heads']} heads, {c['d_model']} wide, {c['max_source']} positions) with its own cased
{report['vocab_size']}-token byte-level BPE tokenizer, trained from scratch to turn the body of a
Python docstring into the docstring's one-line summary. It is the project's embedded
encoder-decoder model: it ships in the repository, needs no network and loads with
`AutoModelForSeq2SeqLM` / `AutoTokenizer` (transformers 5 has no summarization pipeline: call
`generate()`; the saved generation config is greedy with `max_new_tokens={c['max_new_tokens']}`).

**It is a teaching model.** It has seen {report['pairs_unique']:,} docstrings and writes lines that
read like docstring summaries ("Return the ...", "Create a new ..."); they are often wrong about
the details.

## Data

(source, summary) pairs from stdlib docstrings (`training.corpus.docstring_pairs`): summary = the
first paragraph when it is one sentence ending in "." (3-30 words); source = the rest, flattened
to one line. {report['pairs_corpus_modules']} pairs come from the corpus's training modules; all other
importable public stdlib modules bring the total to {report['pairs_unique']:,} unique pairs
({report['pairs_with_augmentation']:,} with multi-paragraph sources also cut to their first
paragraph). Evaluation: the {report['heldout_pairs']} pairs of the held-out modules
({', '.join(report['heldout_modules'])}), whose text neither the tokenizer nor the model saw.

## Numbers

| | |
|---|---|
| parameters | {report['params']:,} |
| training | {c['denoise_steps']} denoising steps ({c['denoise_batch']} x {c['denoise_len']}-token windows of the train docs), then {report['steps'] - c['denoise_steps']} steps x {c['batch_size']} pairs (~{report['epochs']:.0f} epochs); {report['seconds']:.0f} s on {c['threads']} CPU thread(s) |
| final training loss | {report['final_train_loss']:.3f} (label smoothing {c['label_smoothing']}) |
| held-out ROUGE-1 F1 (greedy) | **{report['heldout_rouge1']:.3f}** |
| held-out ROUGE-L F1 (greedy) | **{report['heldout_rougeL']:.3f}** |
| lead baseline ROUGE-1 / ROUGE-L | {report['lead_rouge1']:.3f} / {report['lead_rougeL']:.3f} (the source's first {report['lead_words']} words) |

ROUGE here: F1 over lower-cased `\\w+` tokens, unigram overlap (ROUGE-1) and longest common
subsequence (ROUGE-L), averaged over pairs; no stemming.

## Samples (held-out, greedy)

| source | reference | model |
|---|---|---|
{samples}

{licence_section(STDLIB_DOCS)}{rebuild_section(report, 'train_stdlib_summarizer.py', how)}"""


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def train(cfg: SummarizerConfig, command: str) -> dict:
    t0 = time.time()
    seed_everything(cfg.seed, cfg.threads)
    out = Path(cfg.out)

    # Step 1: pairs.
    heldout = heldout_pairs()
    pairs, counts = training_pairs(cfg, heldout)
    print(f"pairs: {counts}, held-out {len(heldout)}", flush=True)

    # Step 2: the tokenizer (train split of the corpus + training pairs; nothing held out).
    train_docs, _ = corpus.split()
    tokenizer = train_tokenizer(train_docs + [f"{s}\n{t}" for s, t in pairs], cfg)
    sources, targets = encode_pairs(tokenizer, pairs, cfg)
    src_tokens = sum(map(len, sources))
    print(f"vocab {len(tokenizer)}; {src_tokens:,} source tokens, {sum(map(len, targets)):,} target tokens", flush=True)

    # Step 3: the model.
    model = build_model(tokenizer, cfg)
    model.generation_config = generation_config(tokenizer, cfg)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params:,} parameters", flush=True)

    # Step 4: teacher-forced training (labels shifted right behind </s>, as BART's own loss does).
    from transformers.models.bart.modeling_bart import shift_tokens_right

    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay, cfg.betas)
    gen = torch.Generator().manual_seed(cfg.seed)
    stream = batches(sources, targets, cfg, gen, tokenizer.pad_token_id)
    doc_ids = tokenizer.backend_tokenizer.encode_batch([flatten(d) for d in train_docs], add_special_tokens=False)
    denoise = denoising_batches(torch.tensor([i for e in doc_ids for i in e.ids]), tokenizer, cfg, gen)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=cfg.label_smoothing)
    probe_src, probe_ref = [s for s, _ in heldout[:16]], [t for _, t in heldout[:16]]
    t_train = time.time()
    step, loss_ema, stopped_early = 0, None, False
    for step in range(cfg.steps):
        if cfg.minutes and time.time() - t_train > cfg.minutes * 60:
            stopped_early = True
            print(f"stopping early at step {step}: --minutes {cfg.minutes} reached", flush=True)
            break
        lr = lr_at(step, cfg.steps, cfg.warmup_steps, cfg.lr, cfg.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        src, mask, labels = next(denoise) if step < cfg.denoise_steps else next(stream)
        model.train()
        decoder_inputs = shift_tokens_right(labels, tokenizer.pad_token_id, model.config.decoder_start_token_id)
        logits = model(input_ids=src, attention_mask=mask, decoder_input_ids=decoder_inputs).logits
        loss = loss_fn(logits.view(-1, logits.size(-1)), labels.view(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        loss_ema = loss.item() if loss_ema is None else 0.9 * loss_ema + 0.1 * loss.item()
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            print(f"step {step:5d}  loss {loss_ema:.3f}  lr {lr:.2e}  {time.time() - t_train:6.0f}s", flush=True)
        if cfg.eval_every and step and step % cfg.eval_every == 0:
            preds = summarize(model, tokenizer, probe_src, cfg.max_source)
            r = rouge_scores(preds, probe_ref)
            print(f"step {step:5d}  probe ROUGE-1 {r['rouge1']:.3f} ROUGE-L {r['rougeL']:.3f}  "
                  f"encoder spread {encoder_spread(model, tokenizer, probe_src):.3f}  e.g. {preds[0]!r}", flush=True)
    else:
        step = cfg.steps
    train_seconds = time.time() - t_train

    # Step 5: held-out ROUGE against the lead baseline.
    held_src, held_ref = [s for s, _ in heldout], [t for _, t in heldout]
    preds = summarize(model, tokenizer, held_src, cfg.max_source)
    scores = rouge_scores(preds, held_ref)
    lead_words = round(sum(len(t.split()) for _, t in pairs) / len(pairs))
    base = rouge_scores([lead(s, lead_words) for s in held_src], held_ref)
    print(f"held-out ROUGE-1 {scores['rouge1']:.3f} ROUGE-L {scores['rougeL']:.3f}; "
          f"lead-{lead_words} ROUGE-1 {base['rouge1']:.3f} ROUGE-L {base['rougeL']:.3f}", flush=True)

    # Step 6: save, then reload the folder for the samples (proves it loads).
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    loaded, loaded_tok = AutoModelForSeq2SeqLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    sample_idx = list(range(0, len(heldout), max(1, len(heldout) // 6)))[:6]
    sample_preds = summarize(loaded, loaded_tok, [held_src[i] for i in sample_idx], cfg.max_source)
    samples = [
        {"source": held_src[i], "reference": held_ref[i], "model": p, "lead": lead(held_src[i], lead_words)}
        for i, p in zip(sample_idx, sample_preds)
    ]
    for s in samples:
        print(f"REF {s['reference']!r}\nGEN {s['model']!r}", flush=True)
    report = {
        "steps": step,
        "stopped_early": stopped_early,
        "epochs": round(max(0, step - cfg.denoise_steps) * cfg.batch_size / len(pairs), 2),
        "seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - t0, 1),
        "params": params,
        "vocab_size": len(tokenizer),
        "final_train_loss": round(loss_ema, 4),
        "heldout_rouge1": round(scores["rouge1"], 4),
        "heldout_rougeL": round(scores["rougeL"], 4),
        "lead_rouge1": round(base["rouge1"], 4),
        "lead_rougeL": round(base["rougeL"], 4),
        "lead_words": lead_words,
        "heldout_pairs": len(heldout),
        "heldout_modules": corpus.heldout_names(),
        **counts,
        "train_source_tokens": src_tokens,
        "samples": samples,
    }
    finish_report(report, out, command, asdict(cfg))
    write_outputs(out, report, model_card(report))
    return report


def main(argv: list[str] | None = None) -> None:
    defaults = SummarizerConfig()
    parser = training_parser(__doc__, defaults)
    parser.add_argument("--lr", type=float, default=defaults.lr, help="peak learning rate")
    parser.add_argument("--denoise-steps", type=int, default=defaults.denoise_steps)
    cfg = parse_config(parser, defaults, argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    train(cfg, command_line("train_stdlib_summarizer", argv))


if __name__ == "__main__":
    main()
