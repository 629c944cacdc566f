"""Replay: one of a person's runs run again with the same model, inputs, parameters as applied,
and seed; whether it gave the same tokens (a generation) or the same result (another task)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backend.history import owned_run
from backend.inspect.service import GENERATIVE_TASKS
from backend.registry import Task

if TYPE_CHECKING:
    from backend.playground import Playground, TaskRun


@dataclass(frozen=True)
class Replay:
    """A run run again: whether it gave the same tokens (or result) as the original."""

    original_id: int
    run_id: int
    identical: bool
    first_difference: int | None  # a generation's first position where the token ids differ
    run: dict[str, Any]  # the replay's own result, as its endpoint returns it

    def to_json(self) -> dict[str, Any]:
        return {
            "replay_of": self.original_id,
            "run_id": self.run_id,
            "identical": self.identical,
            "first_difference": self.first_difference,
            "run": self.run,
        }


def _without_timing(value: Any) -> Any:
    """A task's result without its wall-clock fields (they differ from one run to the next)."""
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k not in ("seconds", "total_s")}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def replay_run(playground: Playground, owner: str, run_id: object, cancel: threading.Event | None = None) -> Replay:
    """Run one of the owner's runs again: same model, inputs, parameters as applied, and seed.
    The replay is a new logged run; `identical` says whether it gave the same tokens (a
    generation) or the same result (another task), and where a generation first differs."""
    with playground.runlog.session() as session:
        original = owned_run(session, run_id, owner, shared=playground.settings.shared_history)
        task, model, inputs, params = Task(original.task), original.model, dict(original.input), dict(original.params)
        before_ids = [step.token_id for step in original.steps]
        before_result = original.result
        rid = original.id
    if task in GENERATIVE_TASKS:
        (input_name, text), = inputs.items()
        events = playground.text_generation(
            model, text, params, cancel or threading.Event(), task=task, input_name=input_name, owner=owner
        )
        run = list(events)[-1]  # the GenerationRun, after the TokenEvents
        after_ids = list(run.result.sequences[0].token_ids)
        differs = next((i for i, (a, b) in enumerate(zip(before_ids, after_ids)) if a != b), None)
        if differs is None and len(before_ids) != len(after_ids):
            differs = min(len(before_ids), len(after_ids))
        return Replay(rid, run.run_id, differs is None, differs, run.to_json())
    again = _rerun(playground, task, model, inputs, params, owner)
    same = _without_timing(before_result) == _without_timing(again.output.result)
    return Replay(rid, again.run_id, same, None, again.to_json())

def _rerun(playground: Playground, task: Task, model: str, i: Mapping[str, Any], p: Mapping[str, Any], owner: str) -> TaskRun:
    """An encoder task run again from what its log row holds."""
    if task is Task.TEXT_CLASSIFICATION:
        return playground.classify(model, i["text"], owner=owner)
    if task is Task.ZERO_SHOT_CLASSIFICATION:
        return playground.zero_shot(model, i["text"], i["labels"], p["hypothesis_template"], p["multi_label"], owner=owner)
    if task is Task.TOKEN_CLASSIFICATION:
        # (runs logged before the parameter took the API's name call it "aggregation")
        return playground.token_classification(model, i["text"], p.get("aggregation_strategy", p.get("aggregation")), owner=owner)
    if task is Task.QUESTION_ANSWERING:
        return playground.question_answering(  # (runs logged before these two options had neither)
            model, i["question"], i["context"], p["top_n"], p["max_answer_len"], p["doc_stride"], owner=owner,
            align_to_words=p.get("align_to_words", False),
            handle_impossible_answer=p.get("handle_impossible_answer", False),
        )
    if task is Task.FILL_MASK and p.get("probe") == "bias":
        return playground.bias_probe(model, i["text_a"], i["text_b"], p["top_k"], owner=owner)
    if task is Task.FILL_MASK:
        return playground.fill_mask(model, i["text"], p["top_k"], owner=owner)
    return playground.feature_extraction(model, i["sentences"], p["pooling"], owner=owner)
