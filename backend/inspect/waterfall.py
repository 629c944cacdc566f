"""The stage waterfall: the run's own decoding chain applied stage by stage to the model's raw
logits at one position, with the numbers a person needs to see what each stage did.

The stages are the chain's own processors (backend.processors.build_chain, the very objects the
engine hands to generate()), fed the prefix that generate() fed them. So the last stage's
probability of the chosen token is the streamed `prob` and the first one's is the streamed
`raw_prob`. Beam search applies the chain to log-probabilities (log_softmax of the logits), as
transformers does; so does the waterfall of a beam run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from backend.inspect.records import Candidate, StageView
from backend.params import DecodingMode
from backend.processors import DecodingChain

LOG2 = math.log(2.0)


def _distribution(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Softmax of each row (float64) and its entropy in bits; -inf scores get probability 0."""
    shifted = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    p = e / e.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.where(p > 0, np.log(p), 0.0)
    return p, np.maximum(-(p * logp).sum(axis=-1) / LOG2, 0.0)  # no -0.00 bits from rounding


def stage_scores(
    chain: DecodingChain, prefix: torch.LongTensor, raw_logits: torch.Tensor, mode: DecodingMode
) -> list[torch.Tensor]:
    """The scores after each stage, starting with the raw ones: [raw, stage 1, ..., stage n].
    `prefix` (1, S) is the sequence generate() extended at that step."""
    current = raw_logits.detach().float().reshape(1, -1)
    if mode in (DecodingMode.BEAM, DecodingMode.BEAM_SAMPLE):
        current = torch.log_softmax(current, dim=-1)
    out = [current]
    for stage in chain.stages:
        current = stage.processor(prefix, current.clone())
        out.append(current)
    return out


def _percent(mass: float) -> str:
    return f"{mass * 100:.1f} %" if mass < 0.01 else f"{mass * 100:.0f} %"


def _movement(token: str, before: float, after: float, rank_before: int, rank_after: int) -> str:
    if abs(after - before) < 5e-4:
        verb = f"stayed at {after:.3f}"
    else:
        verb = f"{'rose' if after > before else 'fell'} from {before:.3f} to {after:.3f}"
    ranks = f" (rank {rank_before} → {rank_after})" if rank_before != rank_after else ""
    return f"{token} {verb}{ranks}"


def _final_sentence(mode: DecodingMode, token: str, prob: float, rank: int, score: float) -> str:
    if mode is DecodingMode.GREEDY:
        return f"Greedy decoding takes the most probable token: {token} (p {prob:.3f})."
    if mode is DecodingMode.SAMPLE:
        return f"{token} was drawn at random from this distribution, where it had p {prob:.3f} (rank {rank})."
    return (
        f"Beam search adds each token's log-probability to its beam's score: {token} (log p {score:.3f}, "
        f"rank {rank} here) is on the best returned sequence."
    )


def waterfall(
    chain: DecodingChain,
    prefix: torch.LongTensor,
    raw_logits: torch.Tensor,
    chosen: int,
    mode: DecodingMode,
    decode: Callable[[int], str],
    top_n: int = 10,
) -> tuple[StageView, ...]:
    """Every stage at one position: raw, each stage of the chain, final."""
    scores = stage_scores(chain, prefix, raw_logits, mode)
    rows = torch.cat(scores).double().numpy()  # (stages + 1, vocab)
    probs, entropy = _distribution(rows)
    finite = np.isfinite(rows)
    vocab = rows.shape[1]
    chosen_p = probs[:, chosen]
    ranks = (probs > chosen_p[:, None]).sum(axis=1) + 1
    names = ["raw", *(s.name for s in chain.stages)]
    labels = ["raw", *(s.label for s in chain.stages)]
    descriptions = [
        "softmax of the model's logits, before any processing",
        *(s.description for s in chain.stages),
    ]
    # the candidates: every stage's top N and the chosen token, most probable at the end first
    ids: set[int] = {chosen}
    for row in probs:
        n = min(top_n, int((row > 0).sum()))
        if n > 0:
            ids.update(int(i) for i in np.argpartition(-row, n - 1)[:n])
    order = sorted(ids, key=lambda i: (-probs[-1, i], -probs[0, i], i))
    token = repr(decode(chosen))
    views: list[StageView] = []
    for k in range(len(rows)):
        support = int(finite[k].sum())
        if k == 0:
            removed = 0.0
            sentence = (
                f"The model's own distribution: {token} has p {chosen_p[0]:.3f}, rank {ranks[0]} of "
                f"{vocab:,} tokens; entropy {entropy[0]:.2f} bits."
            )
        else:
            gone = finite[k - 1] & ~finite[k]
            removed = float(probs[k - 1][gone].sum())
            changed = int((finite[k] & (rows[k] != rows[k - 1])).sum()) + int(gone.sum())
            if gone.any():
                what = f"kept {support:,} of {int(finite[k - 1].sum()):,} tokens and removed {_percent(removed)} of the mass"
            elif not changed:
                what = "changed nothing at this position"
            elif names[k] == "temperature":
                shape = "sharpened" if entropy[k] < entropy[k - 1] else "flattened"
                what = f"{shape} the distribution (entropy {entropy[k - 1]:.2f} → {entropy[k]:.2f} bits)"
            else:
                what = f"changed the logits of {changed:,} token{'s' if changed != 1 else ''}"
            sentence = f"{labels[k]} {what}"
            if changed:
                sentence += "; " + _movement(token, chosen_p[k - 1], chosen_p[k], int(ranks[k - 1]), int(ranks[k]))
            sentence += "."
        views.append(
            _view(
                names[k], labels[k], descriptions[k], support, entropy[k], removed, chosen_p[k], ranks[k], probs[k],
                order, decode, sentence,
            )
        )
    last = len(rows) - 1
    score = float(rows[last, chosen])
    final_sentence = _final_sentence(mode, token, float(chosen_p[last]), int(ranks[last]), score)
    views.append(
        _view(
            "final", "final", "the distribution the token was chosen from", int(finite[last].sum()), entropy[last],
            0.0, chosen_p[last], ranks[last], probs[last], order, decode, final_sentence,
        )
    )
    return tuple(views)


def _view(
    name: str, label: str, description: str, support: int, entropy: float, removed: float, chosen_prob: float,
    rank: int, probs: np.ndarray, order: Sequence[int], decode: Callable[[int], str], sentence: str,
) -> StageView:
    return StageView(
        name=name,
        label=label,
        description=description,
        support=support,
        entropy_bits=float(entropy),
        removed_mass=removed,
        chosen_prob=float(chosen_prob),
        chosen_rank=int(rank),
        top=tuple(Candidate(i, decode(i), float(probs[i])) for i in order),
        sentence=sentence,
    )
