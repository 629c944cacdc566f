"""Input components whose values the backend checks, not Gradio: an API call with top_p=1.3,
position=-2 or aggregation_strategy="bogus" gets the backend's own message ("top_p must be in
(0, 1], got 1.3.") instead of Gradio's generic one, and the failed run is logged. The browser still
draws Gradio's own widget (they are template components)."""

from __future__ import annotations

from typing import Any

import gradio as gr


class _AsSent:
    """The payload reaches the handler as the client sent it (no range, choice or type check)."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return payload


class ParamSlider(_AsSent, gr.Slider):
    """A slider (a number the backend checks)."""


class RawNumber(_AsSent, gr.Number):
    """A number box (None when empty)."""


class RawDropdown(_AsSent, gr.Dropdown):
    """A dropdown (its value is not checked against the choices)."""


class RawRadio(_AsSent, gr.Radio):
    """Radio buttons (the value is not checked against the choices)."""


class RawCheckbox(_AsSent, gr.Checkbox):
    """A checkbox (the value is not turned into a bool)."""
