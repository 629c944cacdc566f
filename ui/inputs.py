"""Input components whose values the backend checks, not Gradio: an API call with top_p=1.3,
position=-2 or aggregation_strategy="bogus" gets the backend's own message ("top_p must be in
(0, 1], got 1.3.") instead of Gradio's generic one, and the failed run is logged. The browser still
draws Gradio's own widget: each is a template component, whose payload reaches the handler as the
client sent it. (Each class sets is_template and preprocess itself: Gradio looks for them on the
class, and a shared mixin makes the browser fetch it as a custom component, which fails.)"""

from __future__ import annotations

from typing import Any

import gradio as gr


class ParamSlider(gr.Slider):
    """A slider (a number the backend checks)."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return payload


class RawNumber(gr.Number):
    """A number box (None when empty)."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return payload


class RawDropdown(gr.Dropdown):
    """A dropdown (its value is not checked against the choices)."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return payload


class RawRadio(gr.Radio):
    """Radio buttons (the value is not checked against the choices)."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return payload


class RawCheckbox(gr.Checkbox):
    """A checkbox (the value is not turned into a bool)."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return payload


class RawCheckboxGroup(gr.CheckboxGroup):
    """Checkboxes (the values are not checked against the choices)."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return payload
