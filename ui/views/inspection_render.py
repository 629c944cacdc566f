"""Views of the token inspector's results, drawn from their JSON (the data contract documented in
backend/inspect/records.py): the stage waterfall, the stage table, the attention strip, the logit
lens, prompt surprisal and the tokenizer view. Pure functions, tested without a browser. Every
token text comes from a model or a person: it is escaped in HTML and in plotly's labels."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from ui.render import plotly_text, probability_colour

Json = Mapping[str, Any]


def _e(text: str) -> str:
    return html.escape(text)


def _notes_html(notes: Sequence[str]) -> str:
    """The notes of a view, in grey, one item each (none: nothing)."""
    if not notes:
        return ""
    items = "".join(f"<li>{_e(note)}</li>" for note in notes)
    return f'<ul class="inspect-notes" style="color: #6b7280; font-size: 0.9em">{items}</ul>'


def _token_label(text: str) -> str:
    """A token as a plotly label: quoted, with its spaces and newlines visible."""
    return plotly_text(repr(text))


def _column(label: str, width: int = 14) -> str:
    """A stage's column title, broken at a space when it is long (plotly's <br>)."""
    if len(label) <= width or " " not in label:
        return plotly_text(label)
    cut = label.rfind(" ", 0, width + 1)
    cut = cut if cut > 0 else label.find(" ")
    return plotly_text(label[:cut]) + "<br>" + plotly_text(label[cut + 1 :])


# -- the waterfall ------------------------------------------------------------------------------


def inspection_summary(inspection: Json) -> str:
    """One line (HTML): which token, where, and its probability at the two ends of the chain."""
    stages = inspection["stages"]
    token = inspection["token"]
    raw, final = stages[0], stages[-1]
    return (
        f'<div class="inspect-summary"><b>run {inspection["run_id"]}, position {inspection["position"]}</b>: '
        f"{_e(repr(token['text']))} (token {token['token_id']}) · {_e(inspection['mode'])} · raw p "
        f"{raw['chosen_prob']:.4f} (rank {raw['chosen_rank']}) → final p {final['chosen_prob']:.4f} "
        f"(rank {final['chosen_rank']})</div>"
    )


def _text_heatmap(
    z: list[list[float]], x: list[str], y: list[str], text: list[list[str]], colours: str, top: float, hover: str
) -> go.Heatmap:
    """A grid of probabilities with a label in every cell (x, y and text already escaped)."""
    return go.Heatmap(
        z=z, x=x, y=y, text=text, texttemplate="%{text}", textfont={"size": 13}, colorscale=colours,
        zmin=0, zmax=top, hovertemplate=hover, colorbar={"title": "p"},
    )


def waterfall_figure(inspection: Json) -> go.Figure:
    """Stages as columns, candidates as rows (the chosen token marked): each cell is the
    candidate's probability after that stage; 0 means a stage removed it."""
    stages = inspection["stages"]
    chosen = inspection["token"]["token_id"]
    candidates = stages[0]["top"]
    rows = [f"{'▶ ' if c['token_id'] == chosen else ''}{_token_label(c['text'])}" for c in candidates]
    z = [[stage["top"][i]["prob"] for stage in stages] for i in range(len(candidates))]
    text = [[("–" if p == 0 else f"{p:.3f}") for p in row] for row in z]
    columns = [_column(f"{k}. {stage['label']}") for k, stage in enumerate(stages)]
    figure = go.Figure(
        _text_heatmap(z, columns, rows, text, "Blues", max(1e-9, max((max(r) for r in z), default=1.0)),
                      "%{y}<br>after %{x}: p %{z:.4f}<extra></extra>")
    )
    figure.update_layout(
        title="Each stage of the chain: probability of the top candidates (▶ = the chosen token)",
        height=max(280, 90 + 26 * len(rows)),
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
        xaxis={"side": "top", "automargin": True},
        yaxis={"autorange": "reversed", "automargin": True},
    )
    return figure


STAGE_HEADERS = ["stage", "tokens allowed", "entropy (bits)", "mass removed", "p(chosen)", "rank(chosen)"]


def stage_rows(inspection: Json) -> list[list[Any]]:
    return [
        [
            stage["label"],
            stage["support"],
            round(stage["entropy_bits"], 3),
            round(stage["removed_mass"], 4),
            round(stage["chosen_prob"], 4),
            stage["chosen_rank"],
        ]
        for stage in inspection["stages"]
    ]


def stage_sentences_html(inspection: Json) -> str:
    """One sentence per stage, what it did at this position; then the notes."""
    items = "".join(
        f'<li><b>{_e(stage["label"])}</b>: {_e(stage["sentence"])}</li>' for stage in inspection["stages"]
    )
    return f'<ol class="stage-sentences">{items}</ol>' + _notes_html(inspection.get("notes", []))


# -- attention ----------------------------------------------------------------------------------


def head_choices(inspection: Json) -> list[tuple[str, str]]:
    attention = inspection.get("attention", {})
    if "unavailable" in attention:
        return [("mean of heads", "mean")]
    return [("mean of heads", "mean")] + [(f"head {h}", str(h)) for h in range(attention["heads"])]


def _strip(context: Sequence[str], weights: Sequence[float], title: str) -> str:
    """The context tokens, each on a background as dark as the attention it gets."""
    top = max(weights, default=0.0) or 1.0
    best = sorted(range(len(weights)), key=lambda i: -weights[i])[:3]
    spans = []
    for i, (token, weight) in enumerate(zip(context, weights)):
        alpha = weight / top
        spans.append(
            f'<span class="att" data-i="{i}" title="#{i} {_e(repr(token))}: {weight:.4f}" '
            f'style="background: rgba(234, 88, 12, {alpha:.3f}); border-radius: 2px; margin: 0 1px; '
            f'box-shadow: inset 0 0 0 1px #e5e7eb">'
            f"{_e(token).replace(chr(10), '↵' + chr(10))}</span>"
        )
    leaders = ", ".join(f"{_e(repr(context[i]))} {weights[i]:.3f}" for i in best)
    return (
        f'<div class="attention-strip"><div style="font-weight: 600">{_e(title)}</div>'
        f'<div style="color: #6b7280; font-size: 0.9em">most attended: {leaders}</div>'
        '<div style="white-space: pre-wrap; font-family: ui-monospace, monospace; line-height: 1.8">'
        + "".join(spans)
        + "</div></div>"
    )


def attention_html(inspection: Json, head: str = "mean") -> str:
    attention = inspection["attention"]
    if "unavailable" in attention:
        return f'<div class="attention-strip">Attention is not available: {_e(attention["unavailable"])}</div>'
    layer = attention["layer"]
    which = "averaged over heads" if head == "mean" else f"head {head}"

    def weights(over: Json) -> list[float]:
        return over["weights"][layer] if head == "mean" else over["head_weights"][int(head)]

    parts = [
        _strip(
            attention["context"],
            weights(attention),
            f"Self-attention of this position over the tokens before it: layer {layer} of "
            f"{attention['layers']} (counting from 0), {which}",
        )
    ]
    if attention.get("cross"):
        parts.append(
            _strip(
                attention["cross"]["context"],
                weights(attention["cross"]),
                f"Cross-attention over the source text: layer {layer}, {which}",
            )
        )
    return "".join(parts)


# -- the logit lens -----------------------------------------------------------------------------


def lens_figure(inspection: Json) -> go.Figure:
    """Layers as rows (the output at the top), the top 5 guesses as columns, and the chosen
    token's rank at each layer."""
    lens = inspection["logit_lens"]
    figure = go.Figure()
    if isinstance(lens, Mapping):
        figure.add_annotation(text=plotly_text(f"Logit lens not available: {lens['unavailable']}"), showarrow=False)
        figure.update_layout(height=120, xaxis={"visible": False}, yaxis={"visible": False})
        return figure
    chosen = inspection["token"]["token_id"]
    k = max(len(layer["top"]) for layer in lens)
    names = [f"{plotly_text(layer['name'])} · chosen rank {layer['chosen_rank']}" for layer in lens]
    z = [[c["prob"] for c in layer["top"]] for layer in lens]
    text = [[f"{'▶' if c['token_id'] == chosen else ''}{_token_label(c['text'])}" for c in layer["top"]] for layer in lens]
    figure.add_trace(
        _text_heatmap(z, [f"guess {i + 1}" for i in range(k)], names, text, "Greens", 1.0,
                      "%{y}<br>%{x}: %{text} p %{z:.4f}<extra></extra>")
    )
    figure.update_layout(
        title="Logit lens: the next-token guess read from each layer (▶ = the chosen token)",
        height=max(240, 80 + 34 * len(lens)),
        margin={"l": 10, "r": 10, "t": 50, "b": 30},
        yaxis={"automargin": True},  # the embeddings at the bottom, the output at the top
    )
    return figure


# -- prompt surprisal ---------------------------------------------------------------------------


#: Prompt tokens are coloured by surprise (-log2 p): green at 0 bits, red at this many bits or more
#: (a linear scale in p would paint almost every prompt token red).
SURPRISE_SCALE_BITS = 12.0


def surprisal_html(result: Json) -> str:
    """The prompt token by token, coloured by how surprising each was given the ones before it."""
    if "unavailable" in result:
        return f'<div class="surprisal">Prompt surprisal is not available: {_e(result["unavailable"])}</div>'
    spans = []
    for i, token in enumerate(result["tokens"]):
        if token["logprob"] is None:
            title = f"#{i} {token['text']!r}: first token, nothing before it to predict it from"
            style = "background: #e5e7eb"
        else:
            p = math.exp(token["logprob"])
            bits = -token["logprob"] / math.log(2)
            expected = ", ".join(f"{a['text']!r} {a['prob']:.3f}" for a in token["alternatives"])
            title = (
                f"#{i} {token['text']!r}: p {p:.4f}, {bits:.1f} bits of surprise (rank {token['rank']}); "
                f"the model expected: {expected}"
            )
            style = f"background: {probability_colour(max(0.0, 1.0 - bits / SURPRISE_SCALE_BITS))}"
        spans.append(
            f'<span class="ptok" data-i="{i}" title="{_e(title)}" style="{style}; border-radius: 3px; margin: 0 1px">'
            f"{_e(token['text']).replace(chr(10), '↵' + chr(10))}</span>"
        )
    perplexity = "n/a" if result["perplexity"] is None else f"{result['perplexity']:.2f}"
    surprising = ", ".join(
        f"{_e(repr(result['tokens'][i]['text']))} (p {math.exp(result['tokens'][i]['logprob']):.4f})"
        for i in result["most_surprising"]
    )
    return (
        '<div class="surprisal">'
        f'<div><b>perplexity</b> <span class="perplexity">{perplexity}</span> over {len(result["tokens"]) - 1} '
        f"predicted tokens · most surprising: {surprising or 'n/a'}</div>"
        '<div style="white-space: pre-wrap; font-family: ui-monospace, monospace; line-height: 1.9">'
        + "".join(spans)
        + "</div>"
        + _notes_html(result.get("notes", []))
        + "</div>"
    )


# -- the tokenizer view -------------------------------------------------------------------------


def tokenization_html(result: Json, text: str) -> str:
    """The text cut into tokens (alternating shades), special tokens marked, ids on hover."""
    spans = []
    for i, token in enumerate(result["tokens"]):
        piece = token["text"] if token["start"] is None else text[token["start"] : token["end"]]
        if token["special"]:
            style = "border: 1px dashed #7c3aed; color: #7c3aed"
        else:
            style = f"background: {'#dbeafe' if i % 2 == 0 else '#fde68a'}"
        title = f"#{i} id {token['token_id']} {token['text']!r}" + (" (special)" if token["special"] else "")
        spans.append(
            f'<span class="tkn{" special" if token["special"] else ""}" title="{_e(title)}" '
            f'style="{style}; border-radius: 3px; margin: 0 1px; padding: 0 1px">{_e(piece).replace(chr(10), "↵" + chr(10))}</span>'
        )
    specials = sum(1 for t in result["tokens"] if t["special"])
    per_token = "n/a" if result["chars_per_token"] is None else f"{result['chars_per_token']:.2f}"
    over = result["count"] > result["max_context"]
    return (
        '<div class="tokenization">'
        f'<div><b class="token-count" style="color: {"#dc2626" if over else "inherit"}">{result["count"]}</b> tokens '
        f"({specials} special) of the model's {result['max_context']}-token context · {per_token} characters per token</div>"
        '<div style="white-space: pre-wrap; font-family: ui-monospace, monospace; line-height: 1.9">'
        + "".join(spans)
        + "</div>"
        + _notes_html(result.get("notes", []))
        + "</div>"
    )
