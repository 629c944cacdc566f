"""The inspector's views, drawn from its JSON: what each shows, and that a token that looks like
markup ("<script>", a quote that would close an attribute) is always shown as text."""

from __future__ import annotations

from typing import Any

from ui.render import tokens_html
from ui.views.inspection_render import (
    attention_html,
    head_choices,
    inspection_summary,
    lens_figure,
    stage_rows,
    stage_sentences_html,
    surprisal_html,
    tokenization_html,
    waterfall_figure,
)

EVIL = '<script>alert(1)</script>" onmouseover="x'


def candidate(token_id: int, text: str, prob: float) -> dict[str, Any]:
    return {"token_id": token_id, "text": text, "prob": prob}


def stage(name: str, label: str, probs: tuple[float, float], rank: int) -> dict[str, Any]:
    return {
        "name": name, "label": label, "description": "d", "support": 2, "entropy_bits": 1.0, "removed_mass": 0.0,
        "chosen_prob": probs[0], "chosen_rank": rank, "top": [candidate(7, EVIL, probs[0]), candidate(8, "b", probs[1])],
        "sentence": f"{label} did {EVIL}",
    }


def inspection() -> dict[str, Any]:
    return {
        "run_id": 3,
        "position": 1,
        "token": {"token_id": 7, "text": EVIL},
        "mode": "sample",
        "stages": [stage("raw", "raw", (0.4, 0.6), 2), stage("top-p", "top-p 0.5", (1.0, 0.0), 1), stage("final", "final", (1.0, 0.0), 1)],
        "attention": {
            "context": ["a", EVIL, "c"], "layers": 2, "heads": 2, "layer": 1,
            "weights": [[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]], "head_weights": [[0.0, 0.0, 1.0], [0.2, 0.2, 0.6]],
            "cross": {"context": ["s", EVIL], "weights": [[0.5, 0.5], [0.9, 0.1]], "head_weights": [[1.0, 0.0], [0.8, 0.2]]},
        },
        "logit_lens": [
            {"layer": 0, "name": "embeddings", "top": [candidate(8, "b", 0.5), candidate(7, EVIL, 0.2)], "chosen_rank": 2, "chosen_prob": 0.2},
            {"layer": 1, "name": "layer 1 (output)", "top": [candidate(7, EVIL, 0.4), candidate(8, "b", 0.3)], "chosen_rank": 1, "chosen_prob": 0.4},
        ],
        "notes": [f"note {EVIL}"],
    }


def no_markup(text: str) -> None:
    """HTML: no tag, and no quote that would close an attribute."""
    assert "<script>" not in text and 'onmouseover="x' not in text


def no_plotly_markup(text: str) -> None:
    """A plotly label: plotly reads a few tags (<b>, <br>, <a>...), and nothing else; quotes are plain text."""
    assert "<" not in text.replace("<br>", "")


def test_the_waterfall_has_a_column_per_stage_and_marks_the_chosen_token() -> None:
    figure = waterfall_figure(inspection())
    heatmap = figure.data[0]
    assert len(heatmap.x) == 3 and "top-p 0.5" in heatmap.x[1]
    assert heatmap.y[0].startswith("▶ ") and not heatmap.y[1].startswith("▶")
    assert [list(row) for row in heatmap.z] == [[0.4, 1.0, 1.0], [0.6, 0.0, 0.0]]
    assert heatmap.text[1][1] == "–"  # removed by top-p
    for label in (*heatmap.y, *heatmap.x):
        no_plotly_markup(label)
    assert stage_rows(inspection())[1] == ["top-p 0.5", 2, 1.0, 0.0, 1.0, 1]


def test_sentences_summary_and_notes_are_text() -> None:
    page = stage_sentences_html(inspection())
    no_markup(page)
    assert page.count("<li><b>") == 3 and "top-p 0.5 did" in page and "note &lt;script&gt;" in page
    summary = inspection_summary(inspection())
    no_markup(summary)
    assert "run 3, position 1" in summary and "raw p 0.4000 (rank 2) → final p 1.0000 (rank 1)" in summary


def test_attention_shows_the_chosen_layer_or_head_and_the_source() -> None:
    assert head_choices(inspection()) == [("mean of heads", "mean"), ("head 0", "0"), ("head 1", "1")]
    mean = attention_html(inspection())
    no_markup(mean)
    assert "layer 1 of 2" in mean and "most attended: &#x27;c&#x27; 0.800" in mean
    assert "Cross-attention over the source text" in mean and "&#x27;s&#x27; 0.900" in mean
    head = attention_html(inspection(), "0")
    assert "head 0" in head and "most attended: &#x27;c&#x27; 1.000" in head
    gone = attention_html({**inspection(), "attention": {"unavailable": f"too long {EVIL}"}})
    no_markup(gone)
    assert "not available" in gone


def test_the_logit_lens_has_a_row_per_layer_with_the_chosen_rank() -> None:
    heatmap = lens_figure(inspection()).data[0]
    assert list(heatmap.y) == ["embeddings · chosen rank 2", "layer 1 (output) · chosen rank 1"]
    assert heatmap.text[1][0].startswith("▶") and not heatmap.text[0][0].startswith("▶")
    for row in heatmap.text:
        for cell in row:
            no_plotly_markup(cell)
    unavailable = lens_figure({**inspection(), "logit_lens": {"unavailable": "no head"}})
    assert "no head" in unavailable.layout.annotations[0].text


def test_prompt_surprisal_colours_tokens_and_names_the_surprising_ones() -> None:
    result = {
        "run_id": 1,
        "tokens": [
            {"token_id": 1, "text": EVIL, "logprob": None, "rank": None, "alternatives": []},
            {"token_id": 2, "text": " b", "logprob": -0.1, "rank": 1, "alternatives": [candidate(2, " b", 0.9)]},
            {"token_id": 3, "text": " c", "logprob": -10.0, "rank": 40, "alternatives": [candidate(9, EVIL, 0.5)]},
        ],
        "perplexity": 12.18, "most_surprising": [2, 1], "notes": ["first"],
    }
    page = surprisal_html(result)
    no_markup(page)
    assert page.count('class="ptok"') == 3 and "12.18" in page and "most surprising: &#x27; c&#x27; (p 0.0000)" in page
    assert "hsl(0, 75%, 82%)" in page  # 14.4 bits of surprise: red
    assert "hsl(119, 75%, 82%)" in page  # 0.14 bits: green
    assert "14.4 bits of surprise" in page
    assert "not available" in surprisal_html({"unavailable": "encoder"})


def test_the_tokenizer_view_covers_the_text_and_marks_special_tokens() -> None:
    text = "ab <i>c"
    result = {
        "model": "m",
        "tokens": [
            {"token_id": 0, "text": "[CLS]", "start": None, "end": None, "special": True},
            {"token_id": 5, "text": "ab", "start": 0, "end": 2, "special": False},
            {"token_id": 6, "text": "Ġ<i>c", "start": 2, "end": 7, "special": False},
        ],
        "count": 3, "max_context": 2, "chars_per_token": 3.5, "notes": [],
    }
    page = tokenization_html(result, text)
    no_markup(page)
    assert "<i>" not in page and "&lt;i&gt;c" in page
    assert page.count('class="tkn special"') == 1 and page.count('class="tkn"') == 2
    assert "#dc2626" in page  # more tokens than the context: the count is red
    assert "3.50 characters per token" in page


def test_generated_tokens_carry_their_position_for_the_click() -> None:
    from tests.ui.test_render import step

    page = tokens_html("p", [step(0, "a"), step(1, "b")])
    assert 'data-pos="0"' in page and 'data-pos="1"' in page
