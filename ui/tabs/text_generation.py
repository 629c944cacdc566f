"""The Text Generation tab (decoder models): the shared generative view on Task.TEXT_GENERATION."""

from __future__ import annotations

from backend.playground import Playground
from backend.registry import Task
from ui.controls import RunControls
from ui.identity import Identity
from ui.tabs.generation import GenerationTab, GenerativeTask, build_generation_tab

TEXT_GENERATION = GenerativeTask(
    task=Task.TEXT_GENERATION,
    title="Text generation",
    api_name="text_generation",
    input_name="prompt",
    input_label="Prompt",
    examples=(
        "Return the number of",
        "The socket module provides",
        "This function raises ValueError if",
        "Create a new dictionary with keys from",
    ),
)


def build_text_generation_tab(playground: Playground, controls: RunControls, identity: Identity) -> GenerationTab:
    return build_generation_tab(playground, controls, identity, TEXT_GENERATION, public_views=True)
