"""The History tab: the person's own runs, newest first, filtered by task, model, status and a
text search; open one to see it drawn again from the log (no model is loaded), replay it, load it
into its tab, or export the list. Only runs made from this browser (or, through the API, from
this client session) are listed: a public Space never shows one person's prompts to another."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import gradio as gr

from backend.capture import TokenStep
from backend.history import DEFAULT_LIMIT, EXPORT_FORMATS, MAX_LIMIT, HistoryQuery
from backend.inspect.service import GENERATIVE_TASKS
from backend.metrics import RunMetrics
from backend.playground import Playground
from backend.registry import Task
from backend.runlog import RunStatus
from ui.downloads import Downloads
from ui.errors import user_facing_errors
from ui.forms import TabForm
from ui.identity import Identity
from ui.inputs import ParamSlider, RawDropdown, RawNumber, RawRadio
from ui.render import metrics_markdown, probability_figure, tokens_html

HEADERS = ["run", "when (UTC)", "task", "model", "status", "new tokens", "input", "output"]
PREVIEW_CHARS = 80
_GENERATIVE = {task.value for task in GENERATIVE_TASKS}


def _preview(value: Any) -> str:
    text = value if isinstance(value, str) else " · ".join(str(v) for v in (value or {}).values())
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def history_rows(runs: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """The table's rows (the Dataframe shows cells as text, never as markup)."""
    return [
        [
            run["id"],
            (run["created_at"] or "")[:19].replace("T", " "),
            run["task"],
            run["model"],
            run["status"],
            run["new_tokens"],
            _preview(run["input"]),
            _preview(run["output"] or run["error"] or ""),
        ]
        for run in runs
    ]


def run_header_html(run: dict[str, Any]) -> str:
    parts = [
        f"run {run['id']}", run["task"], run["model"], run["status"], (run["created_at"] or "")[:19].replace("T", " ") + " UTC",
    ]
    if run.get("seed") is not None:
        parts.append(f"seed {run['seed']}")
    if run.get("finish_reason"):
        parts.append(f"finish {run['finish_reason']}")
    error = f'<div class="run-error" style="color: #b91c1c">{html.escape(run["error"])}</div>' if run.get("error") else ""
    return f'<div class="run-header"><b>{html.escape(" · ".join(str(p) for p in parts))}</b>{error}</div>'


def run_views(run: dict[str, Any]) -> tuple[str, str, Any, str]:
    """Header, output, chart and metrics of a logged run, drawn again from its JSON."""
    header = run_header_html(run)
    if run["task"] not in _GENERATIVE:
        output = f'<pre class="run-output" style="white-space: pre-wrap">{html.escape(run["output"] or "")}</pre>'
        return header, output, None, ""
    steps = [TokenStep.from_dict(step) for step in run["steps"]]
    prompt = next(iter((run["input"] or {}).values()), "")
    output = tokens_html(prompt if isinstance(prompt, str) else "", steps, run.get("finish_reason") or run["status"])
    figure = probability_figure(steps) if steps else None
    metrics = ""
    if run.get("total_s") is not None:
        metrics = metrics_markdown(
            RunMetrics(
                prompt_tokens=run["prompt_tokens"] or 0,
                new_tokens=run["new_tokens"] or len(steps),
                ttft_s=run["ttft_s"],
                tpot_s=run["tpot_s"],
                tokens_per_s=run["tokens_per_s"],
                total_s=run["total_s"],
                peak_memory_bytes=run["peak_memory_bytes"],
                memory_kind=run["memory_kind"],
            ),
            seed=run["seed"],
            finish_reason=run.get("finish_reason") or run["status"],
            chain="raw logits → " + " → ".join([*(run.get("result") or {}).get("chain", []), "softmax"]),
            notes=(run.get("result") or {}).get("notes", []),
        )
    return header, output, figure, metrics


def replay_html(replay: dict[str, Any], original: dict[str, Any]) -> str:
    """The determinism badge: identical, or where the replay first differs."""
    new = replay["run"]
    if replay["identical"]:
        what = f"the same {len(new.get('tokens', []))} tokens" if "tokens" in new else "the same result"
        return (
            f'<div class="replay identical" style="color: #15803d"><b>identical ✓</b> run {replay["run_id"]} gave '
            f"{what} as run {replay['replay_of']}.</div>"
        )
    position = replay["first_difference"]
    if position is None:
        return (
            f'<div class="replay differs" style="color: #b45309"><b>different ✗</b> run {replay["run_id"]} gave a '
            f"different result from run {replay['replay_of']}.</div>"
        )
    before = original["steps"][position]["text"] if position < len(original["steps"]) else "(the end)"
    after = new["tokens"][position]["text"] if position < len(new.get("tokens", [])) else "(the end)"
    return (
        f'<div class="replay differs" style="color: #b45309"><b>different ✗</b> first at position {position}: '
        f"{html.escape(repr(before))} in run {replay['replay_of']}, {html.escape(repr(after))} in run {replay['run_id']}.</div>"
    )


def build_history_tab(
    playground: Playground, identity: Identity, downloads: Downloads, forms: Sequence[TabForm], tabs: gr.Tabs
) -> dict[str, Any]:
    owner = Identity.owner
    with gr.Tab("History", id="history", elem_id="tab_history") as tab:
        gr.Markdown(
            "**Your runs**, newest first: the runs made from this browser (through the API: from this client's "
            "session); nobody else sees them. Open one to see it drawn again from the log, **replay** it (same "
            "model, parameters and seed: are the tokens identical?), **load** it into its tab, or export the list."
        )
        with gr.Row():
            task = RawDropdown(["all", *(t.value for t in Task)], value="all", label="task")
            model = RawDropdown(["all", *playground.registry.specs], value="all", label="model", allow_custom_value=True)
            status = RawDropdown(["all", *(s.value for s in RunStatus)], value="all", label="status")
            search = gr.Textbox(value="", label="search", placeholder="text in the input or the output")
            limit = ParamSlider(1, MAX_LIMIT, value=DEFAULT_LIMIT, step=1, label="limit")
        refresh = gr.Button("Show my runs", variant="primary", elem_id="history_refresh")
        table = gr.Dataframe(headers=HEADERS, interactive=False, wrap=True, elem_id="history_table", label="Runs (click a row to open it)")
        listing = gr.JSON(label="History (JSON, as /history returns it)", open=False)
        with gr.Row():
            run_id = RawNumber(label="run", elem_id="history_run")
            open_button = gr.Button("Open", elem_id="history_open")
            replay_button = gr.Button("Replay", elem_id="history_replay_button")
            load_button = gr.Button("Load into the tab", elem_id="history_load")
        header = gr.HTML(elem_id="history_header")
        badge = gr.HTML(elem_id="history_replay")
        output = gr.HTML(elem_id="history_output")
        chart = gr.Plot(label="Probability of each chosen token", elem_id="history_chart")
        metrics = gr.Markdown(elem_id="history_metrics")
        detail = gr.JSON(label="Run (JSON, as /run returns it)", open=False)
        replay_result = gr.JSON(label="Replay (JSON, as /replay returns it)", open=False)
        with gr.Row():
            fmt = RawRadio(list(EXPORT_FORMATS), value="jsonl", label="format", info="JSONL: runs with their token steps; CSV: runs")
            export_button = gr.Button("Export the list", elem_id="history_export")
        download = gr.File(label="Export", elem_id="history_download")

    def history(
        task: Any, model: Any, status: Any, search: Any, limit: Any, browser_id: str | None, request: gr.Request
    ) -> tuple[list[list[Any]], dict[str, Any]]:
        """Your runs, newest first, filtered (empty or "all" = any) by task, model, status and a text in the
        input or the output. The last output is the JSON list."""
        with user_facing_errors():
            runs = playground.history(owner(browser_id, request), HistoryQuery.of(task, model, status, search, limit))
        return history_rows(runs), {"runs": runs, "count": len(runs)}

    def open_run(run_id: Any, browser_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        """One of your runs, whole: its columns, result and token steps, drawn again from the log. The last
        output is the JSON run."""
        with user_facing_errors():
            run = playground.run_detail(owner(browser_id, request), run_id)
        return (*run_views(run), run)

    def open_selected(browser_id: str | None, event: gr.SelectData, request: gr.Request) -> tuple[Any, ...]:
        row = event.row_value or []
        if not row:
            raise gr.Error("Pick a run of the table.", print_exception=False)
        return (row[0], *open_run(row[0], browser_id, request))

    def replay(run_id: Any, browser_id: str | None, request: gr.Request) -> tuple[str, dict[str, Any]]:
        """Run one of your runs again (same model, inputs, parameters and seed) and say whether the tokens
        (or the result) are identical, and where they first differ. The last output is the JSON result."""
        who = owner(browser_id, request)
        with user_facing_errors():
            original = playground.run_detail(who, run_id)
            out = playground.replay(who, run_id).to_json()
        return replay_html(out, original), out

    targets = [component for form in forms for component in form.components]

    def load(run_id: Any, browser_id: str | None, request: gr.Request) -> list[Any]:
        with user_facing_errors():
            run = playground.run_detail(owner(browser_id, request), run_id)
        form = next((f for f in forms if run["task"] in f.tasks), None)
        if form is None:
            raise gr.Error(f"No tab takes a {run['task']} run.", print_exception=False)
        updates: list[Any] = [gr.Tabs(selected=form.tab_id)]
        for each in forms:
            updates.extend(each.values(run) if each is form else [gr.skip()] * len(each.components))
        return updates

    def export(
        task: Any, model: Any, status: Any, search: Any, format: Any, browser_id: str | None, request: gr.Request
    ) -> str:
        """Your runs of the filtered list as a file: JSONL (each run with its token steps) or CSV (one row per run)."""
        with user_facing_errors():
            query = HistoryQuery.of(task, model, status, search, MAX_LIMIT)
            name, content = playground.export(owner(browser_id, request), query, format)
        return downloads.write(name, content)

    filters = [task, model, status, search]
    refresh.click(history, inputs=[*filters, limit, identity.state], outputs=[table, listing], api_name="history")
    tab.select(history, inputs=[*filters, limit, identity.state], outputs=[table, listing], api_visibility="private")
    shown = [header, output, chart, metrics, detail]
    table.select(open_selected, inputs=[identity.state], outputs=[run_id, *shown], api_visibility="private")
    open_button.click(open_run, inputs=[run_id, identity.state], outputs=shown, api_name="run")
    replay_button.click(replay, inputs=[run_id, identity.state], outputs=[badge, replay_result], api_name="replay")
    load_button.click(load, inputs=[run_id, identity.state], outputs=[tabs, *targets], api_visibility="private")
    export_button.click(export, inputs=[*filters, fmt, identity.state], outputs=[download], api_name="export")
    return {"table": table, "run_id": run_id}
