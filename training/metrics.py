"""ROUGE as the model cards report it: F1 over lower-cased ``\\w+`` tokens, no stemming, averaged
over pairs. ROUGE-N counts clipped n-gram overlap; ROUGE-L uses the longest common subsequence."""

from __future__ import annotations

import re
from collections import Counter

_WORD_RE = re.compile(r"\w+", re.UNICODE)


def rouge_words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


def _f1(overlap: int, n_pred: int, n_ref: int) -> float:
    if overlap == 0 or n_pred == 0 or n_ref == 0:
        return 0.0
    p, r = overlap / n_pred, overlap / n_ref
    return 2 * p * r / (p + r)


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def rouge_n(pred: str, ref: str, n: int) -> float:
    p, r = _ngrams(rouge_words(pred), n), _ngrams(rouge_words(ref), n)
    return _f1(sum((p & r).values()), sum(p.values()), sum(r.values()))


def lcs_length(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(pred: str, ref: str) -> float:
    p, r = rouge_words(pred), rouge_words(ref)
    return _f1(lcs_length(p, r), len(p), len(r))


def rouge(preds: list[str], refs: list[str]) -> dict:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F1 over the pairs, rounded to 4 places."""
    n = len(refs)
    return {
        "rouge1": round(sum(rouge_n(p, r, 1) for p, r in zip(preds, refs)) / n, 4),
        "rouge2": round(sum(rouge_n(p, r, 2) for p, r in zip(preds, refs)) / n, 4),
        "rougeL": round(sum(rouge_l(p, r) for p, r in zip(preds, refs)) / n, 4),
    }
