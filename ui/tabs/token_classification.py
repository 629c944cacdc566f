"""Token classification (NER): entities highlighted in the text, grouped by the chosen
aggregation strategy, and a table with scores and character offsets."""

from __future__ import annotations

from typing import Any

import gradio as gr

from backend.playground import Playground
from backend.registry import Task
from ui.errors import user_facing_errors
from ui.forms import TabForm
from ui.identity import Identity
from ui.inputs import RawRadio
from ui.tabs.common import notes_markdown, progress_fn, task_header
from ui.views.tokenizer import build_tokenizer_view

STRATEGIES = ["none", "simple", "first", "average", "max"]


def build_token_classification_tab(playground: Playground, identity: Identity) -> dict[str, Any]:
    with gr.Tab("NER", id="token_classification", elem_id="tab_token_classification"):
        with gr.Row():
            with gr.Column(scale=2):
                model, _ = task_header(playground, Task.TOKEN_CLASSIFICATION)
                text = gr.Textbox(lines=4, label="Text")
                build_tokenizer_view(playground, model, text, "token_classification")
                aggregation = RawRadio(
                    STRATEGIES, value="simple", label="Aggregation strategy",
                    info="none = one row per token; simple/first/average/max group tokens into words and entities",
                )
                run = gr.Button("Find entities", variant="primary")
                gr.Examples(
                    [["The json module raises ValueError when loads() gets invalid input."],
                     ["My name is Wolfgang and I live in Berlin."]],
                    inputs=[text],
                )
            with gr.Column(scale=3):
                highlighted = gr.HighlightedText(label="Entities in the text", elem_id="token_classification_text")
                table = gr.Dataframe(
                    headers=["entity", "score", "word", "start", "end"], label="Entities", interactive=False, wrap=True
                )
                notes = gr.Markdown()
                result = gr.JSON(label="Result (JSON, as the API returns it)", open=False)

    def token_classification(
        model: str, text: str, aggregation_strategy: str, browser_id: str | None, request: gr.Request,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[Any, ...]:
        """Find named entities, grouped by the aggregation strategy. The last output is the JSON result."""
        with user_facing_errors():
            out = playground.token_classification(
                model, text, aggregation_strategy, progress_fn(progress), Identity.owner(browser_id, request)
            ).to_json()
        rows = [
            [e.get("entity_group", e.get("entity")), round(e["score"], 4), e["word"], e["start"], e["end"]]
            for e in out["entities"]
        ]
        segments = [(segment, label) for segment, label in out["highlighted"]]
        return segments, rows, notes_markdown(out["seconds"], out["notes"], f"{len(rows)} entities"), out

    run.click(
        token_classification,
        inputs=[model, text, aggregation, identity.state],
        outputs=[highlighted, table, notes, result],
        api_name="token_classification",
    )
    form = TabForm("token_classification", (Task.TOKEN_CLASSIFICATION.value,), model, {"text": text, "aggregation_strategy": aggregation})
    return {"model": model, "text": text, "run": run, "highlighted": highlighted, "result": result, "form": form}
