"""Assembles the app from its tabs; each tab has one builder in ui/tabs/."""

from __future__ import annotations

import gradio as gr

from backend.playground import Playground
from ui.controls import RunControls
from ui.tabs.feature_extraction import build_feature_extraction_tab
from ui.tabs.fill_mask import build_fill_mask_tab
from ui.tabs.question_answering import build_question_answering_tab
from ui.tabs.summarization import build_summarization_tab
from ui.tabs.text_classification import build_text_classification_tab
from ui.tabs.text_generation import build_text_generation_tab
from ui.tabs.token_classification import build_token_classification_tab
from ui.tabs.translation import build_translation_tab
from ui.tabs.zero_shot import build_zero_shot_tab

INTRO = """# Transformers Playground
See how a model produced its answer: every new token with its probability, the alternatives it
beat, the entropy of the distribution it was drawn from, and the cost (time to first token, time
per token, memory). Every run is logged."""


#: How long Gradio's queue loops sleep between polls when there is nothing to start. Gradio
#: 6.31 polls every 1 ms (and its progress loop every 10 ms), on the event loop of the process
#: that generates: each wake-up takes the GIL from the generation thread, and on a 2-core CPU
#: that cost bare generate() about 9 % of its speed (bench/queue_poll.py). 20 ms adds at most
#: 20 ms before a queued run starts.
QUEUE_POLL_SECONDS = 0.02


def enable_queue(demo: gr.Blocks, poll_seconds: float = QUEUE_POLL_SECONDS) -> gr.Blocks:
    """Gradio's queue, one run at a time per event (the models share one CPU or GPU), polling
    for work every `poll_seconds` instead of every millisecond."""
    demo.queue(default_concurrency_limit=1)
    queue = demo._queue  # no public setting for the poll interval (gradio 6.31, pinned)
    for name in ("sleep_when_free", "progress_update_sleep_when_free"):
        if not isinstance(getattr(queue, name, None), float):
            raise RuntimeError(f"gradio's queue has no float {name!r} any more: review enable_queue()")
        setattr(queue, name, max(poll_seconds, getattr(queue, name)))
    return demo


def build_demo(playground: Playground) -> gr.Blocks:
    controls = RunControls()
    with gr.Blocks(title="Transformers Playground") as demo:
        gr.Markdown(INTRO)
        with gr.Tabs():
            build_text_generation_tab(playground, controls)
            build_text_classification_tab(playground)
            build_zero_shot_tab(playground)
            build_token_classification_tab(playground)
            build_question_answering_tab(playground)
            build_summarization_tab(playground, controls)
            build_translation_tab(playground, controls)
            build_fill_mask_tab(playground)
            build_feature_extraction_tab(playground)
    return demo
