"""What a generation cost, drawn from its JSON result (the API's): the context it filled, its
timeline split into prefill (time to first token) and decode, its KV cache size, and the time
between consecutive tokens. Pure functions of the result, tested without a browser; every text
is escaped (the formula comes from the config, the labels from the page)."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from ui.render import plotly_text

COST_HELP = (
    "What the run cost: the context it filled, where its time went (prefill reads the prompt and fills "
    "the KV cache; decode adds one token per step), and the keys and values it kept."
)

#: Series colours: A (or a lone run) and B.
COLOURS = ("#2563eb", "#f97316")


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f} ms"


def _bar(parts: Sequence[tuple[float, str, str]]) -> str:
    """A horizontal bar of segments (fraction of the whole, colour, tooltip)."""
    segments = "".join(
        f'<div title="{html.escape(tip)}" style="width: {max(fraction, 0.0) * 100:.2f}%; background: {colour}"></div>'
        for fraction, colour, tip in parts
    )
    return (
        '<div style="display: flex; height: 14px; background: #e5e7eb; border-radius: 3px; overflow: hidden; '
        f'margin: 2px 0 6px">{segments}</div>'
    )


def context_html(run: dict[str, Any]) -> str:
    context = run.get("context") or {}
    used, limit = context.get("used", 0), context.get("max", 0) or 1
    prompt, new = context.get("prompt", 0), context.get("new", 0)
    share = used / limit
    if used == prompt:  # an encoder-decoder: the context is the source; the decoder writes apart
        text = (
            f"context: the source fills {prompt} of {limit} tokens ({share:.0%}); the decoder wrote {new} new tokens"
        )
        parts = [(prompt / limit, "#94a3b8", f"source: {prompt} tokens")]
    else:
        text = f"context: prompt {prompt} + new {new} = {used} of {limit} tokens ({share:.0%})"
        parts = [(prompt / limit, "#94a3b8", f"prompt: {prompt} tokens"), (new / limit, COLOURS[0], f"new: {new} tokens")]
    return f'<div class="cost-context">{html.escape(text)}{_bar(parts)}</div>'


def timeline_html(run: dict[str, Any]) -> str:
    timeline = run.get("timeline") or {}
    total = timeline.get("total_s") or 0.0
    prefill, decode = timeline.get("prefill_s"), timeline.get("decode_s")
    new = len(timeline.get("token_times") or [])
    if prefill is None or total <= 0:
        text = f"time: {_ms(total)} in all (beam search shows nothing before its end: no prefill/decode split is seen)"
        parts = [(1.0, COLOURS[0], text)]
    else:
        per = f", {decode / (new - 1) * 1000:.1f} ms per token" if decode is not None and new > 1 else ""
        text = f"time: prefill (to the first token) {_ms(prefill)} · decode {new - 1} more tokens in {_ms(decode)}{per}"
        parts = [(prefill / total, "#f59e0b", f"prefill {_ms(prefill)}"), ((decode or 0.0) / total, COLOURS[0], f"decode {_ms(decode)}")]
    return f'<div class="cost-timeline">{html.escape(text)}{_bar(parts)}</div>'


def kv_cache_html(run: dict[str, Any]) -> str:
    kv = run.get("kv_cache")
    if kv is None:
        if run.get("remote"):
            text = f"KV cache: kept by the remote engine ({run['remote'].get('engine')}), which does not report it"
        elif (run.get("params") or {}).get("use_cache") is False:
            text = "KV cache: none (use_cache off): every step recomputed the keys and values of the whole prefix"
        else:
            text = "KV cache: the model's config does not say its shape"
        return f'<div class="cost-kv">{html.escape(text)}</div>'
    measured = kv.get("measured_bytes")
    text = f"KV cache at the end: {_bytes(kv['formula_bytes'])} = {kv['formula']}"
    if kv.get("cross_tokens"):
        text += f" (the decoder's {kv['tokens']} tokens and its cross-attention over {kv['cross_tokens']} source tokens)"
    if measured is not None:
        text += f"; the cache tensors themselves: {_bytes(measured)}"
    return f'<div class="cost-kv">{html.escape(text)}</div>'


def cost_html(run: dict[str, Any] | None) -> str:
    """The context bar, the prefill/decode timeline and the KV cache size of one run."""
    if not run:
        return ""
    return (
        '<div class="cost" style="font-size: 0.9em">'
        f'<div style="color: #6b7280">{html.escape(COST_HELP)}</div>'
        f"{context_html(run)}{timeline_html(run)}{kv_cache_html(run)}</div>"
    )


def latency_json(series: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """Time between consecutive tokens against position, one line per run: flat with the KV
    cache, growing with the position without it. `series`: (label, the run's JSON)."""
    data = []
    for index, (label, run) in enumerate(series):
        times = (run.get("timeline") or {}).get("token_times") or []
        gaps = [(later - earlier) * 1000 for earlier, later in zip(times, times[1:])]
        use_cache = (run.get("params") or {}).get("use_cache", True)
        name = f"{label} ({'KV cache' if use_cache else 'no KV cache'})" if label else ""
        data.append({
            "type": "scatter", "mode": "lines", "x": list(range(1, len(gaps) + 1)), "y": gaps,
            "name": plotly_text(name), "line": {"color": COLOURS[index % len(COLOURS)]},
            "hovertemplate": "token %{x}: %{y:.2f} ms<extra>" + plotly_text(name) + "</extra>",
        })
    layout = {
        "height": 280,
        "margin": {"l": 50, "r": 20, "t": 20, "b": 40},
        "xaxis": {"title": {"text": "position of the new token"}},
        "yaxis": {"title": {"text": "ms since the previous token"}, "rangemode": "tozero"},
        "legend": {"orientation": "h", "y": 1.15},
        "showlegend": len(series) > 1 or bool(series and series[0][0]),
    }
    return json.dumps({"data": data, "layout": layout})
