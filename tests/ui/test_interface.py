"""The queue the app serves with: Gradio's 1 ms idle polling is slowed down, and a Gradio
upgrade that renames the settings fails here instead of silently losing the fix."""

from __future__ import annotations

import gradio as gr
import pytest

from ui.interface import QUEUE_POLL_SECONDS, enable_queue


def blocks() -> gr.Blocks:
    with gr.Blocks() as demo:
        gr.Markdown("x")
    return demo


def test_enable_queue_polls_every_queue_poll_seconds() -> None:
    demo = enable_queue(blocks())
    assert demo._queue.sleep_when_free == QUEUE_POLL_SECONDS
    assert demo._queue.progress_update_sleep_when_free == QUEUE_POLL_SECONDS
    assert demo._queue.default_concurrency_limit == 1


def test_enable_queue_never_polls_faster_than_gradio() -> None:
    demo = enable_queue(blocks(), poll_seconds=0.0)
    assert demo._queue.sleep_when_free >= 0.001 and demo._queue.progress_update_sleep_when_free >= 0.01


def test_enable_queue_fails_loudly_when_gradio_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    import gradio.queueing

    original = gradio.queueing.Queue.__init__

    def without_poll_setting(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        original(self, *args, **kwargs)
        del self.sleep_when_free

    monkeypatch.setattr(gradio.queueing.Queue, "__init__", without_poll_setting)
    with pytest.raises(RuntimeError, match="sleep_when_free"):
        enable_queue(blocks())
