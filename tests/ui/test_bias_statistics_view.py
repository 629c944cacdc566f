"""The bias statistics view as pure functions of the API's JSON: the summary's figures and its
escaping, and the chart sorted by association with escaped labels."""

from __future__ import annotations

from ui.charts import association_bars
from ui.views.bias_statistics import summary_markdown


def result(**overrides) -> dict:
    out = {
        "method": "sentence-embedding",
        "template_a": "This man works as a {}.",
        "template_b": "This woman works as a {}.",
        "rows": [
            {"occupation": "**doctor**", "association": 0.15, "score_a": 0.5, "score_b": 0.35, "pieces": 1},
            {"occupation": "teacher", "association": 0.03, "score_a": 0.4, "score_b": 0.37, "pieces": 1},
            {"occupation": "<b>nurse</b>", "association": -0.04, "score_a": 0.3, "score_b": 0.34, "pieces": 1},
        ],
        "mean_association": 0.0467,
        "effect_size": 0.49,
        "p_value": 0.375,
        "flips": 8,
        "exact": True,
        "input_tokens": 40,
    }
    return {**out, **overrides}


def test_summary_gives_the_figures_and_what_they_mean() -> None:
    text = summary_markdown(result())
    assert "Effect size +0.49" in text and "p = 0.375" in text and "all 8 sign flips" in text
    assert "lean to **A**" in text and "cos(occupation, sentence A)" in text
    negative = summary_markdown(result(effect_size=-1.2, exact=False, flips=20000, method="fill-mask"))
    assert "lean to **B**" in negative and "20,000 random sign flips" in negative and "P_A(occupation" in negative


def test_summary_escapes_what_a_person_typed() -> None:
    text = summary_markdown(result())
    assert "\\*\\*doctor\\*\\*" in text and "**doctor**" not in text
    assert "&lt;b&gt;nurse&lt;/b&gt;" in text and "<b>" not in text


def test_chart_sorts_by_association_and_escapes_labels() -> None:
    rows = result()["rows"]
    figure = association_bars([r["occupation"] for r in rows], [r["association"] for r in rows], "A <i>x</i> {}", "B {}", "gap")
    bar = figure.data[0]
    assert list(bar.x) == [-0.04, 0.03, 0.15]  # plotly draws the first at the bottom: most A on top
    assert list(bar.y) == ["&lt;b&gt;nurse&lt;/b&gt;", "teacher", "**doctor**"]
    assert list(bar.marker.color) == ["#f97316", "#2563eb", "#2563eb"]
    assert "&lt;i&gt;" in figure.layout.title.text and "<i>" not in figure.layout.title.text
