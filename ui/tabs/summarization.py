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
    examples=(  # the embedded summarizer writes a Debian package's one-line synopsis
        "GNU Wget is a free software package for retrieving files using HTTP, HTTPS and FTP, the most widely "
        "used Internet protocols. It is a non-interactive commandline tool, so it may easily be called from "
        "scripts, cron jobs, terminals without X-Windows support, etc.",
        "This package contains the header files and static libraries needed to compile applications that use "
        "libpng, the official PNG reference library. PNG is an extensible file format for the lossless, "
        "portable, well-compressed storage of raster images.",
        "Return a new sorted list from the items in iterable. Has two optional arguments which must be "
        "specified as keyword arguments. key specifies a function of one argument that is used to extract "
        "a comparison key from each element.",
    ),
)


def build_summarization_tab(playground: Playground, controls: RunControls, identity: Identity) -> GenerationTab:
    return build_generation_tab(playground, controls, identity, SUMMARIZATION)
