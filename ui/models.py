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
    if spec.remote is not None:
        lines.append(remote_line(spec.remote.engine, spec.remote.probabilities))
    return "\n\n".join(lines)


def remote_line(engine: str, probabilities: str) -> str:
    """What a model on a remote engine shows, and what it cannot."""
    which = "raw (the model's softmax)" if probabilities == "raw" else "processed (after the engine's sampling chain)"
    return (
        f"**Remote engine ({md_text(engine)}):** each token's probability and its alternatives are the engine's "
        f"{which} logprobs; the other distribution is not reported. What needs the model's logits works on local "
        "models only: the stage waterfall, attention and the logit lens (token inspector), the comparison, beams, "
        "the KV cache and the throughput lab. Fields the engine cannot honour are refused by name."
    )


def model_dropdown(
    playground: Playground, task: Task | tuple[Task, ...], describe: Callable[[str | None], str] | None = None,
    prefer: str | None = None, label: str = "Model",
) -> tuple[gr.Dropdown, gr.Markdown]:
    """Build the dropdown and its description, which follows the choice; `prefer` (when it is
    available) or the first available model is preselected. `task` may be several tasks (their
    models in that order). `describe` replaces the standard description (a tab may add a line)."""
    tasks = task if isinstance(task, tuple) else (task,)
    choices = [c for t in tasks for c in playground.model_choices(t)]
    available = [c.name for c in choices if c.available]
    default = prefer if prefer in available else (available[0] if available else (choices[0].name if choices else None))
    dropdown = gr.Dropdown(
        choices=[(c.label, c.name) for c in choices],
        value=default,
        label=label,
        info="name · architecture family (decoder / encoder / encoder-decoder)",
        # names are checked by the registry, whose message lists the valid ones (and is logged)
        allow_custom_value=True,
    )
    describe = describe or (lambda name: describe_model(playground, name))
    info = gr.Markdown(describe(default))
    dropdown.change(describe, dropdown, info, api_visibility="private")  # the description follows the choice
    return dropdown, info
