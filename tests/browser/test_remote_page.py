"""A person in a browser picks the model served by a real llama.cpp server: the page says what a
remote engine shows and what it cannot, tokens stream coloured by the engine's raw
probabilities, the chart draws the raw line only, and a view that needs the logits says why not."""

from __future__ import annotations

import pytest

from tests.offline import app_page
from tests.remote_app import REMOTE


@pytest.fixture()
def remote_page(browser, remote_app):
    with app_page(browser, remote_app[0]) as page:
        yield page


def test_a_remote_model_streams_with_its_engines_probabilities(remote_page) -> None:
    page = remote_page
    tab = page.locator("#tab_text_generation")
    dropdown = tab.get_by_label("Model", exact=True)
    dropdown.click()
    dropdown.fill(REMOTE)
    dropdown.press("Enter")
    page.wait_for_selector("text=Remote engine (llama.cpp):", timeout=10_000)
    assert "works on local models only" in tab.inner_text()
    page.get_by_label("Prompt").fill("The module <i>provides</i>")
    tab.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_selector("#text_generation_output .status:has-text('length')", timeout=30_000)
    output = page.locator("#text_generation_output")
    assert output.locator("span.tok").count() == 64 and output.locator("i").count() == 0
    title = output.locator("span.tok").first.get_attribute("title")
    assert "p=n/a (raw 0." in title
    assert float(output.locator("span.tok").first.get_attribute("data-p")) > 0
    page.wait_for_selector("#text_generation_chart .js-plotly-plot", timeout=10_000)
    assert "not reported by the engine" in page.locator("#text_generation_chart").inner_text()
    metrics = page.locator("#text_generation_metrics").inner_text()
    assert "served by the remote engine llama.cpp" in metrics and "measured at this app" in metrics
    assert "peak memory (not measured: a remote engine) n/a" in metrics and "the engine's own timings" in metrics
    assert "KV cache: kept by the remote engine (llama.cpp)" in page.locator("#text_generation_cost").inner_text()
