"""The encoder tasks, one small module each, as pure functions over a `LoadedModel`.

- `classification.classify`: every label of a sequence classifier with its probability.
- `zero_shot.zero_shot`: labels chosen at run time, by an NLI model or by sentence embeddings.
- `token_classification.ner`: entities found token by token, grouped the way a person asks.
- `fill_mask.fill_mask` / `fill_mask.bias_probe`: what a masked language model puts in a blank.
- `feature_extraction.embed`: one vector per sentence and how alike the sentences are.

Each returns a frozen dataclass with `summary` (one line for the run log) and `to_json()`
(plain lists, dicts, strings and floats); `as_task_output` wraps one for `Playground.run_task`,
and `timed` runs a task function and wraps its result in one go:

    playground.run_task(Task.FILL_MASK, model, {"text": text}, {"top_k": 5},
                        lambda loaded: timed(fill_mask, loaded, text, top_k=5))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from backend.playground import TaskOutput
    from backend.registry import LoadedModel


class TaskResult(Protocol):
    """What every task result offers the service."""

    @property
    def summary(self) -> str: ...  # one line, logged as the run's output

    @property
    def input_tokens(self) -> int: ...  # tokens the model read, special tokens included

    def to_json(self) -> dict[str, Any]: ...  # plain JSON types only


def as_task_output(result: TaskResult, seconds: float, input_tokens: int | None = None) -> TaskOutput:
    """Wrap a task result for `Playground.run_task` (summary, JSON result, time, tokens read)."""
    # Imported here, not at the top: backend.playground may import the task modules one day,
    # and a top-level import would then be circular.
    from backend.playground import TaskOutput

    tokens = result.input_tokens if input_tokens is None else input_tokens
    return TaskOutput(summary=result.summary, result=result.to_json(), seconds=seconds, input_tokens=tokens)


def timed(task: Callable[..., TaskResult], loaded: LoadedModel, *args: Any, **kwargs: Any) -> TaskOutput:
    """Run `task(loaded, *args, **kwargs)` and wrap its result, with the seconds it took."""
    start = time.perf_counter()
    result = task(loaded, *args, **kwargs)
    return as_task_output(result, time.perf_counter() - start)
