"""What every non-generative tab shares: the header (lesson + model picker), the progress
adapter, and the notes line. Each tab's own builder lives in its own module."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gradio as gr

from backend.playground import ARCHITECTURE_LESSONS, Playground
from backend.registry import ProgressFn, Task
from ui.models import model_dropdown
from ui.render import md_text


def task_header(
    playground: Playground, task: Task, describe: Callable[[str | None], str] | None = None
) -> tuple[gr.Dropdown, gr.Markdown]:
    """The seeds' lesson for this task, then the model picker with its description."""
    gr.Markdown(f"**Which architecture?** {ARCHITECTURE_LESSONS[task]}")
    return model_dropdown(playground, task, describe)


def progress_fn(progress: gr.Progress) -> ProgressFn:
    return lambda fraction, message: progress(fraction, desc=message)


def notes_markdown(seconds: float, notes: Sequence[str], extra: str = "") -> str:
    """`extra` is Markdown: whatever in it a person or a model wrote goes through md_text."""
    parts = [f"{seconds * 1000:.0f} ms"]
    if extra:
        parts.append(extra)
    lines = [" · ".join(parts)]
    lines.extend(f"**note:** {md_text(note)}" for note in notes)
    return "\n\n".join(lines)
