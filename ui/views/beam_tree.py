"""The beam tree of a beam-search run, drawn from its JSON (`beam_tree` of the API's result): one
column per step, the step's candidates from best (top) to worst by cumulative score; lines join
each candidate to the live beam it extends; kept hypotheses in blue, pruned ones in grey,
finished ones as green diamonds, the winning path in gold. Hover a node for its numbers.

transformers starts every beam but the first at -1e9 (copies of the prompt that real hypotheses
replace at the next step); such placeholders are left out of the drawing and counted in the title.
"""

from __future__ import annotations

import json
from typing import Any

from ui.render import plotly_text

TREE_HELP = (
    "**The beam tree.** Each column is a step; each dot a candidate the live beams put forward (the best "
    "2 × num_beams by cumulative log-probability, best on top). Blue: kept as a live beam; grey: pruned; "
    "green diamond: a finished hypothesis (its score divided by length^length_penalty); gold: the returned "
    "best sequence. Hover a dot for its token, log-probability and scores."
)

#: Scores at or below this are transformers' placeholders (-1e9), not hypotheses.
PLACEHOLDER = -1.0e8


def _real(node: dict[str, Any]) -> bool:
    return node["score"] is not None and node["score"] > PLACEHOLDER


def _hover(node: dict[str, Any]) -> str:
    lines = [
        f"<b>step {node['step']}</b> {plotly_text(repr(node['text']))} (token {node['token_id']})",
        f"log p {node['logprob']:.3f} · cumulative {node['score']:.3f}" if node["logprob"] is not None else "log p -inf",
    ]
    if node["finished"] and node["final_score"] is not None:
        lines.append(f"finished: score / length^lp = {node['final_score']:.4f}")
    status = "kept" if node["kept"] else ("finished" if node["finished"] else "pruned")
    if node["rank"] < 0:
        status += " · drawn by beam sampling outside the top candidates"
    else:
        status += f" · rank {node['rank']} of the step"
    if node.get("returned") is not None:
        status += " · on the best returned sequence" if node["returned"] == 0 else f" · on returned sequence {node['returned'] + 1}"
    lines.append(status)
    return "<br>".join(lines)


def beam_tree_json(tree: dict[str, Any] | None) -> str | None:
    """The tree as plotly's figure JSON (None without a tree)."""
    if not tree:
        return None
    nodes = [n for n in tree["nodes"] if _real(n)]
    hidden = len(tree["nodes"]) - len(nodes)
    rows = tree["candidates_per_step"]
    by_id = {n["id"]: n for n in nodes}

    def y(node: dict[str, Any]) -> int:
        return node["rank"] if node["rank"] >= 0 else rows  # drawn candidates below the ranked ones

    edges: dict[str, tuple[list[Any], list[Any]]] = {"pruned": ([], []), "kept": ([], []), "winner": ([], [])}
    for node in nodes:
        parent = by_id.get(node["parent"]) if node["parent"] is not None else None
        if parent is None:
            continue
        kind = "winner" if node["winner"] else ("kept" if node["kept"] or node["finished"] else "pruned")
        xs, ys = edges[kind]
        xs.extend([parent["step"], node["step"], None])
        ys.extend([y(parent), y(node), None])
    styles = {"pruned": ("#d1d5db", 1), "kept": ("#93c5fd", 1.5), "winner": ("#d97706", 3)}
    data: list[dict[str, Any]] = [
        {
            "type": "scatter", "mode": "lines", "x": xs, "y": ys, "hoverinfo": "skip", "showlegend": False,
            "line": {"color": styles[kind][0], "width": styles[kind][1]},
        }
        for kind, (xs, ys) in edges.items()
    ]
    groups = {
        "pruned": [n for n in nodes if not (n["kept"] or n["finished"] or n["winner"])],
        "kept": [n for n in nodes if n["kept"] and not n["winner"]],
        "finished": [n for n in nodes if n["finished"] and not n["winner"]],
        "best sequence": [n for n in nodes if n["winner"]],
    }
    markers = {
        "pruned": {"color": "#9ca3af", "size": 6},
        "kept": {"color": "#2563eb", "size": 8},
        "finished": {"color": "#16a34a", "size": 11, "symbol": "diamond"},
        "best sequence": {"color": "#d97706", "size": 11},
    }
    for name, group in groups.items():
        data.append({
            "type": "scatter",
            "mode": "markers+text" if name == "best sequence" else "markers",
            "name": name,
            "x": [n["step"] for n in group],
            "y": [y(n) for n in group],
            "text": [plotly_text(n["text"]) for n in group] if name == "best sequence" else None,
            "textposition": "top center",
            "customdata": [_hover(n) for n in group],
            "hovertemplate": "%{customdata}<extra></extra>",
            "marker": markers[name],
        })
    title = f"Beam search: {tree['num_beams']} beams, {tree['steps']} steps, {len(nodes)} candidates"
    if hidden:
        title += f" ({hidden} placeholders at -1e9 left out)"
    layout = {
        "title": {"text": plotly_text(title)},
        "height": max(300, 90 + 24 * (rows + 1)),
        "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
        "xaxis": {"title": {"text": "step (position of the new token)"}, "dtick": 1 if tree["steps"] <= 30 else None},
        "yaxis": {"title": {"text": "rank by cumulative score"}, "autorange": "reversed", "dtick": 1},
        "legend": {"orientation": "h", "y": -0.15},
        "hovermode": "closest",
    }
    return json.dumps({"data": data, "layout": layout})
