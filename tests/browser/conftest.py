"""A real browser: Debian's chromium driven by Playwright, headless, against the served app."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.offline import app_page

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("chromium is missing: run tests/ensure_system.sh (the README's test command does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, served_app):
    with app_page(browser, served_app[0]) as page:
        yield page
