"""A person in a browser: the History tab lists the run just made, opens it, replays it, and loads
it back into its tab."""

from __future__ import annotations

from playwright.sync_api import Page


def test_the_history_lists_opens_replays_and_loads_a_run(page: Page) -> None:
    tab = page.locator("#tab_text_generation")
    tab.get_by_label("seed").fill("11")
    tab.get_by_label("Prompt").fill("History of <i>this</i> run")
    tab.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_selector("#text_generation_output .status:not(:has-text('generating'))", timeout=60_000)
    run_id = page.locator("#text_generation_inspect_run input").input_value()

    page.get_by_role("tab", name="History", exact=True).click()
    page.wait_for_function("document.querySelector('#history_table').innerText.includes('History of')", timeout=30_000)
    page.locator("#history_table span.text", has_text="History of").first.click()  # a row opens the run
    page.wait_for_selector(f"#history_header:has-text('run {run_id}')", timeout=30_000)
    output = page.locator("#history_output")
    assert output.locator("span.tok").count() == 64 and output.locator("i").count() == 0
    assert "History of <i>this</i> run" in output.inner_text()
    page.locator("#history_chart .js-plotly-plot").wait_for(timeout=10_000)

    page.get_by_role("button", name="Replay", exact=True).click()
    page.wait_for_selector("#history_replay .replay", timeout=60_000)
    assert "identical ✓" in page.locator("#history_replay").inner_text()

    page.get_by_role("tab", name="Text generation", exact=True).click()
    tab.get_by_label("Prompt").fill("something else")
    tab.get_by_label("seed").fill("")
    page.get_by_role("tab", name="History", exact=True).click()
    page.get_by_role("button", name="Load into the tab", exact=True).click()
    page.wait_for_function(
        "document.querySelector('#tab_text_generation textarea').value === 'History of <i>this</i> run'", timeout=30_000
    )
    assert tab.is_visible() and tab.get_by_label("seed").input_value() == "11"
