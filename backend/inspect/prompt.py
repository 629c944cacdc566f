"""Prompt surprisal: how probable each prompt token was given the tokens before it, read from
one forward pass of a decoder over the prompt. The perplexity is exp of the mean negative
log-likelihood of the tokens the model predicted (every token but the first, which has nothing
before it)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from backend.inspect.records import Candidate, PromptSurprisal, PromptToken

#: Alternatives listed per prompt token (what the model expected there instead).
ALTERNATIVES = 5
#: Most surprising tokens named in the result.
MOST_SURPRISING = 5
FIRST_TOKEN_NOTE = "the first token has nothing before it: the model gives it no probability"


def surprisal(
    run_id: int, input_ids: tuple[int, ...], logits: torch.Tensor, decode: Callable[[int], str]
) -> PromptSurprisal:
    """`logits` (tokens, vocab): row i is the model's prediction for token i + 1."""
    first = PromptToken(int(input_ids[0]), decode(int(input_ids[0])), None, None, ())
    if len(input_ids) == 1:
        return PromptSurprisal(run_id, (first,), None, (), (FIRST_TOKEN_NOTE, "a one-token prompt has no perplexity"))
    targets = torch.tensor(input_ids[1:], device=logits.device)
    logp = torch.log_softmax(logits[:-1].double(), dim=-1)
    predicted = logp.gather(1, targets[:, None])[:, 0]
    ranks = (logp > predicted[:, None]).sum(dim=-1) + 1
    top = logp.topk(min(ALTERNATIVES, logp.shape[-1]), dim=-1)
    tokens = [first]
    for i, token_id in enumerate(input_ids[1:]):
        alternatives = tuple(
            Candidate(int(t), decode(int(t)), math.exp(float(lp))) for t, lp in zip(top.indices[i], top.values[i])
        )
        tokens.append(PromptToken(int(token_id), decode(int(token_id)), float(predicted[i]), int(ranks[i]), alternatives))
    perplexity = math.exp(-float(predicted.mean()))
    order = sorted(range(1, len(tokens)), key=lambda i: float(predicted[i - 1]))
    return PromptSurprisal(run_id, tuple(tokens), perplexity, tuple(order[:MOST_SURPRISING]), (FIRST_TOKEN_NOTE,))
