"""The tokenizer view, in every tab: the input cut into the model's tokens, with their ids, the
special tokens marked, the count against the model's context and the characters per token. Only
the tokenizer is loaded when the model is not."""

from __future__ import annotations

from typing import Any

import gradio as gr

from backend.playground import Playground
from ui.errors import user_facing_errors
from ui.views.inspection_render import tokenization_html


def build_tokenizer_view(
    playground: Playground, model: gr.Dropdown, text: gr.Textbox, prefix: str, *, public: bool = False
) -> gr.HTML:
    """Under a tab's input. `public`: this copy carries the API name /tokenize (one tab has it;
    it serves every registry model)."""
    with gr.Accordion("Tokens: how the model reads this text", open=False, elem_id=f"{prefix}_tokens"):
        button = gr.Button("Show tokens", size="sm", elem_id=f"{prefix}_tokenize_button")
        view = gr.HTML(elem_id=f"{prefix}_tokenization")
        result = gr.JSON(label="Tokens (JSON, as /tokenize returns it)", open=False)

    def tokenize(model: str, text: str) -> tuple[str, dict[str, Any]]:
        """Cut `text` into the tokens of `model` (any registry model): ids, character spans, special
        tokens, the count against the model's context. The last output is the JSON result."""
        with user_facing_errors():
            out = playground.inspector.tokenize(model, text).to_json()
        return tokenization_html(out, text), out

    names = {"api_name": "tokenize"} if public else {"api_visibility": "private"}
    button.click(tokenize, inputs=[model, text], outputs=[view, result], **names)
    return view
