"""Settings of a test's own playground (its models.yaml, an SQLite run log in its folder, offline,
CPU), the app served on it, and a browser page on that app."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from backend.settings import Settings


def offline_settings(folder: Path, models_file: Path, **env: str) -> Settings:
    """`env`: more environment variables (PLAYGROUND_MAX_LOADED_MODELS, PLAYGROUND_SHARED_HISTORY...)."""
    return Settings.from_env(
        {
            "PLAYGROUND_DB_URL": f"sqlite:///{folder / 'runs.sqlite'}",
            "PLAYGROUND_MODELS_FILE": str(models_file),
            "HF_HUB_OFFLINE": "1",
            "PLAYGROUND_DEVICE": "cpu",
            **env,
        }
    )


@contextmanager
def served(playground: Any) -> Iterator[str]:
    """The real app (build_demo on `playground`, with the queue app.py sets up) on a free loopback
    port; yields its URL. The playground stays the caller's to close."""
    from ui.interface import build_demo
    from ui.serving import enable_queue, generation_concurrency

    demo = enable_queue(build_demo(playground), generation_concurrency(playground.settings.max_batch))
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    try:
        yield demo.local_url.rstrip("/")
    finally:
        demo.close()


@contextmanager
def app_page(browser: Any, url: str) -> Iterator[Any]:
    """A fresh browser context on the app at `url`, its first tab drawn."""
    context = browser.new_context(viewport={"width": 1800, "height": 1400})
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#text_generation_output", timeout=30_000)
    try:
        yield page
    finally:
        context.close()


def set_field(page: Any, elem_id: str, value: str) -> None:
    """Type into a field of a panel that has just opened (its first keystrokes can land before the
    component listens: type again until it holds the value)."""
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    for _ in range(10):
        box.fill(value)
        box.press("Enter")
        page.wait_for_timeout(150)
        if box.input_value() == value:
            return
    raise AssertionError(f"{elem_id} does not take {value!r}")
