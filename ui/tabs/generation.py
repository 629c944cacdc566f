"""The generative tabs' shared builder (text generation, summarization, translation): model
picker, input, Generate / Stop, the decoding panel, and the streamed output with per-token
probabilities, the chart, the metrics and the JSON result. One engine, one view; each tab's own
module says only what differs (task, names, examples)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.components.plot import PlotData

from backend.capture import TokenStep
from backend.generation import TokenEvent
from backend.params import DecodingParams
from backend.playground import ARCHITECTURE_LESSONS, GenerationRun, Playground
from backend.registry import Task
from ui.controls import RunControls
from ui.decoding_panel import DecodingPanel, build_decoding_panel
from ui.errors import user_facing_errors
from ui.forms import TabForm
from ui.identity import Identity
from ui.models import describe_model, model_dropdown
from ui.processing import Processed, postprocessed, preprocessed, resolved_annotations
from ui.render import metrics_markdown, probability_json, progress_markdown, tokens_html
from ui.serving import GENERATION_GROUP
from ui.views.beam_tree import beam_tree_json
from ui.views.compare import build_compare_view
from ui.views.cost import cost_html, latency_json
from ui.views.inspector import InspectorView, build_inspector, token_click_js
from ui.views.tokenizer import build_tokenizer_view

#: The page is refreshed at most this often while tokens stream: rebuilding and sending the
#: chart costs milliseconds of the CPU that generation needs, so refreshes go by time, not by
#: token. While streaming the chart leaves out the alternatives; the final update has them.
REFRESH_SECONDS = 0.4
#: The chart, the costlier part to rebuild, send and diff, is refreshed at most this often, and
#: not in the first update: that one carries the first token and nothing that could delay it.
CHART_REFRESH_SECONDS = 1.0
#: With more than this many streams decoding at once, each stream refreshes less often: every
#: REFRESH_SECONDS x (streams / CROWD), and its chart every CHART_REFRESH_SECONDS x that squared.
CROWD = 4

#: The returned-sequences table while tokens stream (it fills in when a beam search ends).
NO_SEQUENCES: list[list[Any]] = []
#: (the returned-sequences table, the beam tree) visible: as a page starts, neither.
NO_EXTRAS = (False, False)


def _shown_if(value: Any, visible: bool, shown: bool) -> Any:
    """A value for a component that is `visible` after this update and `shown` before it: the value
    alone when its visibility stays, else a property update."""
    return value if visible == shown else gr.update(value=value, visible=visible)


def plot_data(chart_json: str) -> PlotData:
    """A chart as the Plot component sends it (made once, then re-sent as it is)."""
    return PlotData(type="plotly", plot=chart_json)


@dataclass(frozen=True)
class GenerativeTask:
    """What differs between the generative tabs."""

    task: Task
    title: str  # the tab's label
    api_name: str  # the Generate action's api_name; also the elem_id prefix
    input_name: str  # the API parameter (and run-log input field) for the text
    input_label: str
    examples: tuple[str, ...]
    extra_info: Callable[[Playground, str | None], str] | None = None  # e.g. the language pair


@dataclass(frozen=True)
class GenerationTab:
    model: gr.Dropdown
    text: gr.Textbox
    generate: gr.Button
    stop: gr.Button
    panel: DecodingPanel
    output: gr.HTML
    metrics: gr.Markdown
    chart: gr.Plot
    sequences: gr.Dataframe
    result: gr.JSON
    inspector: InspectorView
    form: TabForm
    cost: gr.HTML
    latency: gr.Plot
    beam_tree: gr.Plot


def _sequence_rows(run: GenerationRun) -> list[list[Any]]:
    return [
        [rank + 1, None if s.score is None else round(s.score, 4), s.finish_reason, s.text]
        for rank, s in enumerate(run.result.sequences)
    ]


def build_generation_tab(
    playground: Playground, controls: RunControls, identity: Identity, spec: GenerativeTask, *, public_views: bool = False
) -> GenerationTab:
    """`public_views`: this tab's inspector and tokenizer view carry the API names
    (/inspect_token, /inspect_prompt, /tokenize); they serve every generative tab's runs."""
    task, prefix = spec.task, spec.api_name

    def describe(name: str | None) -> str:
        extra = spec.extra_info(playground, name) if spec.extra_info is not None else ""
        return describe_model(playground, name) + (f"\n\n{extra}" if extra else "")

    with gr.Tab(spec.title, id=prefix, elem_id=f"tab_{prefix}"):
        gr.Markdown(f"**Which architecture?** {ARCHITECTURE_LESSONS[task]}")
        with gr.Row():
            with gr.Column(scale=2):
                model, info = model_dropdown(playground, task, describe)
                prompt = gr.Textbox(lines=4, label=spec.input_label, placeholder="Type here, then Generate")
                build_tokenizer_view(playground, model, prompt, prefix, public=public_views)
                with gr.Row():
                    generate = gr.Button("Generate", variant="primary")
                    stop = gr.Button("Stop", variant="stop")
                gr.Examples([[e] for e in spec.examples], inputs=[prompt], label="Examples")
                panel = build_decoding_panel(elem_prefix=prefix)
            with gr.Column(scale=3):
                output = gr.HTML(
                    label="Output",
                    value=tokens_html("", []),
                    elem_id=f"{prefix}_output",
                    js_on_load=token_click_js(f"{prefix}_chart"),
                )
                metrics = gr.Markdown(elem_id=f"{prefix}_metrics")
                chart = gr.Plot(label="Probability of each chosen token", elem_id=f"{prefix}_chart")
                sequences = gr.Dataframe(
                    headers=["rank", "score", "finish", "text"],
                    label="Returned sequences (beam search / several sequences)",
                    visible=False,
                    interactive=False,
                    wrap=True,
                    elem_id=f"{prefix}_sequences",
                )
                beam_tree = gr.Plot(
                    label="Beam tree: the hypotheses beam search weighed (hover a dot)", visible=False,
                    elem_id=f"{prefix}_beam_tree",
                )
                cost = gr.HTML(elem_id=f"{prefix}_cost")
                latency = gr.Plot(
                    label="Time between consecutive tokens (flat with the KV cache, growing without it)",
                    elem_id=f"{prefix}_latency",
                )
                result = gr.JSON(label="Result (JSON, as the API returns it)", open=False)
                # whether this page shows the returned-sequences table and the beam tree now: a run's
                # last update changes their visibility only when it must (a property update makes
                # Gradio build a new component and its config: ~0.7 ms each, alone; a value, nothing)
                extras_shown = gr.State(NO_EXTRAS)
                inspector = build_inspector(playground, identity, prefix, output, public=public_views)
        build_compare_view(playground, controls, identity, task, prefix, model, prompt, inspector, public=public_views)

    outputs = [output, chart, metrics, sequences, inspector.run_id, cost, latency, beam_tree, extras_shown, result]  # the JSON last
    no_sequences = Processed(postprocessed([sequences], [NO_SEQUENCES])[0])  # (the table while tokens stream)
    fields = {spec.input_name: prompt, **{name: panel.components[name] for name in DecodingParams.field_names()}}
    inputs = {"model": model, **fields}

    @resolved_annotations
    def generate_text(
        model: str,
        request: gr.Request,
        browser_id: str | None = None,
        shown: tuple[bool, bool] = NO_EXTRAS,
        progress: gr.Progress = gr.Progress(),
        **values: Any,
    ) -> Iterator[tuple[Any, ...]]:
        values = preprocessed(inputs, {"model": model, **values})  # (the event leaves it to the handler: ui.processing)
        model, prompt = values.pop("model"), values.pop(spec.input_name)
        session = request.session_hash or "anonymous"
        cancel = controls.start(session, task.value)
        steps: list[TokenStep] = []
        start = time.perf_counter()
        last_refresh = last_chart = 0.0
        crowd = 1.0
        chart: PlotData | None = None  # the streamed chart, redrawn every CHART_REFRESH_SECONDS (x crowding)
        try:
            with user_facing_errors():
                events = playground.text_generation(
                    model,
                    prompt,
                    values,
                    cancel,
                    progress=lambda fraction, message: progress(fraction, desc=message),
                    task=task,
                    input_name=spec.input_name,
                    owner=Identity.owner(browser_id, request),
                )
                for event in events:
                    if isinstance(event, TokenEvent):
                        steps.append(event.step)
                        now = time.perf_counter()
                        if now - last_refresh >= REFRESH_SECONDS * crowd:
                            last_refresh = now
                            # the more streams the machine serves, the rarer each one's redraws: they
                            # share the CPU with the decoding (the chart at the end is always complete)
                            crowd = max(1.0, playground.engine.decoding_now() / CROWD)
                            if len(steps) > 1 and now - last_chart >= CHART_REFRESH_SECONDS * crowd**2:
                                last_chart = now
                                chart = plot_data(probability_json(steps, hover=False))
                            # (no gr.skip() here: Gradio treats it as a property update and rebuilds
                            # the component's whole config, ~2 ms each; an unchanged value costs nothing)
                            yield postprocessed(outputs, (
                                tokens_html(prompt, steps, "generating…"),
                                chart,
                                progress_markdown(len(steps), now - start),
                                no_sequences,
                                None,  # no run to inspect until the run has ended
                                "",  # the cost views fill in when the run ends
                                None,
                                None,
                                shown,
                                {"status": "running", "new_tokens": len(steps), "text": "".join(s.text for s in steps)},
                            ))
                        continue
                    assert isinstance(event, GenerationRun)
                    result = event.result
                    out = event.to_json()
                    tree = beam_tree_json(out["beam_tree"])
                    several = len(result.sequences) > 1 or result.params.num_beams > 1
                    now_shown = (several, tree is not None)
                    yield postprocessed(outputs, (
                        tokens_html(prompt, result.steps, result.finish_reason),
                        plot_data(probability_json(result.steps, "best sequence" if several else "")),
                        metrics_markdown(
                            result.metrics,
                            seed=result.seed,
                            finish_reason=result.finish_reason,
                            chain=result.chain.describe(),
                            notes=result.notes,
                        ),
                        _shown_if(_sequence_rows(event), now_shown[0], shown[0]),
                        event.run_id,
                        cost_html(out),
                        plot_data(latency_json([("", out)])),
                        _shown_if(None if tree is None else plot_data(tree), now_shown[1], shown[1]),
                        now_shown,
                        out,
                    ))
        finally:
            controls.finish(session, task.value, cancel)

    def stop_generation(request: gr.Request) -> None:
        controls.stop(request.session_hash or "anonymous", task.value)

    generate_text.__doc__ = f"{spec.title}: streams tokens with their probabilities; the last output is the JSON result."
    stop_generation.__doc__ = f"Stop the running {spec.title.lower()} of this session within one decoding step."
    generate.click(
        generate_text,
        inputs=[model],
        inputs_kwargs={**fields, "browser_id": identity.state, "shown": extras_shown},
        outputs=outputs,
        api_name=spec.api_name,
        concurrency_id=GENERATION_GROUP,  # (its limit is set by ui.serving.enable_queue)
        preprocess=False,  # the handler processes its inputs and outputs itself (ui.processing)
        postprocess=False,
    )
    stop.click(stop_generation, inputs=None, outputs=None, api_name=f"stop_{spec.api_name}", concurrency_limit=None)
    form = TabForm(prefix, (task.value,), model, {spec.input_name: prompt, **panel.components})
    return GenerationTab(
        model, prompt, generate, stop, panel, output, metrics, chart, sequences, result, inspector, form, cost, latency,
        beam_tree,
    )
