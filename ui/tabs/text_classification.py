"""Text classification: every label of the model with its probability."""

from __future__ import annotations

from typing import Any

import gradio as gr

from backend.playground import Playground
from backend.registry import Task
from ui.charts import score_bars
from ui.errors import user_facing_errors
from ui.forms import TabForm
from ui.identity import Identity
from ui.render import md_text
from ui.tabs.common import notes_markdown, progress_fn, task_header
from ui.views.tokenizer import build_tokenizer_view


def build_text_classification_tab(playground: Playground, identity: Identity) -> dict[str, Any]:
    with gr.Tab("Text classification", id="text_classification", elem_id="tab_text_classification"):
        with gr.Row():
            with gr.Column(scale=2):
                model, _ = task_header(playground, Task.TEXT_CLASSIFICATION)
                text = gr.Textbox(lines=4, label="Text")
                build_tokenizer_view(playground, model, text, "text_classification")
                run = gr.Button("Classify", variant="primary")
                gr.Examples(
                    [["Create a socket object and connect it to a remote host and port."],
                     ["Return the square root of x as a floating point number."],
                     ["I love using Hugging Face Transformers!"]],
                    inputs=[text],
                )
            with gr.Column(scale=3):
                chart = gr.Plot(label="Probability of every label", elem_id="text_classification_chart")
                info = gr.Markdown(elem_id="text_classification_info")
                result = gr.JSON(label="Result (JSON, as the API returns it)", open=False)

    def text_classification(
        model: str, text: str, browser_id: str | None, request: gr.Request, progress: gr.Progress = gr.Progress()
    ) -> tuple[Any, ...]:
        """Classify a text: all labels with their probabilities. The last output is the JSON result."""
        with user_facing_errors():
            out = playground.classify(model, text, progress_fn(progress), Identity.owner(browser_id, request)).to_json()
        labels = [s["label"] for s in out["scores"]]
        scores = [s["score"] for s in out["scores"]]
        top = f"**{md_text(out['label'])}** ({out['score']:.3f}, {md_text(out['function'])})"
        return score_bars(labels, scores, "All labels"), notes_markdown(out["seconds"], out["notes"], top), out

    run.click(text_classification, inputs=[model, text, identity.state], outputs=[chart, info, result], api_name="text_classification")
    form = TabForm("text_classification", (Task.TEXT_CLASSIFICATION.value,), model, {"text": text})
    return {"model": model, "text": text, "run": run, "chart": chart, "result": result, "form": form}
