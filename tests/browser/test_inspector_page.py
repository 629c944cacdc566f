"""A person in a browser: generate, click a token, read why it came out; see how surprising the
prompt was; see how an encoder tab's model cuts the text into tokens. A reload keeps the
browser's owner id, so its runs stay inspectable."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.browser.test_task_tabs import open_tab


def generate_creative(page: Page) -> None:
    tab = page.locator("#tab_text_generation")
    tab.get_by_text("creative", exact=True).click()
    page.wait_for_function(
        "document.querySelector('#tab_text_generation input[aria-label=\"number input for temperature\"]').value === '1.1'",
        timeout=10_000,
    )
    tab.get_by_label("seed").fill("5")
    tab.get_by_label("Prompt").fill("Return the <b>number</b> of")
    tab.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_selector("#text_generation_output .status:not(:has-text('generating'))", timeout=60_000)
    page.wait_for_function("document.querySelector('#text_generation_inspect_run input').value !== ''", timeout=10_000)


def test_click_a_token_and_see_every_stage_of_its_chain(page: Page) -> None:
    generate_creative(page)
    tokens = page.locator("#text_generation_output span.tok")
    position = next(i for i in range(3, tokens.count()) if tokens.nth(i).inner_text().strip() and tokens.nth(i).is_visible())
    tokens.nth(position).click()
    page.wait_for_selector(f"#text_generation_inspect_summary:has-text('position {position}')", timeout=30_000)
    assert page.locator("#text_generation_inspect_position input").input_value() == str(position)
    waterfall = page.locator("#text_generation_waterfall")
    waterfall.locator(".js-plotly-plot").wait_for(timeout=10_000)
    columns = waterfall.locator(".xtick").all_text_contents()
    joined = "".join(columns).replace(" ", "")  # long titles are broken over two lines
    for stage in ("raw", "presence/frequency", "temperature 1.1", "top-p 0.95", "final"):
        assert stage.replace(" ", "") in joined, columns
    sentences = page.locator("#text_generation_stage_sentences").inner_text()
    assert "temperature 1.1" in sentences and "top-p 0.95" in sentences
    assert "Self-attention of this position" in page.locator("#text_generation_attention").inner_text()
    page.locator("#text_generation_lens .js-plotly-plot").wait_for(timeout=10_000)
    assert "layer 2 (output)" in " ".join(page.locator("#text_generation_lens .ytick").all_text_contents())


def test_prompt_surprisal_and_a_reload_keeps_the_owner(page: Page) -> None:
    generate_creative(page)
    run_id = page.locator("#text_generation_inspect_run input").input_value()
    owner = page.evaluate("localStorage.getItem('transformers-playground-owner')")
    assert owner and len(owner) == 36
    page.get_by_role("button", name="Show prompt surprisal").click()
    page.wait_for_selector("#text_generation_surprisal .perplexity", timeout=30_000)
    surprisal = page.locator("#text_generation_surprisal")
    assert surprisal.locator("span.ptok").count() > 3
    assert surprisal.locator("b", has_text="number").count() == 0  # the typed <b> is text
    page.reload()
    page.wait_for_selector("#text_generation_output", timeout=30_000)
    assert page.evaluate("localStorage.getItem('transformers-playground-owner')") == owner
    page.locator("#text_generation_inspect_run input").fill(run_id)
    page.locator("#text_generation_inspect_position input").fill("1")
    page.get_by_role("button", name="Inspect", exact=True).click()
    page.wait_for_selector(f"#text_generation_inspect_summary:has-text('run {run_id}, position 1')", timeout=30_000)


def test_a_stranger_browser_cannot_inspect_the_run(page: Page, browser, served_app) -> None:
    generate_creative(page)
    run_id = page.locator("#text_generation_inspect_run input").input_value()
    url, _ = served_app
    other = browser.new_context(viewport={"width": 1800, "height": 1400})  # another browser: its own storage
    stranger = other.new_page()
    stranger.goto(url)
    stranger.wait_for_selector("#text_generation_output", timeout=30_000)
    stranger.locator("#text_generation_inspect_run input").fill(run_id)
    stranger.get_by_role("button", name="Inspect", exact=True).click()
    stranger.get_by_text(f"run {run_id} is not one of yours.").first.wait_for(timeout=30_000)
    other.close()


def test_the_tokenizer_view_in_an_encoder_tab(page: Page) -> None:
    tab = open_tab(page, "Fill-mask", "tab_fill_mask")
    tab.get_by_label("Text with one mask token").fill("Return the [MASK] of <i>x</i>.")
    page.locator("#fill_mask_tokens").get_by_text("Tokens: how the model reads this text").click()
    tab.get_by_role("button", name="Show tokens").click()
    page.wait_for_selector("#fill_mask_tokenization .token-count", timeout=30_000)
    view = page.locator("#fill_mask_tokenization")
    specials = view.locator("span.tkn.special").all_inner_texts()
    assert specials[0] == "[CLS]" and specials[-1] == "[SEP]" and "[MASK]" in specials
    assert view.locator("i").count() == 0 and "<i>" in view.inner_text()
    assert "of the model's 64-token context" in view.inner_text()
