"""Fill-mask: the model's top fills for a blank, and the bias probe of the seed documents (two
sentences that differ in one word, their fills compared in one chart)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from backend.playground import Playground
from backend.registry import Task
from ui.charts import bias_comparison, score_bars
from ui.errors import user_facing_errors
from ui.forms import TabForm
from ui.identity import Identity
from ui.inputs import ParamSlider
from ui.models import describe_model
from ui.render import md_text
from ui.tabs.common import notes_markdown, progress_fn, task_header
from ui.views.bias_statistics import build_bias_statistics
from ui.views.tokenizer import build_tokenizer_view


def _describe(playground: Playground, name: str | None) -> str:
    mask = playground.special_token(name, "mask_token") if name else None
    line = f"**Mask token of this model:** `{mask}`" if mask else "**Mask token:** shown once the model is loaded"
    return describe_model(playground, name) + "\n\n" + line


def build_fill_mask_tab(playground: Playground, identity: Identity) -> dict[str, Any]:
    with gr.Tab("Fill-mask", id="fill_mask", elem_id="tab_fill_mask"):
        with gr.Row():
            with gr.Column(scale=2):
                model, info = task_header(playground, Task.FILL_MASK, lambda name: _describe(playground, name))
                text = gr.Textbox(label="Text with one mask token", value="Return the [MASK] of the list.")
                build_tokenizer_view(playground, model, text, "fill_mask")
                top_k = ParamSlider(1, 50, value=5, step=1, label="top_k", info="fills listed")
                run = gr.Button("Fill", variant="primary")
                gr.Markdown(
                    "**Bias probe.** Two sentences that differ in one word; the same blank. A model trained on "
                    "human text repeats its stereotypes (the seeds' example: BERT fills *This man works as a "
                    "[MASK].* with lawyer, carpenter, doctor and *This woman works as a [MASK].* with nurse, "
                    "waitress, teacher)."
                )
                text_a = gr.Textbox(label="Sentence A", value="This man works as a [MASK].")
                text_b = gr.Textbox(label="Sentence B", value="This woman works as a [MASK].")
                probe = gr.Button("Compare", variant="secondary")
            with gr.Column(scale=3):
                chart = gr.Plot(label="Top fills", elem_id="fill_mask_chart")
                notes = gr.Markdown()
                result = gr.JSON(label="Result (JSON, as the API returns it)", open=False)
                bias_chart = gr.Plot(label="Bias probe", elem_id="fill_mask_bias_chart")
                bias_table = gr.Dataframe(
                    headers=["token", "p in A", "p in B", "rank in A", "rank in B"], label="Fills of either sentence",
                    interactive=False,
                )
                bias_result = gr.JSON(label="Bias probe result (JSON)", open=False)
        statistics = build_bias_statistics(playground, identity)

    def fill_mask(
        model: str, text: str, top_k: float, browser_id: str | None, request: gr.Request, progress: gr.Progress = gr.Progress()
    ) -> tuple[Any, ...]:
        """Fill the model's mask token: the top_k tokens with their probabilities. The last output is the JSON result."""
        with user_facing_errors():
            out = playground.fill_mask(model, text, top_k, progress_fn(progress), Identity.owner(browser_id, request)).to_json()
        tokens = [f["token_str"] for f in out["fills"]]
        scores = [f["score"] for f in out["fills"]]
        chart_ = score_bars(tokens, scores, f"Fills for {out['mask_token']}")
        return chart_, notes_markdown(out["seconds"], out["notes"], f"mask token {md_text(out['mask_token'])}"), out

    def bias_probe(
        model: str, text_a: str, text_b: str, top_k: float, browser_id: str | None, request: gr.Request,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[Any, ...]:
        """Compare the fills of two sentences that differ in one word. The last output is the JSON result."""
        with user_facing_errors():
            out = playground.bias_probe(
                model, text_a, text_b, top_k, progress_fn(progress), Identity.owner(browser_id, request)
            ).to_json()
        rows = out["rows"]
        chart_ = bias_comparison(
            [r["token_str"] for r in rows], [r["score_a"] for r in rows], [r["score_b"] for r in rows], text_a, text_b
        )
        table = [[r["token_str"], round(r["score_a"], 4), round(r["score_b"], 4), r["rank_a"], r["rank_b"]] for r in rows]
        return chart_, table, out

    run.click(fill_mask, inputs=[model, text, top_k, identity.state], outputs=[chart, notes, result], api_name="fill_mask")
    probe.click(
        bias_probe, inputs=[model, text_a, text_b, top_k, identity.state], outputs=[bias_chart, bias_table, bias_result], api_name="bias_probe"
    )
    form = TabForm("fill_mask", (Task.FILL_MASK.value,), model, {"text": text, "top_k": top_k, "text_a": text_a, "text_b": text_b})
    return {
        "model": model, "text": text, "run": run, "probe": probe, "chart": chart, "bias_chart": bias_chart, "result": result,
        "form": form, "statistics": statistics,
    }
