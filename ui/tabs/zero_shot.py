"""Zero-shot classification: labels typed at run time, scored by an NLI model (each label as a
hypothesis) or by sentence-embedding similarity, as the model's registry entry says."""

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


def _method(playground: Playground, name: str | None) -> str:
    spec = playground.registry.specs.get(name or "")
    if spec is None:
        return ""
    if spec.options.get("method") == "similarity":
        return "**Method:** embedding similarity: cosine between the text's embedding and each label's."
    return "**Method:** NLI: each label becomes a hypothesis; the score is the probability of entailment."


DEFAULT_TEMPLATE = "This example is {}."


def _template(playground: Playground, name: str | None) -> str:
    """The model's preferred hypothesis template (models.yaml options), else the pipeline's."""
    spec = playground.registry.specs.get(name or "")
    return str(spec.options.get("hypothesis_template", DEFAULT_TEMPLATE)) if spec is not None else DEFAULT_TEMPLATE


def build_zero_shot_tab(playground: Playground, identity: Identity) -> dict[str, Any]:
    from ui.models import describe_model

    with gr.Tab("Zero-shot", id="zero_shot_classification", elem_id="tab_zero_shot_classification"):
        with gr.Row():
            with gr.Column(scale=2):
                model, info = task_header(
                    playground,
                    Task.ZERO_SHOT_CLASSIFICATION,
                    lambda name: describe_model(playground, name) + "\n\n" + _method(playground, name),
                )
                text = gr.Textbox(lines=3, label="Text")
                build_tokenizer_view(playground, model, text, "zero_shot_classification")
                labels = gr.Textbox(label="Candidate labels (comma-separated)", placeholder="sports, politics, cooking")
                template = gr.Textbox(value=_template(playground, model.value), label="Hypothesis template ({} = the label)")
                multi_label = gr.Checkbox(value=False, label="Multi-label (each label scored on its own)")
                run = gr.Button("Classify", variant="primary")
                gr.Examples(
                    [["The striker scored twice in the final minutes.", "sports, politics, cooking"],
                     ["Open the file and read its lines into a list.", "file handling, networking, mathematics"]],
                    inputs=[text, labels],
                )
            with gr.Column(scale=3):
                chart = gr.Plot(label="Score of each label", elem_id="zero_shot_chart")
                notes = gr.Markdown(elem_id="zero_shot_info")
                result = gr.JSON(label="Result (JSON, as the API returns it)", open=False)
        model.change(lambda name: _template(playground, name), model, template, api_visibility="private")

    def zero_shot_classification(
        model: str, text: str, candidate_labels: str, hypothesis_template: str, multi_label: bool,
        browser_id: str | None, request: gr.Request, progress: gr.Progress = gr.Progress(),
    ) -> tuple[Any, ...]:
        """Score candidate labels for a text without training. The last output is the JSON result."""
        with user_facing_errors():
            out = playground.zero_shot(
                model, text, candidate_labels, hypothesis_template, multi_label, progress_fn(progress),
                Identity.owner(browser_id, request),
            ).to_json()
        title = f"{out['method']} · {'multi-label' if out['multi_label'] else 'single-label (scores sum to 1)'}"
        return (
            score_bars(out["labels"], out["scores"], title, "score"),
            notes_markdown(out["seconds"], out["notes"], f"best: **{md_text(out['labels'][0])}**"),
            out,
        )

    run.click(
        zero_shot_classification,
        inputs=[model, text, labels, template, multi_label, identity.state],
        outputs=[chart, notes, result],
        api_name="zero_shot_classification",
    )
    fields = {"text": text, "labels": labels, "hypothesis_template": template, "multi_label": multi_label}
    form = TabForm("zero_shot_classification", (Task.ZERO_SHOT_CLASSIFICATION.value,), model, fields)
    return {"model": model, "text": text, "labels": labels, "run": run, "chart": chart, "result": result, "form": form}
