"""The Serving tab: how many people at once. Live figures of the generations decoding together
now, and the throughput lab: N generations at once, for N of 1 to 16, measured on the machine
that serves this page (the seeds' latency/throughput trade-off)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import gradio as gr
import plotly.graph_objects as go

from backend.playground import Playground
from backend.registry import Task
from backend.throughput import DEFAULT_LAB_TOKENS, LAB_SIZES, MAX_LAB_TOKENS
from ui.errors import user_facing_errors
from ui.identity import Identity
from ui.inputs import ParamSlider, RawCheckboxGroup, RawDropdown
from ui.render import plotly_text

ABOUT = """**Serving a room.** The seeds name throughput (how many requests a system handles at once)
beside time to first token and time per token. Here the streaming generations of one decoder model
**decode together**: each step is one forward pass over every sequence in the batch (at most
{max_batch}), each with its own decoding chain, seed, stop sequences and Stop button. A request that
arrives while others decode joins at the next step. On a CPU the batch decodes in a worker process
of its own, beside the web server (one Python process uses about one core). Below: what decodes
right now, and a lab that measures the trade-off on this very machine."""

LIVE_HEADERS = (
    "model", "decoding now", "waiting", "tokens/s (all streams)", "time per token (per stream)", "largest batch", "at most",
    "decodes in",
)


def live_html(stats: Sequence[dict[str, Any]], max_batch: int) -> str:
    """The live figures, one row per model that decoded lately."""
    if not stats:
        return (
            '<div class="serving-live">No generation is decoding now'
            + (f" (up to {max_batch} of one model decode together)." if max_batch > 1 else " (batching is off: one at a time).")
            + "</div>"
        )
    head = "".join(f"<th>{html.escape(h)}</th>" for h in LIVE_HEADERS)
    rows = []
    for s in stats:
        tpot = "–" if s["time_per_token_s"] is None else f"{s['time_per_token_s'] * 1000:.1f} ms"
        cells = (
            s["model"], s["decoding"], s["waiting"], f"{s['tokens_per_s']:.0f}", tpot, s["largest_batch"], s["max_batch"],
            s["decoded_in"],
        )
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return f'<table class="serving-live"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def lab_figure(points: Sequence[dict[str, Any]], model: str) -> go.Figure:
    """Aggregate tokens/s and per-stream time per token against N."""
    n = [p["n"] for p in points]
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(x=n, y=[p["tokens_per_s"] for p in points], name="tokens/s, all streams", mode="lines+markers",
                   line={"color": "#2563eb"}, hovertemplate="N=%{x}: %{y:.0f} tokens/s<extra></extra>")
    )
    figure.add_trace(
        go.Scatter(
            x=n, y=[None if p["time_per_token_s"] is None else p["time_per_token_s"] * 1000 for p in points],
            name="time per token, per stream (ms)", mode="lines+markers", yaxis="y2", line={"color": "#f97316", "dash": "dot"},
            hovertemplate="N=%{x}: %{y:.1f} ms per token<extra></extra>",
        )
    )
    figure.update_layout(
        title=plotly_text(f"{model}: N generations at once"),
        height=360,
        margin={"l": 60, "r": 60, "t": 50, "b": 40},
        xaxis={"title": "N (generations at once)", "type": "log", "tickvals": list(LAB_SIZES)},
        yaxis={"title": "tokens/s, all streams together", "rangemode": "tozero"},
        yaxis2={"title": "ms per token, each stream", "overlaying": "y", "side": "right", "rangemode": "tozero", "showgrid": False},
        legend={"orientation": "h", "y": 1.12},
    )
    return figure


LAB_HEADERS = ["N", "tokens", "seconds", "tokens/s (all)", "ms per token (each)", "TTFT ms (each)"]


def lab_rows(points: Sequence[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            p["n"], p["tokens"], round(p["seconds"], 2), round(p["tokens_per_s"], 1),
            None if p["time_per_token_s"] is None else round(p["time_per_token_s"] * 1000, 1), round(p["ttft_s"] * 1000, 1),
        ]
        for p in points
    ]


def build_serving_tab(playground: Playground, identity: Identity) -> gr.Timer:
    """The tab; returns its timer (interface.py starts it while the tab is open)."""
    max_batch = playground.settings.max_batch
    generators = [spec.name for spec in playground.registry.for_task(Task.TEXT_GENERATION)]
    with gr.Tab("Serving", id="serving", elem_id="tab_serving"):
        gr.Markdown(ABOUT.format(max_batch=max_batch))
        live = gr.HTML(live_html([], max_batch), elem_id="serving_live")
        with gr.Row():
            refresh = gr.Button("Refresh", size="sm", elem_id="serving_refresh")
        live_json = gr.JSON(label="Serving figures (JSON, as /serving_stats returns them)", open=False)
        timer = gr.Timer(1.0, active=False)
        gr.Markdown(
            "### Throughput lab\nPick the N to measure: for each, the app runs N generations of the model at once "
            f"(at most {MAX_LAB_TOKENS} tokens each; half greedy, half sampled) and plots the tokens per second of all "
            "streams together and each stream's time per token. One lab at a time in the whole app; its runs are yours "
            "(History). Other people's generations, if any run meanwhile, share the machine and show in the figures."
        )
        with gr.Row():
            model = RawDropdown(generators, value=generators[0] if generators else None, label="model", allow_custom_value=True)
            n_values = RawCheckboxGroup(list(LAB_SIZES), value=list(LAB_SIZES), label="N")
            tokens = ParamSlider(1, MAX_LAB_TOKENS, value=DEFAULT_LAB_TOKENS, step=1, label="max_new_tokens")
        run = gr.Button("Run the lab", variant="primary", elem_id="serving_lab_run")
        chart = gr.Plot(label="Throughput against latency", elem_id="serving_lab_chart")
        table = gr.Dataframe(headers=LAB_HEADERS, interactive=False, label="Measured", elem_id="serving_lab_table")
        result = gr.JSON(label="Lab (JSON, as /throughput_lab returns it)", open=False)

    def serving_stats() -> tuple[str, dict[str, Any]]:
        """What decodes now, per model: sequences decoding together, requests waiting, tokens/s of all
        streams, each stream's time per token. The last output is the JSON figures."""
        stats = playground.serving_stats()
        return live_html(stats, max_batch), {"models": stats, "max_batch": max_batch}

    def throughput_lab(model: Any, n_values: Any, max_new_tokens: Any, browser_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Run N generations of `model` at once for each N of `n_values` (1, 2, 4, 8, 16), each
        `max_new_tokens` long; per N: tokens/s of all streams, each stream's time per token and TTFT.
        The last output is the JSON result."""
        with user_facing_errors():
            points = [p.to_json() for p in playground.throughput_lab(Identity.owner(browser_id, request), model, n_values, max_new_tokens)]
        return lab_figure(points, str(model)), lab_rows(points), {"model": model, "points": points}

    refresh.click(serving_stats, outputs=[live, live_json], api_name="serving_stats", concurrency_limit=None)
    timer.tick(serving_stats, outputs=[live, live_json], api_visibility="private", concurrency_limit=None, show_progress="hidden")
    run.click(throughput_lab, inputs=[model, n_values, tokens, identity.state], outputs=[chart, table, result], api_name="throughput_lab")
    return timer
