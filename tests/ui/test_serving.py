"""The queue the app serves with: it polls every millisecond while idle (a run starts at once)
and slowly while a run is going (its wake-ups would take the GIL from the generation thread);
a Gradio upgrade that changes the queue fails here instead of silently losing the tuning."""

from __future__ import annotations

import gradio as gr
import pytest

from ui.serving import BUSY_POLL_SECONDS, BusyAwareQueue, enable_queue


def blocks() -> gr.Blocks:
    with gr.Blocks() as demo:
        gr.Markdown("x")
    return demo


def test_the_queue_polls_fast_while_idle_and_slowly_while_a_run_is_going() -> None:
    queue = enable_queue(blocks())._queue
    assert isinstance(queue, BusyAwareQueue)
    queue.active_jobs = [None, None]
    assert queue.sleep_when_free == 0.001  # gradio's own interval on Linux
    queue.active_jobs = [None, ["an event"]]
    assert queue.sleep_when_free == BUSY_POLL_SECONDS
    assert queue.progress_update_sleep_when_free == BUSY_POLL_SECONDS
    assert queue.default_concurrency_limit == 1


def test_the_queue_never_polls_faster_than_gradio_would() -> None:
    queue = enable_queue(blocks(), busy_poll_seconds=0.0)._queue
    queue.active_jobs = [["an event"]]
    assert queue.sleep_when_free >= 0.001 and queue.progress_update_sleep_when_free >= 0.01


def test_enable_queue_fails_loudly_when_gradio_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    import gradio.queueing

    original = gradio.queueing.Queue.__init__

    def without_poll_setting(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        original(self, *args, **kwargs)
        del self.sleep_when_free

    monkeypatch.setattr(gradio.queueing.Queue, "__init__", without_poll_setting)
    with pytest.raises(RuntimeError, match="review ui/serving.py"):
        enable_queue(blocks())


def test_the_raw_inputs_are_drawn_by_gradio_s_own_widgets() -> None:
    """Gradio draws a template component with its base widget; a subclass it does not take for
    one is fetched as a custom component, and the page never finishes loading."""
    from ui.inputs import ParamSlider, RawCheckbox, RawDropdown, RawNumber, RawRadio

    with gr.Blocks() as demo:
        components = [ParamSlider(0, 1), RawNumber(), RawDropdown(["a"]), RawRadio(["a"]), RawCheckbox()]
    config = demo.get_config_file()
    types = {c["id"]: c["type"] for c in config["components"]}
    assert [types[c._id] for c in components] == ["slider", "number", "dropdown", "radio", "checkbox"]


def test_generations_share_one_concurrency_group_that_admits_a_batch() -> None:
    from ui.serving import GENERATION_GROUP, generation_concurrency

    with gr.Blocks() as demo:
        a, b, c = gr.Button(), gr.Button(), gr.Button()
        a.click(lambda: None, concurrency_id=GENERATION_GROUP)
        b.click(lambda: None, concurrency_id=GENERATION_GROUP)
        c.click(lambda: None)
    enable_queue(demo, generation_concurrency(16))
    limits = sorted((fn.concurrency_id == GENERATION_GROUP, fn.concurrency_limit) for fn in demo.fns.values())
    assert limits == [(False, "default"), (True, 32), (True, 32)]  # the others keep the default of 1
    assert generation_concurrency(1) == 1
