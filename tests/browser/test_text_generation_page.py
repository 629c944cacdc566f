"""A person in a browser: type a prompt, Generate, watch tokens stream and the chart grow, Stop."""

from __future__ import annotations

import time

from sqlalchemy import select

from backend.runlog import Run
from tests.offline import set_field


def choose_model(page, name: str) -> None:
    dropdown = page.locator("#tab_text_generation").get_by_label("Model", exact=True)
    dropdown.click()
    dropdown.fill(name)
    dropdown.press("Enter")
    page.wait_for_selector(f"text={name} · decoder")


def token_count(page) -> int:
    return page.locator("#text_generation_output span.tok").count()


def test_generate_streams_tokens_and_the_chart(page, served_app) -> None:
    page.get_by_label("Prompt").fill("Return the <b>bold</b> value")
    page.locator("#tab_text_generation").get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_selector("#text_generation_output .status:has-text('length')", timeout=30_000)
    output = page.locator("#text_generation_output")
    assert output.locator("span.tok").count() == 64  # the default max_new_tokens
    assert output.locator("b").count() == 0  # the typed <b> is text, not markup
    assert "<b>bold</b>" in output.inner_text()
    page.wait_for_selector("#text_generation_chart .js-plotly-plot", timeout=10_000)
    assert page.locator("#text_generation_chart .scatterlayer .trace").count() == 2
    assert "TTFT" in page.locator("#text_generation_metrics").inner_text()


def test_stop_ends_generation_and_keeps_the_partial_output(page, served_app) -> None:
    _, playground = served_app
    choose_model(page, "long-gpt2")
    set_field(page, "text_generation_max_new_tokens", "1024")
    page.get_by_label("Prompt").fill("Return the")
    page.locator("#tab_text_generation").get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_function("document.querySelectorAll('#text_generation_output span.tok').length > 0", timeout=30_000)
    first = token_count(page)  # (that updates grow is checked through the API)
    page.locator("#tab_text_generation").get_by_role("button", name="Stop", exact=True).click()
    page.wait_for_selector("#text_generation_output .status:not(:has-text('generating'))", timeout=60_000)
    status = page.locator("#text_generation_output .status").inner_text()
    assert status == "[cancelled]", f"{status}: {page.locator('#text_generation_metrics').inner_text()}"
    kept = token_count(page)
    assert first <= kept < 1024
    time.sleep(0.5)
    assert token_count(page) == kept  # nothing more arrives after Stop
    assert "finish cancelled" in page.locator("#text_generation_metrics").inner_text()
    with playground.runlog.session() as session:
        run = session.scalars(select(Run).where(Run.model == "long-gpt2").order_by(Run.id.desc())).first()
    assert run.status == "cancelled" and run.new_tokens == kept


def test_a_preset_fills_the_panel_and_the_run_uses_it(page, served_app) -> None:
    tab = page.locator("#tab_text_generation")
    tab.get_by_text("creative", exact=True).click()
    temperature = tab.get_by_label("number input for temperature")
    page.wait_for_function(
        "document.querySelector('#tab_text_generation input[aria-label=\"number input for temperature\"]').value === '1.1'",
        timeout=10_000,
    )
    assert temperature.input_value() == "1.1"
    tab.get_by_label("Prompt").fill("Return the")
    tab.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_selector("#text_generation_output .status:not(:has-text('generating'))", timeout=60_000)
    chain = page.locator("#text_generation_metrics").inner_text()
    assert "presence/frequency penalty → temperature → top-p" in chain
