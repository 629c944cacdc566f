"""A step's numbers (backend.capture.step_numbers) against softmax and entropy computed here in
float64 with torch: ordinary rows, rows the chain filtered to -inf, a one-token row, and a row
of equal logits."""

from __future__ import annotations

import math

import pytest
import torch

from backend.capture import PendingStep, step_numbers


def rows() -> list[tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    vocab = 4096
    out = []
    for i in range(12):
        raw = torch.randn(vocab) * (1 + i)
        final = raw / 0.7
        if i % 3 == 1:  # top-k 50: the rest at -inf
            final = final.masked_fill(final < final.topk(50).values[-1], -math.inf)
        if i % 3 == 2:  # one token left (a forced token, or top-k 1)
            final = torch.full_like(raw, -math.inf)
            final[int(raw.argmax())] = 0.0
        out.append((raw, final))
    out.append((torch.zeros(vocab), torch.zeros(vocab)))  # every token equally likely
    out.append((torch.full((vocab,), -1e9).index_fill(0, torch.tensor([3]), 50.0), torch.zeros(vocab)))  # one certain token
    return out


def bits(p: torch.Tensor) -> float:
    return float(-(p * torch.where(p > 0, p.log2(), torch.zeros_like(p))).sum())


@pytest.mark.parametrize("k", [1, 5, 20])
def test_step_numbers_equal_softmax_and_entropy_computed_in_float64(k: int) -> None:
    cases = rows()
    steps = [PendingStep(int(raw.argmax()) if i % 2 else 7, raw, final, float(i)) for i, (raw, final) in enumerate(cases)]
    numbers = step_numbers(steps, k)
    for step, got in zip(steps, numbers, strict=True):
        raw_p = torch.softmax(step.raw_logits.double(), -1)
        final_p = torch.softmax(step.final_scores.double(), -1)
        assert got.token_id == step.token_id and got.time == step.time
        assert got.raw_prob == pytest.approx(float(raw_p[step.token_id]), abs=1e-6)
        assert got.prob == pytest.approx(float(final_p[step.token_id]), abs=1e-6)
        assert got.raw_entropy == pytest.approx(bits(raw_p), rel=1e-4, abs=1e-5)
        assert got.entropy == pytest.approx(bits(final_p), rel=1e-4, abs=1e-5)
        assert got.entropy >= 0 and got.raw_entropy >= 0
        expected_top = raw_p.topk(k).values.tolist()
        assert list(got.alternative_raw_probs) == pytest.approx(expected_top, abs=1e-6)
        assert len(got.alternative_ids) == k and len(set(got.alternative_ids)) == k
        assert [float(raw_p[i]) for i in got.alternative_ids] == pytest.approx(expected_top, abs=1e-6)
        assert list(got.alternative_probs) == pytest.approx([float(final_p[i]) for i in got.alternative_ids], abs=1e-6)
