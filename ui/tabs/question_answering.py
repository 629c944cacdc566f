"""Extractive question answering: the answer highlighted in the context, its score, and the
top candidate spans (long contexts are read in overlapping windows)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from backend.playground import Playground
from backend.registry import Task
from ui.errors import user_facing_errors
from ui.forms import TabForm
from ui.identity import Identity
from ui.inputs import ParamSlider, RawCheckbox
from ui.render import md_text
from ui.tabs.common import notes_markdown, progress_fn, task_header
from ui.views.tokenizer import build_tokenizer_view


def highlight_answer(context: str, start: int, end: int) -> list[tuple[str, str | None]]:
    if end <= start:
        return [(context, None)]
    return [(context[:start], None), (context[start:end], "answer"), (context[end:], None)]


def build_question_answering_tab(playground: Playground, identity: Identity) -> dict[str, Any]:
    with gr.Tab("Question answering", id="question_answering", elem_id="tab_question_answering"):
        with gr.Row():
            with gr.Column(scale=2):
                model, _ = task_header(playground, Task.QUESTION_ANSWERING)
                question = gr.Textbox(label="Question")
                context = gr.Textbox(lines=8, label="Context")
                build_tokenizer_view(playground, model, context, "question_answering")
                with gr.Row():
                    top_n = ParamSlider(1, 20, value=5, step=1, label="top_n", info="candidate spans listed")
                    max_answer_len = ParamSlider(1, 100, value=30, step=1, label="max_answer_len", info="tokens")
                    doc_stride = ParamSlider(
                        0, 256, value=0, step=8, label="doc_stride",
                        info="overlap of the windows a long context is read in (tokens); 0 = automatic",
                    )
                with gr.Row():
                    align_to_words = RawCheckbox(
                        value=True, label="align_to_words", info="answers end at word boundaries (not inside a word)"
                    )
                    handle_impossible_answer = RawCheckbox(
                        value=False, label="handle_impossible_answer", info="'no answer' ([CLS]) may win"
                    )
                run = gr.Button("Answer", variant="primary")
                gr.Examples(  # the embedded QA model learned from docstrings and package descriptions
                    [
                        ["What does sorted return?",
                         "sorted: Return a new list containing all items from the iterable in ascending order. "
                         "A custom key function can be supplied to customize the sort order.\n"
                         "reversed: Return a reverse iterator over the values of the given sequence."],
                        ["What does the curl package provide?",
                         "curl: command line tool for transferring data with URL syntax. This package provides a "
                         "command line tool for getting or sending files using URL syntax. curl supports FTP, "
                         "HTTP, HTTPS, SCP, SFTP and many other protocols."],
                    ],
                    inputs=[question, context],
                )
            with gr.Column(scale=3):
                highlighted = gr.HighlightedText(label="Answer in the context", elem_id="question_answering_context")
                candidates = gr.Dataframe(
                    headers=["rank", "answer", "score", "start", "end", "window"], label="Candidate spans",
                    interactive=False, wrap=True,
                )
                notes = gr.Markdown()
                result = gr.JSON(label="Result (JSON, as the API returns it)", open=False)

    def question_answering(
        model: str, question: str, context: str, top_n: Any, max_answer_len: Any, doc_stride: Any,
        align_to_words: Any, handle_impossible_answer: Any,
        browser_id: str | None, request: gr.Request, progress: gr.Progress = gr.Progress(),
    ) -> tuple[Any, ...]:
        """Find the answer span in the context (or "no answer", when handle_impossible_answer lets it win).
        The last output is the JSON result."""
        with user_facing_errors():
            out = playground.question_answering(
                model, question, context, top_n, max_answer_len, doc_stride, progress_fn(progress),
                Identity.owner(browser_id, request),
                align_to_words=align_to_words, handle_impossible_answer=handle_impossible_answer,
            ).to_json()
        answers = out["answers"]
        rows = [[i + 1, a["text"], round(a["score"], 4), a["start"], a["end"], a["window"]] for i, a in enumerate(answers)]
        no_answer = out["answer"] == "" and out["no_answer_score"] is not None
        best = None if no_answer or not answers else answers[0]
        spans = highlight_answer(context, best["start"], best["end"]) if best else [(context, None)]
        if best is not None:
            headline = f"answer: **{md_text(best['text'])}** (score {best['score']:.3f})"
        else:
            headline = f"**no answer** (score {out['no_answer_score']:.3f}, above every span's)" if no_answer else "no answer"
        return spans, rows, notes_markdown(out["seconds"], out["notes"], headline), out

    run.click(
        question_answering,
        inputs=[model, question, context, top_n, max_answer_len, doc_stride, align_to_words, handle_impossible_answer, identity.state],
        outputs=[highlighted, candidates, notes, result],
        api_name="question_answering",
    )
    fields = {
        "question": question, "context": context, "top_n": top_n, "max_answer_len": max_answer_len, "doc_stride": doc_stride,
        "align_to_words": align_to_words, "handle_impossible_answer": handle_impossible_answer,
    }
    form = TabForm("question_answering", (Task.QUESTION_ANSWERING.value,), model, fields)
    return {"model": model, "question": question, "context": context, "run": run, "result": result, "form": form}
