"""Helpers of the inspector tests: the models of its registry, and making a logged run."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from backend.playground import GenerationRun, Playground
from backend.registry import Task
from tests.tiny_seq2seq import CONTEXT

OWNER = "session:inspector-tests"
#: name -> (task, family, context)
MODELS = {
    "stdlib-gpt2": ("text-generation", "decoder", 512),
    "tiny-gpt2": ("text-generation", "decoder", 128),
    "tiny-llama": ("text-generation", "decoder", 128),
    "tiny-bart": ("summarization", "encoder-decoder", CONTEXT),
    "tiny-marian": ("translation", "encoder-decoder", CONTEXT),
    "tiny-t5": ("summarization", "encoder-decoder", CONTEXT),
}


def generate(pg: Playground, model: str, prompt: str, params: Mapping[str, Any], owner: str = OWNER) -> GenerationRun:
    """A logged run of `model` (its registry task), as the tabs make them."""
    task = Task(MODELS[model][0])
    events = list(pg.text_generation(model, prompt, params, threading.Event(), task=task, owner=owner))
    assert isinstance(events[-1], GenerationRun)
    return events[-1]
