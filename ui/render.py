"""Views of a generation: coloured tokens (escaped HTML), the probability chart, the metrics line.

Everything here is a pure function of backend results, so it is tested without a browser.
Token texts come from the model and the person: they are always escaped, in the page and in
plotly's hover labels (which understand a few HTML tags too).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence

import plotly.graph_objects as go

from backend.capture import TokenStep
from backend.metrics import RunMetrics


def probability_colour(prob: float | None) -> str:
    """Red (unlikely) -> amber -> green (likely), light enough to read black text on; grey when
    the probability is not known (an engine that reported none)."""
    if prob is None:
        return "#e5e7eb"
    hue = max(0.0, min(1.0, prob)) * 120.0
    return f"hsl({hue:.0f}, 75%, 82%)"


def _num(value: float | None, digits: int = 3) -> str:
    """A probability or an entropy as shown; "n/a" where it was not reported (a remote engine
    gives one of the two distributions, backend.remote)."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def shown_prob(step: TokenStep) -> float | None:
    """The probability a token is coloured by: under the distribution it was drawn from, or the
    raw one where that is all an engine reported."""
    return step.prob if step.prob is not None else step.raw_prob


#: What a step's probabilities are, in words (TokenStep.probabilities).
PROBABILITY_WORDS = {
    "local": "both measured here",
    "raw": "the engine's raw probabilities (the model softmax); the sampled distribution is not reported",
    "processed": "the engine's processed probabilities (after its sampling chain); the raw ones are not reported",
    "none": "the engine reported no probabilities",
}


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def md_text(text: str) -> str:
    """Text for a Markdown component, shown as typed: Markdown's punctuation backslash-escaped
    (no **bold**, no [link](url), no ![image](url)) and <, > and & as entities (no HTML)."""
    return html.escape(_MARKDOWN_SPECIAL.sub(r"\\\1", text), quote=False)


def plotly_text(text: str) -> str:
    """Text for a plotly label or hover: plotly renders a few HTML tags, so <, > and & are
    escaped; quotes are not (plotly shows &quot; literally)."""
    return html.escape(text, quote=False)


def _visible(text: str) -> str:
    """Escape a token for the page, keeping newlines visible as a return mark."""
    return html.escape(text).replace("\n", "↵\n")


def tokens_html(prompt: str, steps: Sequence[TokenStep], status: str = "", marked: int | None = None) -> str:
    """The prompt in grey, then each new token on a background coloured by its probability
    under the distribution it was drawn from; hovering a token shows its numbers. `marked`: the
    position outlined in red (where two compared runs part); past the end, a red mark ends the text."""
    parts = [
        '<div class="tokens" style="white-space: pre-wrap; font-family: ui-monospace, monospace; '
        'line-height: 1.9; font-size: 0.95em">',
        f'<span class="prompt" style="color: #6b7280">{html.escape(prompt)}</span>',
    ]
    for step in steps:
        title = (
            f"#{step.position} token {step.token_id}: p={_num(step.prob)} (raw {_num(step.raw_prob)}), "
            f"entropy {_num(step.entropy, 2)} bits"
        )
        mark = ""
        if step.position == marked:
            title = f"the runs part here. {title}"
            mark = " diverge"
        outline = "; outline: 2px solid #dc2626" if mark else ""
        parts.append(
            f'<span class="tok{mark}" title="{html.escape(title)} (click to inspect)" data-pos="{step.position}" '
            f'data-p="{_num(shown_prob(step), 4)}" style="background: {probability_colour(shown_prob(step))}; color: #111; '
            f'border-radius: 3px; padding: 1px 0; margin: 0 1px; cursor: pointer{outline}">{_visible(step.text)}</span>'
        )
    if marked is not None and marked >= len(steps):
        parts.append('<span class="tok-end diverge" title="this run had ended here" style="color: #dc2626">⟂ ended</span>')
    if status:
        parts.append(f' <span class="status" style="color: #6b7280">[{html.escape(status)}]</span>')
    parts.append("</div>")
    return "".join(parts)


def _hover(step: TokenStep) -> str:
    lines = [
        f"<b>#{step.position}</b> {plotly_text(repr(step.text))}",
        f"p sampled {_num(step.prob)} · p raw {_num(step.raw_prob)}",
        f"entropy {_num(step.entropy, 2)} bits (raw {_num(step.raw_entropy, 2)})",
        "alternatives (p sampled / p raw):",
    ]
    if step.probabilities != "local":
        lines.insert(1, plotly_text(PROBABILITY_WORDS.get(step.probabilities, step.probabilities)))
    for alt in step.alternatives:
        mark = "▶ " if alt.token_id == step.token_id and alt.text == step.text else "   "
        lines.append(f"{mark}{plotly_text(repr(alt.text))}  {_num(alt.prob)} / {_num(alt.raw_prob)}")
    return "<br>".join(lines)


def probability_figure(steps: Sequence[TokenStep], title: str = "", *, hover: bool = True) -> go.Figure:
    """The probability chart as a plotly Figure (see probability_chart)."""
    return go.Figure(probability_chart(steps, title, hover=hover), _validate=False)


def probability_json(steps: Sequence[TokenStep], title: str = "", *, hover: bool = True) -> str:
    """The probability chart as plotly's JSON, ready to send: no plotly object is built (plotly's
    constructors and its to_json copy the figure and its template: ~10 ms a chart, redrawn while
    tokens stream, for every stream the machine serves)."""
    return json.dumps(probability_chart(steps, title, hover=hover))


def probability_chart(steps: Sequence[TokenStep], title: str = "", *, hover: bool = True) -> dict[str, object]:
    """Per position: p(chosen) under the sampled distribution, under the raw model
    distribution, and the entropy of the sampled distribution (bits, right axis), as plotly's
    figure JSON. `hover` False leaves out the alternatives (a lighter chart while tokens stream)."""
    x = [s.position for s in steps]
    hover_text = [_hover(s) for s in steps] if hover else [f"#{s.position} p {_num(shown_prob(s))}" for s in steps]
    sampled, raw = [s.prob for s in steps], [s.raw_prob for s in steps]
    # a remote engine reports one distribution: the hover goes with the line that is there
    hover_on_raw = bool(steps) and all(p is None for p in sampled)
    with_hover = {"customdata": hover_text, "hovertemplate": "%{customdata}<extra></extra>"}
    data = [
        {
            "type": "bar", "x": x, "y": [s.entropy for s in steps], "name": "entropy (bits)", "yaxis": "y2",
            "marker": {"color": "rgba(148, 163, 184, 0.35)"}, "hoverinfo": "skip",
        },
        {
            "type": "scatter", "x": x, "y": sampled,
            "name": "p chosen (sampled distribution)" + (" · not reported by the engine" if hover_on_raw else ""),
            "mode": "lines+markers", "line": {"color": "#2563eb"}, **({"hoverinfo": "skip"} if hover_on_raw else with_hover),
        },
        {
            "type": "scatter", "x": x, "y": raw,
            "name": "p chosen (raw model)" + (" · not reported by the engine" if steps and all(p is None for p in raw) else ""),
            "mode": "lines+markers", "line": {"color": "#f97316", "dash": "dot"}, **(with_hover if hover_on_raw else {"hoverinfo": "skip"}),
        },
    ]
    layout = {
        "height": 340,
        "margin": {"l": 50, "r": 50, "t": 40 if title else 20, "b": 40},
        "xaxis": {"title": {"text": "position of the new token"}},
        "yaxis": {"title": {"text": "probability"}, "range": [0, 1.02]},
        "yaxis2": {
            "title": {"text": "entropy (bits)"}, "overlaying": "y", "side": "right", "rangemode": "tozero", "showgrid": False,
        },
        "legend": {"orientation": "h", "y": 1.12},
        "hovermode": "closest",
        "bargap": 0.1,
    }
    if title:
        layout["title"] = {"text": plotly_text(title)}
    return {"data": data, "layout": layout}


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f} ms"


def metrics_markdown(metrics: RunMetrics, *, seed: int, finish_reason: str, chain: str, notes: Sequence[str] = ()) -> str:
    memory = {"rss": "peak RSS", "cuda_max_allocated": "peak CUDA memory"}.get(metrics.memory_kind or "", "peak memory (not measured: a remote engine)")
    rate = "n/a" if metrics.tokens_per_s is None else f"{metrics.tokens_per_s:.1f} tokens/s"
    line = (
        f"**TTFT** {_ms(metrics.ttft_s)} · **TPOT** {_ms(metrics.tpot_s)} · **throughput** {rate} · "
        f"**prompt** {metrics.prompt_tokens} tokens · **new** {metrics.new_tokens} tokens · "
        f"**{memory}** {'n/a' if metrics.peak_memory_bytes is None else f'{metrics.peak_memory_bytes / 2**20:.0f} MiB'} · "
        f"**seed** {seed} · **finish** {finish_reason}"
    )
    lines = [line, f"**decoding chain:** {md_text(chain)}"]
    lines.extend(f"**note:** {md_text(note)}" for note in notes)
    return "\n\n".join(lines)


def progress_markdown(n_tokens: int, elapsed_s: float) -> str:
    rate = n_tokens / elapsed_s if elapsed_s > 0 else 0.0
    return f"generating… {n_tokens} tokens in {elapsed_s:.1f} s ({rate:.1f} tokens/s)"
