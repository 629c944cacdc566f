"""The Summarization tab (encoder-decoder): the shared generative view on Task.SUMMARIZATION."""

from __future__ import annotations

from backend.playground import Playground
from backend.registry import Task
from ui.controls import RunControls
from ui.identity import Identity
from ui.tabs.generation import GenerationTab, GenerativeTask, build_generation_tab

SUMMARIZATION = GenerativeTask(
    task=Task.SUMMARIZATION,
    title="Summarization",
    api_name="summarization",
    input_name="text",
    input_label="Text to summarize",
    examples=(
        "Return a new sorted list from the items in iterable. Has two optional arguments which must be "
        "specified as keyword arguments. key specifies a function of one argument that is used to extract "
        "a comparison key from each element. reverse is a boolean value; if set to True, the list elements "
        "are sorted as if each comparison were reversed.",
        "Open file and return a corresponding file object. If the file cannot be opened, an OSError is "
        "raised. file is a path-like object giving the pathname of the file to be opened; mode is an "
        "optional string that specifies the mode in which the file is opened.",
    ),
)


def build_summarization_tab(playground: Playground, controls: RunControls, identity: Identity) -> GenerationTab:
    return build_generation_tab(playground, controls, identity, SUMMARIZATION)
