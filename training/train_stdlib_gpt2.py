"""Train the project's embedded default text generator: a small GPT-2 on the stdlib docs.

    python -m training.train_stdlib_gpt2 [--out models/stdlib-gpt2] [--steps N] [--minutes N]

What it does, step by step:

1. render the corpus (:mod:`training.corpus`): ~120 stdlib modules to train on,
   8 held-out modules that neither the tokenizer nor the model ever sees;
2. train a byte-level BPE tokenizer (4096 tokens, ``<|endoftext|>`` as
   bos/eos/unk/pad) on the train split and wrap it in ``PreTrainedTokenizerFast``;
3. build a GPT-2 (4 layers, 4 heads, 256 wide, 512 positions; ~4.4 M
   parameters, ~17 MB in fp32) from scratch;
4. train it with AdamW and a warmup + cosine schedule on random 512-token
   windows of the train docs (joined by ``<|endoftext|>``), 4 windows a step,
   for a fixed number of steps (800), seeded everywhere, on 2 CPU threads;
5. measure held-out perplexity and an add-one-smoothed unigram baseline on the
   same held-out tokens;
6. save model, tokenizer and generation config (safetensors) to ``--out``,
   plus ``training.json`` (the numbers) and ``README.md`` (a model card).

Same seed + same steps + same thread count + same Python (the corpus is the
installed Python's docs) + same kind of CPU gives the same model
(``torch.use_deterministic_algorithms`` is on). ``--minutes`` is only a safety
cap: if it stops training early the run is marked ``stopped_early`` in
``training.json`` and is no longer reproducible by step count.
"""

from __future__ import annotations

import math
import os
import time
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
    training_parser,
    write_outputs,
)

EOS = "<|endoftext|>"


@dataclass
class TrainConfig:
    out: str = "models/stdlib-gpt2"  # output folder (relative to the current directory)
    seed: int = 1337  # seeds python, numpy (if installed) and torch
    threads: int = 2  # torch intra-op threads; results are reproducible per thread count
    # tokenizer
    vocab_size: int = 4096  # BPE vocabulary, including the 256 byte symbols and <|endoftext|>
    min_frequency: int = 2  # a merge must occur at least this often in the train split
    # model (GPT-2 architecture, trained from scratch)
    n_positions: int = 512  # context length; the app needs at least 512
    n_embd: int = 256  # width
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads (64 dims each)
    dropout: float = 0.0  # residual/embedding/attention dropout; off: ~5 epochs of a small corpus still underfit
    # optimisation
    block_size: int = 512  # tokens per training window (= n_positions, so every position is trained)
    batch_size: int = 4  # windows per step (2048 tokens)
    steps: int = 800  # optimizer steps (~1.6 M tokens, ~5 epochs; ~10 min on 2 idle cores, 25 on busy ones); fixed, not timed
    lr: float = 2e-3  # peak learning rate (a tiny model in a short run takes a high one)
    min_lr: float = 2e-4  # cosine decays to this
    warmup_steps: int = 50  # linear warmup from 0
    weight_decay: float = 0.1  # AdamW decay on matrices (not on biases, LayerNorms, embeddings)
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW betas
    grad_clip: float = 1.0  # clip the global gradient norm
    # bookkeeping
    log_every: int = 50  # print the training loss every N steps
    eval_every: int = 200  # print held-out perplexity every N steps (does not steer training)
    minutes: float = 0.0  # wall-clock safety cap; 0 = none (see module docstring)


# ---------------------------------------------------------------------------
# Reproducibility
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------


def train_tokenizer(train_docs: list[str], cfg: TrainConfig):
    """Train a GPT-2-style byte-level BPE on the train split; return a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    # Byte-level BPE exactly as GPT-2 does it: no unknown bytes, no added prefix space.
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=[EOS],  # id 0
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(train_docs, trainer=trainer)
    # The transformers wrapper: <|endoftext|> doubles as bos/eos/unk/pad, as in GPT-2.
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS,
        eos_token=EOS,
        unk_token=EOS,
        pad_token=EOS,
        model_max_length=cfg.n_positions,
    )


def encode_docs(tokenizer, docs: list[str]) -> torch.Tensor:
    """Token ids of the docs joined as <|endoftext|> doc <|endoftext|> doc ... (1-D int64)."""
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    # The backend tokenizer directly: no "longer than model_max_length" warning per doc.
    for encoding in tokenizer.backend_tokenizer.encode_batch(docs, add_special_tokens=False):
        ids.append(eos)
        ids.extend(encoding.ids)
    return torch.tensor(ids, dtype=torch.long)


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------


@torch.no_grad()
def model_perplexity(model, ids: torch.Tensor, window: int = 512, batch_size: int = 8) -> float:
    """Perplexity on ``ids`` in non-overlapping windows (each window's first token is context only)."""
    model.eval()
    windows = [ids[s : s + window] for s in range(0, len(ids), window)]
    windows = [w for w in windows if len(w) >= 2]
    total_nll, total_n = 0.0, 0
    # Full windows go through in batches; a shorter last window goes alone (no padding needed).
    batches = [windows[i : i + batch_size] for i in range(0, len(windows), batch_size)]
    for batch in batches:
        groups = [batch] if len({len(w) for w in batch}) == 1 else [batch[:-1], batch[-1:]]
        for group in filter(None, groups):
            x = torch.stack(group)
            logits = model(x, attention_mask=torch.ones_like(x)).logits[:, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1), reduction="sum")
            total_nll += nll.item()
            total_n += x[:, 1:].numel()
    return math.exp(total_nll / total_n)


def unigram_perplexity(train_ids: torch.Tensor, ids: torch.Tensor, vocab_size: int, window: int = 512) -> float:
    """Add-one-smoothed unigram perplexity on exactly the tokens model_perplexity predicts."""
    counts = torch.bincount(train_ids, minlength=vocab_size).double() + 1.0
    logp = torch.log(counts / counts.sum())
    # The same targets as model_perplexity: every token except each window's first.
    mask = torch.ones(len(ids), dtype=torch.bool)
    mask[::window] = False
    if len(ids) % window == 1:  # model_perplexity skips a trailing 1-token window entirely
        mask[-1] = False
    return math.exp(-logp[ids[mask]].mean().item())


# ---------------------------------------------------------------------------
# Model and optimiser
# ---------------------------------------------------------------------------


def build_model(tokenizer, cfg: TrainConfig):
    """A fresh GPT-2 sized by cfg, with tied input/output embeddings."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=cfg.n_positions,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    return GPT2LMHeadModel(config)


def random_batch(ids: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """cfg.batch_size random windows of cfg.block_size tokens (inputs = labels; the model shifts)."""
    starts = torch.randint(0, len(ids) - cfg.block_size, (cfg.batch_size,), generator=gen)
    return torch.stack([ids[s : s + cfg.block_size] for s in starts.tolist()])


# ---------------------------------------------------------------------------
# Model card
# ---------------------------------------------------------------------------


def model_card(report: dict) -> str:
    """A short README.md for the output folder, filled with this run's numbers."""
    c = report["config"]
    how = (
        f"Seeded everywhere (seed {c['seed']}), deterministic algorithms on: the same seed, steps,\n"
        f"thread count, kind of CPU and Python version ({report['python'].split()[0]}, whose docs are\n"
        f"the corpus) give the same model. The wall-clock time depends on the machine and its load."
    )
    return f"""# stdlib-gpt2

A {report['params'] / 1e6:.1f} M-parameter GPT-2 ({c['n_layer']} layers, {c['n_head']} heads,
{c['n_embd']} wide, {c['n_positions']}-token context) with its own {report['vocab_size']}-token
byte-level BPE tokenizer, trained from scratch on the Python standard library's documentation
(`pydoc` text of {report['train_modules']} stdlib modules, {report['train_tokens']:,} tokens).
It is the project's embedded default text generator: it ships in the repository, needs no
network, and loads with `AutoModelForCausalLM` / `AutoTokenizer` / `pipeline("text-generation")`.

**It is a teaching model.** It writes docstring-like English ("Return the ... of the
given ...") about plausible but imaginary APIs. Under greedy decoding it soon repeats
itself; that is what repetition penalties, `no_repeat_ngram_size` and sampling are there
to show. It knows nothing but stdlib docstrings and is not meant for real use.

```python
from transformers import pipeline

generate = pipeline("text-generation", model="models/stdlib-gpt2")
generate("    Return the", max_new_tokens=48)  # greedy: loops soon
generate("    Return the", max_new_tokens=48, repetition_penalty=1.3, no_repeat_ngram_size=3)
generate("    Return the", max_new_tokens=48, do_sample=True, temperature=0.8, top_p=0.95)
```

The corpus is `help()` text, where docstrings are indented by four spaces: prompts that
look like it ("    Return the", "class Queue") work better than bare ones.

## Numbers

| | |
|---|---|
| parameters | {report['params']:,} |
| vocabulary | {report['vocab_size']} (`<\\|endoftext\\|>` = bos = eos = pad) |
| training | {report['steps']} steps x {c['batch_size']} x {c['block_size']} tokens = {report['tokens_seen']:,} tokens, {report['seconds']:.0f} s wall-clock on {c['threads']} CPU threads |
| final training loss | {report['final_train_loss']:.3f} |
| held-out perplexity | **{report['heldout_ppl']:.1f}** ({report['heldout_tokens']:,} tokens of {', '.join(report['heldout_modules'])}) |
| unigram baseline perplexity | {report['unigram_ppl']:.1f} (add-one smoothed train-split token frequencies, same tokens) |

The held-out modules were used neither for the tokenizer nor for the model.

{licence_section(STDLIB_DOCS)}{rebuild_section(report, 'train_stdlib_gpt2.py', how)}"""


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def train(cfg: TrainConfig, command: str) -> dict:
    """Run steps 1-6 of the module docstring; return the training.json report."""
    from transformers import GenerationConfig

    t0 = time.time()
    seed_everything(cfg.seed, cfg.threads)
    out = Path(cfg.out)

    # Step 1: the corpus, split by module name.
    train_docs, heldout_docs = corpus.split()
    print(f"corpus: {len(train_docs)} train docs, {len(heldout_docs)} held-out docs", flush=True)

    # Step 2: the tokenizer, on the train split only.
    tokenizer = train_tokenizer(train_docs, cfg)
    train_ids = encode_docs(tokenizer, train_docs)
    heldout_ids = encode_docs(tokenizer, heldout_docs)
    print(f"tokens: {len(train_ids):,} train, {len(heldout_ids):,} held-out; vocab {len(tokenizer)}", flush=True)

    # Step 3: the model.
    model = build_model(tokenizer, cfg)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params:,} parameters", flush=True)

    # Step 4: the training loop (training/loop.py).
    # nanoGPT's split: weight decay on 2-D matrices, not on the token and position embeddings
    optimizer = loop.build_optimizer(model, cfg.lr, cfg.weight_decay, cfg.betas, embedding_names=("wte", "wpe"))
    gen = torch.Generator().manual_seed(cfg.seed)
    tokens_per_step = cfg.batch_size * cfg.block_size

    def on_step(info: loop.StepInfo) -> None:
        if info.step % cfg.log_every == 0 or info.step == cfg.steps - 1:
            tok_s = (info.step + 1) * tokens_per_step / info.seconds
            print(f"step {info.step:5d}  loss {info.loss_ema:.3f}  lr {info.lr:.2e}  {info.seconds:6.0f}s  {tok_s:,.0f} tok/s", flush=True)
        if cfg.eval_every and info.step and info.step % cfg.eval_every == 0:
            print(f"step {info.step:5d}  held-out ppl {model_perplexity(model, heldout_ids, cfg.n_positions):.2f}", flush=True)

    result = loop.run(
        model, lambda step: random_batch(train_ids, cfg, gen), lambda m, batch: m(input_ids=batch, labels=batch).loss,
        loop.Schedule(steps=cfg.steps, lr=cfg.lr, warmup=cfg.warmup_steps, min_lr=cfg.min_lr, grad_clip=cfg.grad_clip,
                      minutes=cfg.minutes, log_every=0),
        optimizer=optimizer, on_step=on_step,
    )
    step, loss_ema, stopped_early, train_seconds = result.steps, result.final_train_loss, result.stopped_early, result.seconds

    # Step 5: held-out perplexity against the unigram baseline on the same tokens.
    heldout_ppl = model_perplexity(model, heldout_ids, cfg.n_positions)
    unigram_ppl = unigram_perplexity(train_ids, heldout_ids, len(tokenizer), cfg.n_positions)
    print(f"held-out ppl {heldout_ppl:.2f}  unigram ppl {unigram_ppl:.2f}", flush=True)

    # Step 6: save everything (transformers 5 always writes model.safetensors).
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=64,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)

    report = {
        "steps": step,
        "stopped_early": stopped_early,
        "tokens_seen": step * cfg.batch_size * cfg.block_size,
        "seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - t0, 1),
        "params": params,
        "vocab_size": len(tokenizer),
        "final_train_loss": round(loss_ema, 4),
        "heldout_ppl": round(heldout_ppl, 3),
        "unigram_ppl": round(unigram_ppl, 3),
        "heldout_tokens": len(heldout_ids),
        "train_tokens": len(train_ids),
        "train_modules": len(train_docs),
        "heldout_modules": corpus.heldout_names(),
    }
    finish_report(report, out, command, asdict(cfg))
    write_outputs(out, report, model_card(report))
    return report


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and train."""
    defaults = TrainConfig()
    parser = training_parser(__doc__, defaults)
    cfg = parse_config(parser, defaults, argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    train(cfg, command_line("train_stdlib_gpt2", argv))


if __name__ == "__main__":
    main()
