"""The beam tree: the hypotheses a beam search weighed, rebuilt from what generate() computed.

An observer at the end of the decoding chain sees, at every step, each live beam's sequence and
the log-probabilities the chain gave its next token: exactly what transformers' beam search adds
to the beams' running scores. From those it takes the step's candidates as transformers does
(the top max(2, 1 + number of EOS tokens) x num_beams continuations over all beams by cumulative
score), marks the ones that end there (an EOS token, a stop sequence, or the length limit) among
the best num_beams as finished hypotheses with their length-penalised score
(score / new_tokens ** length_penalty), and learns which candidates were kept from the beams it
is shown at the next step. No second search runs: the tree is what generate() did.

With beam sampling (do_sample and num_beams > 1) the beams are drawn, not taken from the top:
a kept beam outside the top candidates is added to its step as a drawn candidate (rank -1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import LogitsProcessor

#: a stopping criterion as generate() calls it: (sequences, scores) -> one bool per sequence
StoppingCriteriaLike = Callable[[torch.Tensor, Any], torch.Tensor]

#: transformers' score for a beam that does not exist yet (every beam but the first at step 0)
ABSENT = -1.0e9


@dataclass
class BeamNode:
    id: int
    step: int  # 0 = the first new token
    parent: int | None  # the node this candidate extends (None at step 0)
    beam: int  # the live beam (row) it came from at its step
    rank: int  # its place among the step's candidates by cumulative score (-1: drawn by beam sampling)
    token_id: int
    text: str
    logprob: float  # the token's log-probability under the chain: what the search adds
    score: float  # cumulative log-probability of the hypothesis
    kept: bool = False  # a live beam at the next step
    finished: bool = False  # ended here among the best num_beams: a finished hypothesis
    final_score: float | None = None  # finished: score / new_tokens ** length_penalty
    returned: int | None = None  # on the path of the returned sequence with this index (0 = the best)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "step": self.step,
            "parent": self.parent,
            "beam": self.beam,
            "rank": self.rank,
            "token_id": self.token_id,
            "text": self.text,
            "logprob": _finite(self.logprob),
            "score": _finite(self.score),
            "kept": self.kept,
            "finished": self.finished,
            "final_score": None if self.final_score is None else _finite(self.final_score),
            "winner": self.returned == 0,
            "returned": self.returned,
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass
class BeamTree:
    num_beams: int
    candidates_per_step: int
    length_penalty: float
    nodes: list[BeamNode] = field(default_factory=list)
    steps: int = 0

    def winning_path(self) -> list[BeamNode]:
        return [node for node in self.nodes if node.returned == 0]

    def kept_per_step(self) -> list[int]:
        counts = [0] * self.steps
        for node in self.nodes:
            counts[node.step] += node.kept
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "num_beams": self.num_beams,
            "candidates_per_step": self.candidates_per_step,
            "length_penalty": self.length_penalty,
            "steps": self.steps,
            "nodes": [node.to_json() for node in self.nodes],
        }


class BeamObserver(LogitsProcessor):
    """The last processor of a beam search's chain: returns the scores untouched and records
    the step's candidates. `ends(sequences)`: which candidate sequences (prompt included) stop
    there, as generate()'s stopping criteria judge them."""

    def __init__(
        self,
        *,
        num_beams: int,
        start_length: int,
        eos_count: int,
        length_penalty: float,
        ends: Callable[[torch.Tensor], torch.Tensor],
        decode: Callable[[int], str],
    ) -> None:
        self.num_beams = num_beams
        self.start_length = start_length
        self.ends = ends
        self.decode = decode
        self.tree = BeamTree(num_beams, max(2, 1 + eos_count) * num_beams, length_penalty)
        self._best: dict[tuple[int | None, int], int] = {}  # (parent node, token) -> its best-scored node
        self._rows: torch.Tensor | None = None  # the previous step's beams
        self._row_nodes: list[int | None] = []  # the node each of those beams is
        self._candidates: dict[tuple[int, int], int] = {}  # the previous step's (beam, token) -> node
        self._scores: torch.Tensor | None = None  # the previous step's log-probabilities
        self._running: torch.Tensor | None = None  # the previous step's running scores

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = self.tree.steps
        if step == 0:
            # transformers starts every beam from the prompt, all but the first at -1e9
            running = torch.full((input_ids.shape[0],), ABSENT, dtype=torch.float32, device=scores.device)
            running[0] = 0.0
            row_nodes: list[int | None] = [None] * input_ids.shape[0]
        else:
            matched = self._match(input_ids, step)
            row_nodes = list(matched)
            running = torch.tensor([self.tree.nodes[n].score for n in matched], dtype=torch.float32, device=scores.device)
        self._candidates = self._add_candidates(input_ids, scores, running, row_nodes, step)
        self._rows, self._row_nodes, self._scores, self._running = input_ids, row_nodes, scores, running
        self.tree.steps += 1
        return scores

    def _match(self, input_ids: torch.Tensor, step: int) -> list[int]:
        """The node each live beam is: a candidate of the last step it continues. Beams that
        share a sequence (a search that starts with a forced token keeps copies at -1e9) take
        the matching candidates best first, as transformers orders its beams by score."""
        assert self._rows is not None and self._scores is not None and self._running is not None
        same = (input_ids[:, None, :-1] == self._rows[None, :, :]).all(dim=-1).tolist()
        tokens = input_ids[:, -1].tolist()
        used: set[int] = set()
        nodes = []
        for row, token in enumerate(tokens):
            parents = [r for r, equal in enumerate(same[row]) if equal]
            options = [self._candidates.get((r, token)) for r in parents]
            free = [n for n in options if n is not None and n not in used]
            if free:
                node_id = max(free, key=lambda n: self.tree.nodes[n].score)
            else:  # beam sampling drew a continuation outside the top candidates
                parent_row = parents[0]
                logprob = self._scores[parent_row, token]
                total = self._running[parent_row] + logprob
                node_id = self._node(step - 1, parent_row, -1, token, float(logprob), float(total), self._row_nodes[parent_row])
            used.add(node_id)
            self.tree.nodes[node_id].kept = True
            nodes.append(node_id)
        return nodes

    def _add_candidates(
        self, input_ids: torch.Tensor, scores: torch.Tensor, running: torch.Tensor, row_nodes: list[int | None], step: int
    ) -> dict[tuple[int, int], int]:
        vocab = scores.shape[-1]
        accumulated = (scores.float() + running[:, None]).reshape(-1)
        top_scores, top_indices = torch.topk(accumulated, k=self.tree.candidates_per_step)
        beams = (top_indices // vocab).tolist()
        tokens = (top_indices % vocab).tolist()
        candidates = torch.cat((input_ids[beams], torch.tensor(tokens, device=input_ids.device)[:, None]), dim=1)
        ends = self.ends(candidates).tolist()
        new_tokens = input_ids.shape[1] + 1 - self.start_length
        penalised = (top_scores / (new_tokens**self.tree.length_penalty)).tolist()
        logprobs = scores[beams, tokens].tolist()
        made = {}
        for rank, (beam, token, total) in enumerate(zip(beams, tokens, top_scores.tolist())):
            node_id = self._node(step, beam, rank, token, logprobs[rank], total, row_nodes[beam])
            made[(beam, token)] = node_id
            if ends[rank] and rank < self.num_beams:
                node = self.tree.nodes[node_id]
                node.finished, node.final_score = True, penalised[rank]
        return made

    def _node(self, step: int, beam: int, rank: int, token: int, logprob: float, score: float, parent: int | None) -> int:
        node = BeamNode(len(self.tree.nodes), step, parent, beam, rank, token, self.decode(token), logprob, score)
        self.tree.nodes.append(node)
        best = self._best.get((parent, token))
        if best is None or self.tree.nodes[best].score < score:
            self._best[(parent, token)] = node.id
        return node.id

    def finish(
        self,
        returned: Sequence[tuple[Sequence[int], float | None]],
        beam_rows: Sequence[Sequence[int]] | None = None,
        step_scores: Sequence[torch.Tensor] | None = None,
    ) -> BeamTree:
        """Mark the paths of the returned sequences (new tokens and score; 0 = the best).
        `beam_rows` and `step_scores` (generate()'s beam_indices and scores) place a token that
        beam sampling drew outside the top candidates and that no later step showed (its last)."""
        for index, (ids, final) in enumerate(returned):
            parent: int | None = None
            for step, token in enumerate(ids):
                node_id = self._best.get((parent, token))
                if node_id is None:
                    if beam_rows is None or step_scores is None:
                        break
                    row = beam_rows[index][step]
                    logprob = float(step_scores[step][row, token])
                    base = self.tree.nodes[parent].score if parent is not None else (0.0 if row == 0 else ABSENT)
                    node_id = self._node(step, row, -1, token, logprob, base + logprob, parent)
                node = self.tree.nodes[node_id]
                if node.returned is None:
                    node.returned = index
                parent = node_id
            else:
                if parent is not None and final is not None:
                    last = self.tree.nodes[parent]
                    last.finished, last.final_score = True, last.final_score if last.finished else final
        return self.tree


def stop_checker(
    eos_ids: Sequence[int], max_length: int, stop_criteria: StoppingCriteriaLike | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Which sequences end at their last token, as generate()'s stopping criteria judge: an EOS
    token, the length limit (`max_length` tokens in all, prompt included) or a stop string."""
    eos = torch.tensor(list(eos_ids), dtype=torch.long)

    def ends(sequences: torch.Tensor) -> torch.Tensor:
        done = torch.isin(sequences[:, -1], eos.to(sequences.device))
        if sequences.shape[1] >= max_length:
            done = torch.ones_like(done)
        if stop_criteria is not None:
            done = done | stop_criteria(sequences, None)
        return done

    return ends

