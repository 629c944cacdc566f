"""Assembles the app from its tabs; each tab has one builder in ui/tabs/."""

from __future__ import annotations

import gradio as gr

from backend.playground import Playground
from ui.controls import RunControls
from ui.downloads import DELETE_CACHE, Downloads
from ui.identity import build_identity
from ui.tabs.feature_extraction import build_feature_extraction_tab
from ui.tabs.fill_mask import build_fill_mask_tab
from ui.tabs.history import build_history_tab
from ui.tabs.question_answering import build_question_answering_tab
from ui.tabs.summarization import build_summarization_tab
from ui.tabs.text_classification import build_text_classification_tab
from ui.tabs.text_generation import build_text_generation_tab
from ui.tabs.throughput import build_serving_tab
from ui.tabs.token_classification import build_token_classification_tab
from ui.tabs.translation import build_translation_tab
from ui.tabs.zero_shot import build_zero_shot_tab

INTRO = """# Transformers Playground
See how a model produced its answer: every new token with its probability, the alternatives it
beat, the entropy of the distribution it was drawn from, and the cost (time to first token, time
per token, memory). Click a generated token to see why it came out: each stage of the decoding
chain, the attention, the logit lens. Every run is logged; only you can read yours back."""


def build_demo(playground: Playground) -> gr.Blocks:
    controls = RunControls()
    downloads = Downloads()
    with gr.Blocks(title="Transformers Playground", delete_cache=DELETE_CACHE) as demo:
        identity = build_identity(demo)
        gr.Markdown(INTRO)
        with gr.Tabs() as tabs:
            forms = [
                build_text_generation_tab(playground, controls, identity).form,
                build_text_classification_tab(playground, identity)["form"],
                build_zero_shot_tab(playground, identity)["form"],
                build_token_classification_tab(playground, identity)["form"],
                build_question_answering_tab(playground, identity)["form"],
                build_summarization_tab(playground, controls, identity).form,
                build_translation_tab(playground, controls, identity).form,
                build_fill_mask_tab(playground, identity)["form"],
                build_feature_extraction_tab(playground, identity, downloads)["form"],
            ]
            build_history_tab(playground, identity, downloads, forms, tabs)
            live = build_serving_tab(playground, identity)

        def follow_tab(event: gr.SelectData) -> gr.Timer:
            """The Serving tab's live figures refresh only while it is open."""
            return gr.Timer(active=event.value == "Serving")

        tabs.select(follow_tab, outputs=[live], api_visibility="private", concurrency_limit=None)
    return demo
