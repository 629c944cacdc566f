"""The Text Generation tab: model picker, prompt, Generate / Stop, the decoding panel, and the
streamed output with per-token probabilities, the chart, the metrics and the JSON result."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from backend.capture import TokenStep
from backend.generation import TokenEvent
from backend.params import DecodingParams
from backend.playground import ARCHITECTURE_LESSONS, GenerationRun, Playground
from backend.registry import Task
from ui.controls import RunControls
from ui.decoding_panel import DecodingPanel, build_decoding_panel
from ui.errors import user_facing_errors
from ui.models import describe_model, model_dropdown
from ui.render import metrics_markdown, probability_figure, progress_markdown, tokens_html

#: The page is refreshed at most this often while tokens stream (rebuilding the chart costs
#: milliseconds; refreshing per token would slow generation down).
REFRESH_SECONDS = 0.25

EXAMPLES = [
    "Return the number of",
    "The socket module provides",
    "This function raises ValueError if",
    "Create a new dictionary with keys from",
]


@dataclass(frozen=True)
class TextGenerationTab:
    model: gr.Dropdown
    prompt: gr.Textbox
    generate: gr.Button
    stop: gr.Button
    panel: DecodingPanel
    output: gr.HTML
    metrics: gr.Markdown
    chart: gr.Plot
    sequences: gr.Dataframe
    result: gr.JSON


def _sequence_rows(run: GenerationRun) -> list[list[Any]]:
    return [
        [rank + 1, None if s.score is None else round(s.score, 4), s.finish_reason, s.text]
        for rank, s in enumerate(run.result.sequences)
    ]


def build_text_generation_tab(playground: Playground, controls: RunControls) -> TextGenerationTab:
    task = Task.TEXT_GENERATION
    with gr.Tab("Text generation", id="text_generation"):
        gr.Markdown(f"**Which architecture?** {ARCHITECTURE_LESSONS[task]}")
        with gr.Row():
            with gr.Column(scale=2):
                model, info = model_dropdown(playground, task)
                prompt = gr.Textbox(lines=4, label="Prompt", placeholder="Type a prompt, then Generate")
                with gr.Row():
                    generate = gr.Button("Generate", variant="primary")
                    stop = gr.Button("Stop", variant="stop")
                gr.Examples(EXAMPLES, inputs=[prompt], label="Example prompts")
                panel = build_decoding_panel()
            with gr.Column(scale=3):
                output = gr.HTML(label="Output", value=tokens_html("", []), elem_id="text_generation_output")
                metrics = gr.Markdown(elem_id="text_generation_metrics")
                chart = gr.Plot(label="Probability of each chosen token", elem_id="text_generation_chart")
                sequences = gr.Dataframe(
                    headers=["rank", "score", "finish", "text"],
                    label="Returned sequences (beam search / several sequences)",
                    visible=False,
                    interactive=False,
                    wrap=True,
                )
                result = gr.JSON(label="Result (JSON, as the API returns it)", open=False)
        model.change(lambda name: describe_model(playground, name), model, info, api_visibility="private")

    outputs = [output, chart, metrics, sequences, result]

    def text_generation(
        model: str, prompt: str, request: gr.Request, progress: gr.Progress = gr.Progress(), **decoding: Any
    ) -> Iterator[tuple[Any, ...]]:
        """Generate text with per-token probabilities. Streams; the last output is the JSON result."""
        session = request.session_hash or "anonymous"
        cancel = controls.start(session, task.value)
        steps: list[TokenStep] = []
        start = time.perf_counter()
        last_refresh = 0.0
        try:
            with user_facing_errors():
                events = playground.text_generation(
                    model, prompt, decoding, cancel, progress=lambda fraction, message: progress(fraction, desc=message)
                )
                for event in events:
                    if isinstance(event, TokenEvent):
                        steps.append(event.step)
                        now = time.perf_counter()
                        if now - last_refresh >= REFRESH_SECONDS:
                            last_refresh = now
                            yield (
                                tokens_html(prompt, steps, "generating…"),
                                probability_figure(steps),
                                progress_markdown(len(steps), now - start),
                                gr.skip(),
                                {"status": "running", "new_tokens": len(steps), "text": "".join(s.text for s in steps)},
                            )
                        continue
                    assert isinstance(event, GenerationRun)
                    result = event.result
                    several = len(result.sequences) > 1 or result.params.num_beams > 1
                    yield (
                        tokens_html(prompt, result.steps, result.finish_reason),
                        probability_figure(result.steps, "best sequence" if several else ""),
                        metrics_markdown(
                            result.metrics,
                            seed=result.seed,
                            finish_reason=result.finish_reason,
                            chain=result.chain.describe(),
                            notes=result.notes,
                        ),
                        gr.Dataframe(value=_sequence_rows(event), visible=several),
                        event.to_json(),
                    )
        finally:
            controls.finish(session, task.value, cancel)

    def stop_text_generation(request: gr.Request) -> None:
        """Stop the running generation of this session within one decoding step."""
        controls.stop(request.session_hash or "anonymous", task.value)

    generate.click(
        text_generation,
        inputs=[model, prompt],
        inputs_kwargs={name: panel.components[name] for name in DecodingParams.field_names()},
        outputs=outputs,
        api_name="text_generation",
    )
    stop.click(stop_text_generation, inputs=None, outputs=None, api_name="stop_text_generation", concurrency_limit=None)
    return TextGenerationTab(model, prompt, generate, stop, panel, output, metrics, chart, sequences, result)
