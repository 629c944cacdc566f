"""Plotly charts of the encoder tasks' results (labels, fills, the bias probe, similarities).
Every label and token in them is escaped: plotly renders a few HTML tags in text."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from ui.render import plotly_text


def _e(text: str) -> str:
    return plotly_text(text)


def score_bars(labels: Sequence[str], scores: Sequence[float], title: str, x_title: str = "probability") -> go.Figure:
    """Horizontal bars, best on top; every label, not just the top one."""
    order = sorted(range(len(labels)), key=lambda i: scores[i])
    figure = go.Figure(
        go.Bar(
            x=[scores[i] for i in order],
            y=[_e(labels[i]) for i in order],
            orientation="h",
            text=[f"{scores[i]:.3f}" for i in order],
            textposition="auto",
            marker_color="#2563eb",
            hovertemplate="%{y}: %{x:.4f}<extra></extra>",
        )
    )
    figure.update_layout(
        title=title,
        height=max(220, 60 + 28 * len(labels)),
        margin={"l": 10, "r": 20, "t": 40, "b": 40},
        xaxis={"title": x_title, "range": [0, max(1.0, max(scores, default=1.0))]},
        yaxis={"automargin": True},
    )
    return figure


def bias_comparison(tokens: Sequence[str], a: Sequence[float], b: Sequence[float], name_a: str, name_b: str) -> go.Figure:
    """Grouped bars: each token's probability in sentence A and in sentence B."""
    labels = [_e(t) for t in tokens]
    figure = go.Figure()
    figure.add_trace(go.Bar(y=labels, x=list(a), name=_e(name_a), orientation="h", marker_color="#2563eb"))
    figure.add_trace(go.Bar(y=labels, x=list(b), name=_e(name_b), orientation="h", marker_color="#f97316"))
    figure.update_layout(
        barmode="group",
        title="The same blank, two sentences: probability of each fill",
        height=max(260, 80 + 36 * len(tokens)),
        margin={"l": 10, "r": 20, "t": 60, "b": 40},
        xaxis={"title": "probability"},
        yaxis={"automargin": True, "autorange": "reversed"},
        legend={"orientation": "h", "y": 1.08},
    )
    return figure


def association_bars(occupations: Sequence[str], associations: Sequence[float], name_a: str, name_b: str,
                     x_title: str) -> go.Figure:
    """One bar per occupation, sorted by association: right (blue) leans to sentence A, left
    (orange) to sentence B."""
    order = sorted(range(len(occupations)), key=lambda i: associations[i])
    values = [associations[i] for i in order]
    figure = go.Figure(
        go.Bar(
            x=values,
            y=[_e(occupations[i]) for i in order],
            orientation="h",
            marker_color=["#2563eb" if v >= 0 else "#f97316" for v in values],
            hovertemplate="%{y}: %{x:.4f}<extra></extra>",
        )
    )
    figure.update_layout(
        title=f"← leans to B: {_e(name_b)}   ·   leans to A: {_e(name_a)} →",
        height=max(300, 80 + 22 * len(occupations)),
        margin={"l": 10, "r": 20, "t": 60, "b": 40},
        xaxis={"title": x_title, "zeroline": True, "zerolinewidth": 2},
        yaxis={"automargin": True},
    )
    return figure


def similarity_heatmap(sentences: Sequence[str], matrix: Sequence[Sequence[float]]) -> go.Figure:
    """Cosine similarity between every pair of sentences."""
    short = [_e(s if len(s) <= 40 else s[:37] + "…") for s in sentences]
    names = [f"{i + 1}. {s}" for i, s in enumerate(short)]
    figure = go.Figure(
        go.Heatmap(
            z=[list(row) for row in matrix],
            x=names,
            y=names,
            zmin=-1,
            zmax=1,
            colorscale="RdBu",
            text=[[f"{v:.3f}" for v in row] for row in matrix],
            texttemplate="%{text}",
            hovertemplate="%{y}<br>%{x}<br>cosine %{z:.4f}<extra></extra>",
        )
    )
    figure.update_layout(
        title="Cosine similarity between the sentences",
        height=max(320, 120 + 40 * len(sentences)),
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        xaxis={"automargin": True},
        yaxis={"automargin": True, "autorange": "reversed"},
    )
    return figure
