"""The token inspector panel of a generative tab: click a generated token (or a point of the
probability chart) and see why it came out: every stage of the run's chain, the attention of
that position, the logit lens; and the prompt's surprisal. One builder, used by the text
generation, summarization and translation tabs; the text generation tab's copy carries the
public API names (/inspect_token, /inspect_prompt), which serve runs of every generative tab."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from backend.inspect.service import DEFAULT_TOP_N, MAX_TOP_N
from backend.playground import Playground
from ui.errors import user_facing_errors
from ui.identity import Identity
from ui.inputs import ParamSlider, RawNumber
from ui.views.inspection_render import (
    STAGE_HEADERS,
    attention_html,
    head_choices,
    inspection_summary,
    lens_figure,
    stage_rows,
    stage_sentences_html,
    surprisal_html,
    waterfall_figure,
)

HELP = (
    "**Inspect a token.** Click any generated token in the output (or a point of the chart) once the run "
    "has ended. You see the model's raw distribution and what each stage of this run's decoding chain "
    "did to it, which earlier tokens this position attended to, and the logit lens: the guess read from "
    "every layer. The numbers are recomputed from the model in one forward pass over the run's own tokens."
)


def token_click_js(chart_id: str | None = None) -> str:
    """js_on_load of a token output: a click on a token, or on a point of the probability chart
    (when there is one), triggers the output's click event with the token's position."""
    clicks = """
element.addEventListener('click', (event) => {
  const token = event.target.closest('span.tok');
  if (token && token.dataset.pos !== undefined) trigger('click', {position: Number(token.dataset.pos)});
});
"""
    if chart_id is None:
        return clicks
    return clicks + f"""
setInterval(() => {{
  const plot = document.querySelector('#{chart_id} .js-plotly-plot');
  if (plot && typeof plot.on === 'function' && !plot.__inspectorHooked) {{
    plot.__inspectorHooked = true;
    plot.on('plotly_click', (data) => {{
      if (data && data.points && data.points.length) trigger('click', {{position: Number(data.points[0].x)}});
    }});
  }}
}}, 700);
"""


@dataclass(frozen=True)
class InspectorView:
    run_id: gr.Number
    position: gr.Number
    inspect: gr.Button
    summary: gr.HTML
    waterfall: gr.Plot
    result: gr.JSON
    #: connect(output, run_id): clicks on the tokens of another run's output (a gr.HTML drawn by
    #: ui.render.tokens_html), whose run id `run_id` holds, open them in this inspector
    connect: Callable[[gr.HTML, gr.components.Component], None]


def build_inspector(playground: Playground, identity: Identity, prefix: str, output: gr.HTML, *, public: bool) -> InspectorView:
    """Inside a generative tab's output column. `output` is the tab's token HTML (its clicks
    open the inspector); `public`: this copy's events carry the API names."""
    with gr.Accordion("Inspect a token: why did it come out?", open=True, elem_id=f"{prefix}_inspector"):
        gr.Markdown(HELP)
        with gr.Row():
            run_id = RawNumber(label="run", info="filled in when a run ends", elem_id=f"{prefix}_inspect_run")
            position = RawNumber(value=0, label="position", info="0 = the first new token", elem_id=f"{prefix}_inspect_position")
            top_n = ParamSlider(1, MAX_TOP_N, value=DEFAULT_TOP_N, step=1, label="top_n", info="candidates per stage")
            layer = RawNumber(value=-1, label="layer", info="attention layer: 0 = the first, -1 = the last")
        inspect = gr.Button("Inspect", elem_id=f"{prefix}_inspect_button")
        summary = gr.HTML(elem_id=f"{prefix}_inspect_summary")
        waterfall = gr.Plot(label="Stage waterfall", elem_id=f"{prefix}_waterfall")
        sentences = gr.HTML(elem_id=f"{prefix}_stage_sentences")
        table = gr.Dataframe(headers=STAGE_HEADERS, label="Per stage", interactive=False, elem_id=f"{prefix}_stage_table")
        head = gr.Dropdown(choices=[("mean of heads", "mean")], value="mean", label="attention head", interactive=True)
        attention = gr.HTML(elem_id=f"{prefix}_attention")
        lens = gr.Plot(label="Logit lens", elem_id=f"{prefix}_lens")
        result = gr.JSON(label="Inspection (JSON, as /inspect_token returns it)", open=False)
        with gr.Accordion("Prompt surprisal: how expected was each prompt token?", open=True):
            gr.Markdown(
                "Each prompt token coloured by its probability given the tokens before it (red = surprising), "
                "with the prompt's perplexity; hover a token to see what the model expected there instead."
            )
            surprisal_button = gr.Button("Show prompt surprisal", elem_id=f"{prefix}_surprisal_button")
            surprisal = gr.HTML(elem_id=f"{prefix}_surprisal")
            surprisal_result = gr.JSON(label="Prompt surprisal (JSON, as /inspect_prompt returns it)", open=False)
    last = gr.State(None)  # the last inspection's JSON: the head selector redraws from it

    def inspect_token(
        run_id: Any, position: Any, top_n: Any, layer: Any, browser_id: str | None, request: gr.Request
    ) -> tuple[Any, ...]:
        """Why the token at `position` (0 = first new token) of run `run_id` came out: every stage of its
        decoding chain, its attention over the context, the logit lens. The last output is the JSON result."""
        with user_facing_errors():
            found = playground.inspector.inspect_token(Identity.owner(browser_id, request), run_id, position, top_n, layer)
        out = found.to_json()
        return (
            inspection_summary(out),
            waterfall_figure(out),
            stage_sentences_html(out),
            stage_rows(out),
            gr.Dropdown(choices=head_choices(out), value="mean"),
            attention_html(out, "mean"),
            lens_figure(out),
            out,  # kept in the session for the head selector
            out,
        )

    def inspect_clicked(
        run_id: Any, top_n: Any, layer: Any, browser_id: str | None, event: gr.EventData, request: gr.Request
    ) -> tuple[Any, ...]:
        position = getattr(event, "position", None)
        if run_id is None:
            raise gr.Error("Tokens can be inspected once the run has ended (its run id then appears here).", print_exception=False)
        return (position, *inspect_token(run_id, position, top_n, layer, browser_id, request))

    def redraw_attention(head: str, inspection: dict[str, Any] | None) -> str:
        return "" if inspection is None else attention_html(inspection, head)

    def inspect_prompt(run_id: Any, browser_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        """How probable each prompt token of run `run_id` was given the tokens before it, and the prompt's
        perplexity (decoder models). The last output is the JSON result."""
        with user_facing_errors():
            found = playground.inspector.inspect_prompt(Identity.owner(browser_id, request), run_id)
        out = found.to_json()
        return surprisal_html(out), out

    outputs = [summary, waterfall, sentences, table, head, attention, lens, last, result]
    names = {"api_name": "inspect_token"} if public else {"api_visibility": "private"}
    inspect.click(inspect_token, inputs=[run_id, position, top_n, layer, identity.state], outputs=outputs, **names)
    output.click(
        inspect_clicked, inputs=[run_id, top_n, layer, identity.state], outputs=[position, *outputs], api_visibility="private"
    )
    head.input(redraw_attention, inputs=[head, last], outputs=[attention], api_visibility="private")
    prompt_names = {"api_name": "inspect_prompt"} if public else {"api_visibility": "private"}
    surprisal_button.click(
        inspect_prompt, inputs=[run_id, identity.state], outputs=[surprisal, surprisal_result], **prompt_names
    )
    def inspect_elsewhere(
        other_run: Any, top_n: Any, layer: Any, browser_id: str | None, event: gr.EventData, request: gr.Request
    ) -> tuple[Any, ...]:
        return (other_run, *inspect_clicked(other_run, top_n, layer, browser_id, event, request))

    def connect(tokens: gr.HTML, other_run: gr.components.Component) -> None:
        tokens.click(
            inspect_elsewhere,
            inputs=[other_run, top_n, layer, identity.state],
            outputs=[run_id, position, *outputs],
            api_visibility="private",
        )

    return InspectorView(run_id, position, inspect, summary, waterfall, result, connect)

