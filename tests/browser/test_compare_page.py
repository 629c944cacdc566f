"""A person in a browser compares two settings on one seed and reads where and why they part; a
beam-search run shows the tree of hypotheses it weighed; every run shows what it cost."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.offline import set_field


def test_compare_shows_both_outputs_where_they_part_and_why(page: Page) -> None:
    tab = page.locator("#tab_text_generation")
    tab.get_by_label("Prompt").fill("Return the <b>number</b> of")
    page.locator("#text_generation_compare").get_by_text("Compare two settings").click()
    page.get_by_text("A: decoding").click()
    set_field(page, "text_generation_cmp_a_temperature", "1")
    set_field(page, "text_generation_cmp_a_max_new_tokens", "30")
    set_field(page, "text_generation_cmp_a_seed", "3")
    page.locator("#text_generation_cmp_copy").click()
    page.get_by_text("B: decoding").click()
    page.wait_for_function(
        "document.querySelector('#text_generation_cmp_b_temperature input')?.value === '1'", timeout=10_000
    )
    assert page.locator("#text_generation_cmp_b_seed input, #text_generation_cmp_b_seed textarea").first.is_disabled()
    set_field(page, "text_generation_cmp_b_top_p", "0.3")
    page.locator("#text_generation_compare_button").click()
    page.wait_for_selector("#text_generation_compare_summary p", timeout=60_000)
    page.wait_for_selector("#text_generation_compare_summary:has-text('top-p 0.3')", timeout=60_000)
    summary = page.locator("#text_generation_compare_summary").inner_text()
    assert "At position" in summary and "top_p: 1.0 → 0.3" in summary
    for side in ("a", "b"):
        output = page.locator(f"#text_generation_compare_{side}")
        assert output.locator("span.tok").count() >= 1
        assert output.locator(".diverge").count() == 1  # the first difference, outlined in both
        assert output.locator("b").count() == 0  # the typed <b> is text
    stages = page.locator("#text_generation_compare_stages").inner_text()
    assert "top-p 0.3" in stages and "raw" in stages
    metrics = page.locator("#text_generation_compare_metrics").inner_text()
    assert "TTFT" in metrics and "KV cache" in metrics
    page.locator("#text_generation_compare_latency .js-plotly-plot").wait_for(timeout=10_000)
    # a token of B opens in the inspector, with B's run
    b_tokens = page.locator("#text_generation_compare_b span.tok")
    b_tokens.nth(0).click()
    page.wait_for_selector("#text_generation_inspect_summary:has-text('position 0')", timeout=30_000)
    cells = [line.strip() for line in metrics.splitlines() if line.strip()]
    a_run, b_run = cells[cells.index("run id") + 1 : cells.index("run id") + 3]
    assert a_run != b_run and a_run.isdigit(), metrics
    assert page.locator("#text_generation_inspect_run input").input_value() == b_run


def test_a_beam_run_shows_its_tree_and_every_run_its_cost(page: Page) -> None:
    tab = page.locator("#tab_text_generation")
    tab.get_by_label("Prompt").fill("Return the")
    tab.get_by_text("Beam search", exact=True).first.click()
    set_field(page, "text_generation_num_beams", "3")
    set_field(page, "text_generation_max_new_tokens", "8")
    tab.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_selector("#text_generation_cost:has-text('× 3 sequences')", timeout=60_000)
    page.locator("#text_generation_beam_tree .js-plotly-plot").wait_for(timeout=30_000)
    legend = " ".join(page.locator("#text_generation_beam_tree .legendtext").all_text_contents())
    for name in ("kept", "pruned", "best sequence"):
        assert name in legend
    title = page.locator("#text_generation_beam_tree .gtitle").text_content()
    assert "3 beams" in title
    cost = page.locator("#text_generation_cost").inner_text()
    assert "context: prompt" in cost and "KV cache at the end" in cost and "× 3 sequences" in cost
    assert page.locator("#text_generation_sequences").is_visible()  # the returned sequences, ranked
    assert page.locator("#text_generation_sequences").inner_text().count("\n") >= 3

    # the next run searches no beams: the tree and the table go away again, and come back with beams
    set_field(page, "text_generation_num_beams", "1")
    tab.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_selector("#text_generation_cost:not(:has-text('× 3 sequences')):has-text('KV cache at the end')", timeout=60_000)
    page.locator("#text_generation_beam_tree").wait_for(state="hidden", timeout=10_000)
    assert not page.locator("#text_generation_sequences").is_visible()
    set_field(page, "text_generation_num_beams", "3")
    tab.get_by_role("button", name="Generate", exact=True).click()
    page.locator("#text_generation_beam_tree .js-plotly-plot").wait_for(timeout=60_000)
    assert page.locator("#text_generation_sequences").is_visible()
