"""The one training loop every script in ``training/`` uses.

A script gives a model, an endless iterator of batches and a function that turns a batch into a
loss; the loop does the rest the same way for all of them: AdamW with weight decay on matrices
only, linear warmup then cosine decay, gradient clipping, a wall-clock safety cap, a smoothed loss
printed every ``log_every`` steps, and an optional evaluation callback.

    result = run(model, batches, loss_of, Schedule(steps=2000, lr=5e-4, warmup=200))

The result says how many steps ran, how long they took, the smoothed final loss and whether the
``minutes`` cap stopped the run early (a rebuild with the same seed, steps and thread count gives
the same weights only when it did not).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Schedule:
    steps: int
    lr: float
    warmup: int = 100
    min_lr: float = 0.0
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    grad_clip: float = 1.0
    minutes: float = 0.0  # wall-clock safety cap, 0 = none
    log_every: int = 50  # the loop's own progress line (0: none; an on_step callback prints its own)
    ema: float = 0.9  # smoothing of the reported loss


@dataclass
class LoopResult:
    steps: int
    seconds: float
    final_train_loss: float
    stopped_early: bool
    log: list[dict] = field(default_factory=list)


def lr_at(step: int, steps: int, warmup: int, lr: float, min_lr: float) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``min_lr`` at ``steps``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_optimizer(model, lr: float, weight_decay: float, betas: tuple[float, float],
                    embedding_names: tuple[str, ...] = ("embed", "shared")) -> torch.optim.AdamW:
    """AdamW; weight decay on weight matrices only (not biases, LayerNorms, or the embeddings:
    parameters whose name contains one of ``embedding_names``)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_matrix = p.dim() >= 2 and not any(e in name for e in embedding_names)
        (decay if is_matrix else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


@dataclass(frozen=True)
class StepInfo:
    step: int  # 0-based index of the step just taken
    loss: float  # its loss
    loss_ema: float  # the smoothed loss
    lr: float
    seconds: float  # since the loop started


def run(
    model: torch.nn.Module,
    batches: Iterator | Callable[[int], object],
    loss_of: Callable[[torch.nn.Module, object], torch.Tensor],
    schedule: Schedule,
    evaluate: Callable[[int], dict] | None = None,
    eval_every: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
) -> LoopResult:
    """Train ``model`` for ``schedule.steps`` optimizer steps (or until the ``minutes`` cap).

    ``batches``: an iterator, or a function of the step index (a batch shape that changes with
    the step). ``optimizer``: the default is :func:`build_optimizer`'s AdamW. ``on_step``: called
    after every step (a script's own logging or evaluation). ``evaluate``: called every
    ``eval_every`` steps; what it returns joins that step's log entry."""
    optimizer = optimizer or build_optimizer(model, schedule.lr, schedule.weight_decay, schedule.betas)
    next_batch = batches if callable(batches) else (lambda step: next(batches))
    t0 = time.time()
    loss_ema: float | None = None
    log: list[dict] = []
    step = 0
    stopped_early = False
    for step in range(schedule.steps):
        if schedule.minutes and time.time() - t0 > schedule.minutes * 60:
            stopped_early = True
            print(f"stopping early at step {step}: --minutes {schedule.minutes} reached", flush=True)
            break
        lr = lr_at(step, schedule.steps, schedule.warmup, schedule.lr, schedule.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = next_batch(step)
        model.train()
        loss = loss_of(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), schedule.grad_clip)
        optimizer.step()
        value = float(loss.detach())
        loss_ema = value if loss_ema is None else schedule.ema * loss_ema + (1 - schedule.ema) * value
        if on_step is not None:
            on_step(StepInfo(step, value, loss_ema, lr, time.time() - t0))
        if schedule.log_every and ((step + 1) % schedule.log_every == 0 or step + 1 == schedule.steps):
            entry = {"step": step + 1, "loss": round(loss_ema, 4), "seconds": round(time.time() - t0, 1)}
            if evaluate is not None and eval_every and (step + 1) % eval_every == 0:
                entry.update(evaluate(step + 1))
            log.append(entry)
            print(entry, flush=True)
    else:
        step = schedule.steps
    return LoopResult(
        steps=step,
        seconds=time.time() - t0,
        final_train_loss=float("nan") if loss_ema is None else loss_ema,
        stopped_early=stopped_early,
        log=log,
    )
