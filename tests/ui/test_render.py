"""Views: tokens are escaped, the chart has the three series and the alternatives in hover."""

from __future__ import annotations

from backend.capture import Alternative, TokenStep
from backend.metrics import RunMetrics
from ui.render import metrics_markdown, probability_chart, probability_figure, tokens_html


def step(position: int, text: str, prob: float = 0.5) -> TokenStep:
    alternatives = (Alternative(1, text, prob, 0.4), Alternative(2, "<i>", 0.0, 0.3))
    return TokenStep(position, 1, text, prob, 0.4, 1.5, 2.0, alternatives, 0.01 * position)


def test_tokens_are_escaped_never_rendered_as_html() -> None:
    page = tokens_html("<script>alert(1)</script>", [step(0, "<b>"), step(1, '" onmouseover="x')])
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>" not in page and "&lt;b&gt;" in page
    assert 'onmouseover="x' not in page


def test_token_colour_follows_probability() -> None:
    page = tokens_html("", [step(0, "a", 0.0), step(1, "b", 1.0)])
    assert "hsl(0, 75%, 82%)" in page and "hsl(120, 75%, 82%)" in page


def test_chart_has_sampled_raw_and_entropy_with_escaped_alternatives() -> None:
    figure = probability_figure([step(0, "<b>"), step(1, "x", 0.9)])
    names = [trace.name for trace in figure.data]
    assert names == ["entropy (bits)", "p chosen (sampled distribution)", "p chosen (raw model)"]
    assert list(figure.data[1].y) == [0.5, 0.9] and list(figure.data[2].y) == [0.4, 0.4]
    hover = figure.data[1].customdata[0]
    assert "&lt;i&gt;" in hover and "<i>" not in hover and "0.000 / 0.300" in hover


def test_metrics_line() -> None:
    metrics = RunMetrics(3, 10, 0.05, 0.002, 150.0, 0.07, 300 * 2**20, "rss")
    line = metrics_markdown(metrics, seed=42, finish_reason="length", chain="raw logits → softmax")
    assert "**TTFT** 50.0 ms" in line and "**TPOT** 2.0 ms" in line and "150.0 tokens/s" in line
    assert "**peak RSS** 300 MiB" in line and "**seed** 42" in line


def test_markdown_text_shows_what_was_typed() -> None:
    from ui.render import md_text

    typed = '**bold** _it_ [link](http://x) ![img](http://y) <img src="http://z"> # title\n1. item `code` | a & b \\ end'
    escaped = md_text(typed)
    assert "<img" not in escaped and "&lt;img" in escaped and "&amp;" in escaped
    for mark in ("**", "[link]", "![img]", "(http://x)", "`code`"):
        assert mark not in escaped
    assert escaped.replace("\\", "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == typed.replace("\\", "")


def test_an_unknown_model_typed_into_the_picker_is_described_as_text(playground) -> None:
    from ui.models import describe_model

    shown = describe_model(playground, '<img src="http://example.invalid/x.png"> ![i](http://e.invalid)')
    assert "<img" not in shown and "![i]" not in shown and shown.startswith("model must be one of")


def test_a_remote_step_with_one_distribution_renders_without_numbers_it_lacks() -> None:

    step = TokenStep(position=0, token_id=5, text="<b>", prob=None, raw_prob=0.4, entropy=None, raw_entropy=None,
                     alternatives=(Alternative(5, "<b>", None, 0.4),), elapsed_s=0.1, probabilities="raw")
    page = tokens_html("p", [step])
    assert "&lt;b&gt;" in page and "<b>" not in page.replace('<span class="prompt"', "")
    assert 'data-p="0.4000"' in page and "p=n/a (raw 0.400)" in page
    chart = probability_chart([step])
    sampled, raw = chart["data"][1], chart["data"][2]
    assert sampled["y"] == [None] and "not reported" in sampled["name"] and sampled["hoverinfo"] == "skip"
    assert raw["y"] == [0.4] and "raw probabilities" in raw["customdata"][0] and "n/a / 0.400" in raw["customdata"][0]
