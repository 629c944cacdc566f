"""What "Load into the tab" fills: each tab's model picker and inputs, named as the run log names
a run's input and parameters. A tab builder returns its TabForm; the History tab fills the one
whose tasks include a run's task."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr


def _stop_sequences_text(sequences: list[str]) -> str:
    """Stop sequences back into the panel's text: one per line, newlines and tabs as escapes."""
    escape = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
    return "\n".join("".join(escape.get(c, c) for c in sequence) for sequence in sequences)


def form_value(name: str, value: Any) -> Any:
    """A logged value as its input shows it."""
    if name == "stop_sequences" and isinstance(value, list):
        return _stop_sequences_text(value)
    if name == "seed":
        return "" if value is None else str(value)
    if name == "doc_stride" and value is None:
        return 0
    return value


@dataclass(frozen=True)
class TabForm:
    tab_id: str
    tasks: tuple[str, ...]  # the task names whose runs this tab can take
    model: gr.Dropdown
    fields: Mapping[str, gr.components.Component]  # by the run log's input and parameter names

    @property
    def components(self) -> list[gr.components.Component]:
        return [self.model, *self.fields.values()]

    def values(self, run: Mapping[str, Any]) -> list[Any]:
        """The run's model, inputs and parameters for `components`; fields the run lacks keep
        what the person has there (a fill-mask run leaves the bias probe's sentences alone)."""
        logged = {**(run.get("params") or {}), **(run.get("input") or {})}
        out: list[Any] = [run["model"]]
        for name in self.fields:
            out.append(form_value(name, logged[name]) if name in logged else gr.skip())
        return out
