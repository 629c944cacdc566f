"""Input components whose values the backend checks, not Gradio: an API call with top_p=1.3 or
position=-2 gets the backend's own message ("top_p must be in (0, 1], got 1.3.") instead of
Gradio's generic one, and a failed run is logged. The browser still draws Gradio's own widget
(they are template components)."""

from __future__ import annotations

from typing import Any

import gradio as gr


class ParamSlider(gr.Slider):
    """A slider whose value reaches the handler as sent."""

    is_template = True

    def preprocess(self, payload: float | None) -> float | None:
        return payload


class RawNumber(gr.Number):
    """A number box whose value reaches the handler as sent (None when empty)."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return payload


class RawDropdown(gr.Dropdown):
    """A dropdown whose value reaches the handler as sent (not checked against the choices)."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return payload


class RawRadio(gr.Radio):
    """Radio buttons whose value reaches the handler as sent (not checked against the choices)."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return payload


class RawCheckbox(gr.Checkbox):
    """A checkbox whose value reaches the handler as sent (not turned into a bool)."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return payload
