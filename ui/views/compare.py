"""The compare view of a generative tab: two decoding panels side by side (B starts as a copy of
A), one Generate for both, on the tab's model and input, with one seed unless it is unlocked.
Both runs stream side by side; when both have ended the first position where they part is
outlined in both outputs and explained (both chains' stage-by-stage probabilities of A's token
and of B's token, and one sentence naming the difference), next to the two runs' metrics and
their time between tokens. A click on a token of either output opens it in the tab's inspector.
One builder for the text generation, summarization and translation tabs; the text generation
tab's copy carries the API name /compare (it serves models of all three tasks)."""

from __future__ import annotations

import html
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.components.plot import PlotData

from backend.capture import TokenStep
from backend.compare import CompareEvent, Comparison
from backend.params import DecodingParams
from backend.playground import Playground
from backend.registry import Task
from ui.controls import RunControls
from ui.decoding_panel import DecodingPanel, build_decoding_panel
from ui.errors import user_facing_errors
from ui.identity import Identity
from ui.render import tokens_html
from ui.serving import GENERATION_GROUP
from ui.views.cost import latency_json
from ui.views.inspector import InspectorView, token_click_js

HELP = (
    "**Compare two settings.** Change a knob in B (it starts as a copy of A) and generate both on the "
    "same model, input and seed. Where their tokens first differ is outlined in red in both outputs, "
    "with both chains' stage-by-stage probabilities of each side's token and a sentence that names the "
    "stage that made them part. Click a token of either output to inspect it in the inspector above."
)
#: Streaming refreshes of the two outputs, at most this often.
REFRESH_SECONDS = 0.4
STAGE_HEADERS = ["chain", "stage", "p(A's token)", "p(B's token)"]
METRIC_HEADERS = ["", "A", "B"]


@dataclass(frozen=True)
class CompareView:
    panel_a: DecodingPanel
    panel_b: DecodingPanel
    shared_seed: gr.Checkbox
    generate: gr.Button
    output_a: gr.HTML
    output_b: gr.HTML
    summary: gr.HTML
    stages: gr.Dataframe
    metrics: gr.Dataframe
    result: gr.JSON


def collect_params(names: tuple[str, ...], values: tuple[Any, ...], shared_seed: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both panels' values as the API's params_a and params_b: with the seed shared, B has no seed
    of its own (it takes A's); unlocked and left empty, B gets a random one of its own."""
    n = len(names)
    a, b = dict(zip(names, values[:n])), dict(zip(names, values[n : 2 * n]))
    if shared_seed:
        b.pop("seed", None)
    elif b.get("seed") is None or not str(b["seed"]).strip():
        b["seed"] = secrets.randbelow(2**31)
    return a, b


def _p(value: float | None) -> str:
    return "" if value is None else (f"{value:.4f}" if value >= 1e-4 or value == 0 else f"{value:.1e}")


def stage_rows(comparison: dict[str, Any]) -> list[list[Any]]:
    divergence = comparison.get("first_divergence")
    if divergence is None:
        return []
    return [
        [side.upper(), stage["label"], _p(stage["a_token"]), _p(stage["b_token"])]
        for side in ("a", "b")
        for stage in divergence["stages"][side]
    ]


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f} ms"


def metric_rows(comparison: dict[str, Any]) -> list[list[Any]]:
    a, b = comparison["a"], comparison["b"]

    def row(name: str, get: Any) -> list[Any]:
        return [name, get(a), get(b)]

    def memory(run: dict[str, Any]) -> str:
        peak = run["metrics"].get("peak_memory_bytes")
        return "n/a" if peak is None else f"{peak / 2**20:.0f} MiB"

    def kv(run: dict[str, Any]) -> str:
        size = run.get("kv_cache_bytes")
        return "no cache" if size is None else f"{size / 2**10:.0f} KiB"

    def rate(run: dict[str, Any]) -> str:
        value = run["metrics"].get("tokens_per_s")
        return "n/a" if value is None else f"{value:.1f}"

    return [
        row("run id", lambda r: r["run_id"]),
        row("new tokens", lambda r: r["metrics"]["new_tokens"]),
        row("finish", lambda r: r["finish_reason"]),
        row("seed", lambda r: r["seed"]),
        row("TTFT", lambda r: _ms(r["metrics"].get("ttft_s"))),
        row("TPOT", lambda r: _ms(r["metrics"].get("tpot_s"))),
        row("tokens/s", rate),
        row("peak memory", memory),
        row("KV cache", kv),
    ]


def summary_html(comparison: dict[str, Any]) -> str:
    differences = comparison["differences"]
    changed = "; ".join(differences) if differences else "no parameter (the same settings)"
    colour = "#166534" if comparison["first_divergence"] is None else "#991b1b"
    return (
        f'<div class="compare-summary"><p style="color: {colour}; font-weight: 600">{html.escape(comparison["summary"])}</p>'
        f'<p style="color: #6b7280">B differs from A in: {html.escape(changed)}</p></div>'
    )


def build_compare_view(
    playground: Playground,
    controls: RunControls,
    identity: Identity,
    task: Task,
    prefix: str,
    model: gr.Dropdown,
    text: gr.Textbox,
    inspector: InspectorView,
    *,
    public: bool,
) -> CompareView:
    """Inside a generative tab, below its input and output columns. `model` and `text` are the
    tab's own; `public`: this copy carries the API name /compare."""
    names = DecodingParams.field_names()
    with gr.Accordion("Compare two settings: where and why do they part?", open=False, elem_id=f"{prefix}_compare"):
        gr.Markdown(HELP)
        with gr.Row():
            with gr.Column():
                panel_a = build_decoding_panel(open_=False, label="A: decoding", elem_prefix=f"{prefix}_cmp_a")
            with gr.Column():
                with gr.Row():
                    copy = gr.Button("Copy A → B", size="sm", elem_id=f"{prefix}_cmp_copy")
                    shared_seed = gr.Checkbox(
                        value=True, label="B uses A's seed", info="untick to give B a seed of its own",
                        elem_id=f"{prefix}_cmp_shared_seed",
                    )
                panel_b = build_decoding_panel(open_=False, label="B: decoding", elem_prefix=f"{prefix}_cmp_b")
                panel_b.components["seed"].interactive = False  # shared until unticked
        with gr.Row():
            generate = gr.Button("Generate A and B", variant="primary", elem_id=f"{prefix}_compare_button")
            stop = gr.Button("Stop both", variant="stop")
        summary = gr.HTML(elem_id=f"{prefix}_compare_summary")
        with gr.Row():
            output_a = gr.HTML(label="A", elem_id=f"{prefix}_compare_a", js_on_load=token_click_js())
            output_b = gr.HTML(label="B", elem_id=f"{prefix}_compare_b", js_on_load=token_click_js())
        stages = gr.Dataframe(
            headers=STAGE_HEADERS, label="Where they part: each chain's stages, probability of A's token and of B's token",
            interactive=False, elem_id=f"{prefix}_compare_stages",
        )
        metrics = gr.Dataframe(headers=METRIC_HEADERS, label="The two runs", interactive=False, elem_id=f"{prefix}_compare_metrics")
        latency = gr.Plot(label="Time between consecutive tokens, A and B", elem_id=f"{prefix}_compare_latency")
        result = gr.JSON(label="Comparison (JSON, as /compare returns it)", open=False)
        params_a = gr.JSON(visible=False)
        params_b = gr.JSON(visible=False)
        run_a, run_b = gr.State(None), gr.State(None)

    a_fields = [panel_a.components[name] for name in names]
    b_fields = [panel_b.components[name] for name in names]
    key = f"compare_{task.value}"

    def collect(*values: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        return collect_params(names, values[:-1], bool(values[-1]))

    def compare(
        model: str, prompt: str, params_a: Any, params_b: Any, request: gr.Request, browser_id: str | None = None,
        progress: gr.Progress = gr.Progress(),
    ) -> Iterator[tuple[Any, ...]]:
        """Compare two decoding settings (params_a, params_b: JSON objects of decoding-panel fields; B's seed,
        absent, is A's) on one model and input: both stream; the last output is the JSON result with `a`,
        `b` (each shaped like /text_generation's result) and `first_divergence` (or null)."""
        session = request.session_hash or "anonymous"
        cancel = controls.start(session, key)
        steps: dict[str, list[TokenStep]] = {"a": [], "b": []}
        start = last = time.perf_counter()
        try:
            with user_facing_errors():
                items = playground.compare(
                    model, prompt, params_a, params_b, cancel,
                    progress=lambda fraction, message: progress(fraction, desc=message),
                    owner=Identity.owner(browser_id, request),
                )
                for item in items:
                    if isinstance(item, CompareEvent):
                        steps[item.side].append(item.event.step)
                        now = time.perf_counter()
                        if now - last >= REFRESH_SECONDS:
                            last = now
                            counts = f"generating… A {len(steps['a'])} tokens, B {len(steps['b'])} tokens in {now - start:.1f} s"
                            yield (
                                tokens_html(prompt, steps["a"], "generating…"), tokens_html(prompt, steps["b"], "generating…"),
                                f"<p>{html.escape(counts)}</p>", [], [], None, None, None, {"status": "running"},
                            )
                        continue
                    assert isinstance(item, Comparison)
                    yield _final(prompt, item)
        finally:
            controls.finish(session, key, cancel)

    def stop_compare(request: gr.Request) -> None:
        controls.stop(request.session_hash or "anonymous", key)

    outputs = [output_a, output_b, summary, stages, metrics, latency, run_a, run_b, result]
    copy.click(None, inputs=a_fields, outputs=b_fields, js="(...values) => values")
    shared_seed.change(
        lambda shared: gr.Textbox(interactive=not shared), inputs=shared_seed, outputs=panel_b.components["seed"],
        api_visibility="private", queue=False,
    )
    names_kwargs = {"api_name": "compare"} if public else {"api_visibility": "private"}
    generate.click(
        collect, inputs=[*a_fields, *b_fields, shared_seed], outputs=[params_a, params_b], api_visibility="private",
        queue=False,
    ).success(
        compare, inputs=[model, text, params_a, params_b, identity.state], outputs=outputs,
        concurrency_id=GENERATION_GROUP, **names_kwargs,
    )
    stop.click(stop_compare, api_visibility="private", concurrency_limit=None)
    inspector.connect(output_a, run_a)
    inspector.connect(output_b, run_b)
    return CompareView(panel_a, panel_b, shared_seed, generate, output_a, output_b, summary, stages, metrics, result)


def _final(text: str, comparison: Comparison) -> tuple[Any, ...]:
    out = comparison.to_json()
    divergence = out["first_divergence"]
    marked = None if divergence is None else divergence["position"]
    a, b = comparison.a.result, comparison.b.result
    return (
        tokens_html(text, a.steps, a.finish_reason, marked=marked),
        tokens_html(text, b.steps, b.finish_reason, marked=marked),
        summary_html(out),
        stage_rows(out),
        metric_rows(out),
        PlotData(type="plotly", plot=latency_json([("A", out["a"]), ("B", out["b"])])),
        comparison.a.run_id,
        comparison.b.run_id,
        out,
    )
