"""The model picker every tab shares: a dropdown whose entries show the architecture family,
and a line that describes the chosen model (and why it is unavailable, if it is)."""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from backend.errors import UnknownModelError
from backend.playground import Playground
from backend.registry import Task
from ui.render import md_text


def describe_model(playground: Playground, name: str | None) -> str:
    if not name:
        return "No model chosen."
    try:
        spec = playground.registry.spec(name)
    except UnknownModelError as exc:
        return md_text(str(exc))  # it quotes what was typed into the picker
    availability = playground.registry.availability(spec)
    state = "available" if availability.available else "**unavailable**"
    lines = [
        f"**{spec.name}** · {spec.family.value} · source `{spec.source}` · {state}: {availability.reason}",
        spec.description,
    ]
    if not spec.trained:
        lines.append("**untrained: shows the mechanics, not the answers.**")
    return "\n\n".join(lines)


def model_dropdown(
    playground: Playground, task: Task, describe: Callable[[str | None], str] | None = None
) -> tuple[gr.Dropdown, gr.Markdown]:
    """Build the dropdown and its description, which follows the choice; the first available
    model is preselected. `describe` replaces the standard description (a tab may add a line)."""
    choices = playground.model_choices(task)
    default = next((c.name for c in choices if c.available), choices[0].name if choices else None)
    dropdown = gr.Dropdown(
        choices=[(c.label, c.name) for c in choices],
        value=default,
        label="Model",
        info="name · architecture family (decoder / encoder / encoder-decoder)",
        # names are checked by the registry, whose message lists the valid ones (and is logged)
        allow_custom_value=True,
    )
    describe = describe or (lambda name: describe_model(playground, name))
    info = gr.Markdown(describe(default))
    dropdown.change(describe, dropdown, info, api_visibility="private")  # the description follows the choice
    return dropdown, info
