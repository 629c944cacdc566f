"""Bias statistics in the Fill-mask tab: a list of occupations in two sentences that differ in one
word, each occupation's lean as a sorted bar, and the effect size with its permutation p-value
(backend/tasks/bias_statistics.py). Works on fill-mask models and on sentence-embedding models,
so the lesson shows offline on the real all-MiniLM-L6-v2."""

from __future__ import annotations

from typing import Any

import gradio as gr

from backend.playground import BIAS_TASKS, Playground
from backend.tasks.bias_statistics import DEFAULT_OCCUPATIONS, DEFAULT_TEMPLATE_A, DEFAULT_TEMPLATE_B
from ui.charts import association_bars
from ui.errors import user_facing_errors
from ui.identity import Identity
from ui.models import model_dropdown
from ui.render import md_text
from ui.tabs.common import progress_fn

BIAS_STATISTICS_HELP = (
    "**Bias statistics.** One sentence pair can lean by chance; a whole list of occupations cannot: each one "
    "is put into both sentences and scored (positive: closer to A), then the lean is summarised by an effect "
    "size and a permutation p-value."
)
PREFERRED_MODEL = "all-MiniLM-L6-v2 (embedded)"

METHOD_LINES = {
    "fill-mask": "association = P_A(occupation as the fill) − P_B(occupation as the fill), its word pieces masked",
    "sentence-embedding": "association = cos(occupation, sentence A) − cos(occupation, sentence B), sentence embeddings",
}


def summary_markdown(out: dict[str, Any]) -> str:
    """The effect size, the p-value and what they mean, from the JSON result."""
    flips = f"all {out['flips']:,} sign flips" if out["exact"] else f"{out['flips']:,} random sign flips"
    leans = "A" if out["effect_size"] > 0 else "B"
    rows = out["rows"]
    return "\n\n".join([
        f"**Effect size {out['effect_size']:+.2f}** (mean association / its standard deviation) · "
        f"**p = {out['p_value']:.4g}** ({flips}: A and B swapped per occupation) · mean association "
        f"{out['mean_association']:+.4f}: on average the occupations lean to **{leans}**.",
        f"Most A: {md_text(rows[0]['occupation'])} ({rows[0]['association']:+.4f}) · most B: "
        f"{md_text(rows[-1]['occupation'])} ({rows[-1]['association']:+.4f}).",
        f"Method: {METHOD_LINES[out['method']]}. Compare occupations with each other: the mean also holds how "
        "close each template sits to occupation words in general.",
    ])


def build_bias_statistics(playground: Playground, identity: Identity) -> dict[str, Any]:
    """The accordion and its /bias_statistics endpoint; call inside the Fill-mask tab."""
    with gr.Accordion("Bias statistics: many occupations, one effect size", open=False, elem_id="bias_statistics"):
        gr.Markdown(BIAS_STATISTICS_HELP)
        with gr.Row():
            with gr.Column(scale=2):
                model, _info = model_dropdown(
                    playground, BIAS_TASKS, prefer=PREFERRED_MODEL, label="Model (fill-mask or sentence embeddings)"
                )
                template_a = gr.Textbox(label="Template A ({} = the occupation)", value=DEFAULT_TEMPLATE_A,
                                        elem_id="bias_template_a")
                template_b = gr.Textbox(label="Template B", value=DEFAULT_TEMPLATE_B, elem_id="bias_template_b")
                occupations = gr.Textbox(label="Occupations, one per line", value="\n".join(DEFAULT_OCCUPATIONS),
                                         lines=8, max_lines=30, elem_id="bias_occupations")
                run = gr.Button("Score every occupation", variant="secondary", elem_id="bias_statistics_run")
            with gr.Column(scale=3):
                summary = gr.Markdown(elem_id="bias_statistics_summary")
                chart = gr.Plot(label="Association per occupation", elem_id="bias_statistics_chart")
                result = gr.JSON(label="Bias statistics (JSON, as the API returns it)", open=False)

    def bias_statistics(
        model: str, template_a: str, template_b: str, occupations: str, browser_id: str | None, request: gr.Request,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[Any, ...]:
        """Score each occupation (one per line) in both templates ({} = the occupation): rows of
        {occupation, association} (positive leans to template A), effect_size and p_value. The last
        output is the JSON result."""
        with user_facing_errors():
            out = playground.bias_statistics(
                model, template_a, template_b, occupations, progress_fn(progress), Identity.owner(browser_id, request)
            ).to_json()
        x_title = "P_A − P_B" if out["method"] == "fill-mask" else "cos(occupation, A) − cos(occupation, B)"
        rows = out["rows"]
        figure = association_bars([r["occupation"] for r in rows], [r["association"] for r in rows],
                                  out["template_a"], out["template_b"], x_title)
        return summary_markdown(out), figure, out

    run.click(
        bias_statistics, inputs=[model, template_a, template_b, occupations, identity.state],
        outputs=[summary, chart, result], api_name="bias_statistics",
    )
    return {"model": model, "template_a": template_a, "template_b": template_b, "occupations": occupations,
            "run": run, "summary": summary, "chart": chart, "result": result}
