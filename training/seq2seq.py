"""What the translator and the summarizer scripts share: a SentencePiece-style tokenizer, batches
of (source, target) pairs, the teacher-forced loss, and batched decoding for evaluation.

Both models are encoder-decoders that decode from a start token to ``</s>``; the loss is the
cross-entropy of the labels shifted behind that start token, as transformers' own BART and
Marian losses compute it, with label smoothing.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator, Sequence

import torch

SPECIALS = ("</s>", "<unk>", "<pad>")  # ids 0, 1, 2 as in Helsinki-NLP's opus-mt tokenizers


def train_tokenizer(texts: Sequence[str], vocab_size: int, max_length: int, specials: Sequence[str] = SPECIALS,
                    bos: str | None = None):
    """A SentencePiece-style BPE (NFKC, Metaspace "▁"), cased, as a plain fast tokenizer that adds
    ``</s>`` (and ``bos`` before, when given) to every text."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=list(specials),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    eos = tok.token_to_id("</s>")
    if bos:
        template = processors.TemplateProcessing(
            single=f"{bos} $A </s>", pair=f"{bos} $A $B </s>", special_tokens=[(bos, tok.token_to_id(bos)), ("</s>", eos)]
        )
    else:
        template = processors.TemplateProcessing(single="$A </s>", pair="$A $B </s>", special_tokens=[("</s>", eos)])
    tok.post_processor = template
    extra = {"bos_token": bos} if bos else {}
    specials_kw = {"mask_token": "<mask>"} if "<mask>" in specials else {}
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                                   model_max_length=max_length, **extra, **specials_kw)


def encode(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids with </s>, cut to ``max_length`` (keeping </s>), never padded: a copy of the fast
    tokenizer without the padding and truncation that a batched call leaves switched on (and that
    save_pretrained writes into tokenizer.json)."""
    backend = copy.deepcopy(tokenizer.backend_tokenizer)
    backend.no_padding()
    backend.no_truncation()
    return [e.ids[:max_length - 1] + ([e.ids[-1]] if len(e.ids) >= max_length else [])
            for e in backend.encode_batch(list(texts))]


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(map(len, rows))
    return torch.tensor([r + [value] * (width - len(r)) for r in rows])


def batches(sources: list[list[int]], targets: list[list[int]], tokens_per_batch: int, pad_id: int,
            seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless length-bucketed batches of about ``tokens_per_batch`` source+target tokens:
    (input_ids, attention_mask, labels with -100 on padding). Seeded: the same order every run."""
    rng = random.Random(seed)
    order = sorted(range(len(sources)), key=lambda i: (len(sources[i]), len(targets[i])))
    chunks: list[list[int]] = []
    current: list[int] = []
    width = 0
    for i in order:
        width = max(width, len(sources[i]) + len(targets[i]))
        if current and width * (len(current) + 1) > tokens_per_batch:
            chunks.append(current)
            current, width = [], len(sources[i]) + len(targets[i])
        current.append(i)
    if current:
        chunks.append(current)
    while True:
        rng.shuffle(chunks)
        for chunk in chunks:
            src = _pad([sources[i] for i in chunk], pad_id)
            labels = _pad([targets[i] for i in chunk], -100)
            yield src, (src != pad_id).long(), labels


def loss_function(label_smoothing: float, decoder_start_token_id: int, pad_id: int):
    """The teacher-forced loss: decoder inputs = labels shifted right behind the start token."""
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=label_smoothing)

    def loss_of(model, batch) -> torch.Tensor:
        input_ids, attention_mask, labels = batch
        decoder_input_ids = labels.new_full(labels.shape, pad_id)
        decoder_input_ids[:, 1:] = labels[:, :-1].masked_fill(labels[:, :-1] == -100, pad_id)
        decoder_input_ids[:, 0] = decoder_start_token_id
        logits = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
        return loss_fn(logits.reshape(-1, logits.size(-1)), labels.reshape(-1))

    return loss_of


@torch.no_grad()
def generate_all(model, tokenizer, sources: Sequence[str], max_source: int, batch: int = 32, **generate_kwargs) -> list[str]:
    """Decode ``sources`` with the model's saved generation config (greedy unless overridden),
    longest first so that batches pad little; returned in the input order."""
    model.eval()
    order = sorted(range(len(sources)), key=lambda i: -len(sources[i]))
    outputs: dict[int, str] = {}
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        enc = tokenizer([sources[i] for i in idx], truncation=True, max_length=max_source, padding=True,
                        return_tensors="pt")
        ids = model.generate(**enc, **generate_kwargs)
        for i, text in zip(idx, tokenizer.batch_decode(ids, skip_special_tokens=True)):
            outputs[i] = text.strip()
    return [outputs[i] for i in range(len(sources))]


def fit(model, tokenizer, sources: list[list[int]], targets: list[list[int]], cfg, evaluate, eval_every: int):
    """Teacher-forced training of an encoder-decoder by training/loop.py; ``cfg`` has steps, lr,
    warmup, minutes, seed, tokens_per_batch and label_smoothing."""
    from training import loop

    return loop.run(
        model,
        batches(sources, targets, cfg.tokens_per_batch, tokenizer.pad_token_id, cfg.seed),
        loss_function(cfg.label_smoothing, model.config.decoder_start_token_id, tokenizer.pad_token_id),
        loop.Schedule(steps=cfg.steps, lr=cfg.lr, warmup=cfg.warmup, minutes=cfg.minutes, log_every=100, ema=0.98),
        evaluate=evaluate, eval_every=eval_every,
    )


def outputs_in_fp16(model, tokenizer, sources: Sequence[str], max_source: int) -> list[str]:
    """Round the weights to fp16 (as they are saved), then decode ``sources`` (in fp32 arithmetic,
    as the app runs them on a CPU); the model is left in fp16, ready to save."""
    model.half()
    outputs = generate_all(model.float(), tokenizer, sources, max_source)
    model.half()
    return outputs


def continued(folder: str) -> tuple[object, object, dict]:
    """(tokenizer, fp32 model, the first run's summary) of a built folder, to train it further
    (``--init``): the second run keeps the tokenizer and starts from the saved weights."""
    import json
    from pathlib import Path

    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    first = json.loads((Path(folder) / "training.json").read_text(encoding="utf-8"))
    summary = {k: first[k] for k in ("command", "steps", "seconds", "final_train_loss", "log") if k in first}
    if "first_run" in first:
        summary["first_run"] = first["first_run"]
    model = AutoModelForSeq2SeqLM.from_pretrained(folder, dtype=torch.float32)
    from safetensors import safe_open

    with safe_open(str(Path(folder) / "model.safetensors"), "pt") as weights:
        saved = set(weights.keys())
    tied = {name for name, _ in model.named_parameters(remove_duplicate=False)} - {n for n, _ in model.named_parameters()}
    for name, parameter in model.named_parameters():
        if name not in saved and name not in tied:  # Marian's sinusoidal positions: fixed, never saved
            parameter.requires_grad_(False)
    return AutoTokenizer.from_pretrained(folder), model, summary


def runs_line(report: dict) -> str:
    """The card's line on how many runs built the weights (a model trained further with --init)."""
    runs, first = [], report.get("first_run")
    while first:
        runs.insert(0, first)
        first = first.get("first_run")
    if not runs:
        return ""
    lines = "".join(f"`{r['command']}` ({r['steps']} steps, {r['seconds'] / 60:.0f} minutes), then " for r in runs)
    return f"Built in {len(runs) + 1} runs, each continuing the last one's weights: {lines}`{report['command']}`.\n\n"
