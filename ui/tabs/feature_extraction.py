"""Feature extraction: one embedding per sentence (one per line): dimension, norms, pooling, a
cosine-similarity heatmap, and the vectors as a CSV download."""

from __future__ import annotations

import csv
import io
from typing import Any

import gradio as gr

from backend.playground import Playground
from backend.registry import Task
from ui.charts import similarity_heatmap
from ui.downloads import Downloads
from ui.errors import user_facing_errors
from ui.forms import TabForm
from ui.identity import Identity
from ui.inputs import RawRadio
from ui.render import md_text
from ui.tabs.common import notes_markdown, progress_fn, task_header
from ui.views.tokenizer import build_tokenizer_view


def vectors_csv(sentences: list[str], vectors: list[list[float]]) -> str:
    """The vectors as CSV text: the sentence, then one column per dimension."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["sentence", *[f"d{i}" for i in range(len(vectors[0]) if vectors else 0)]])
    for sentence, vector in zip(sentences, vectors):
        writer.writerow([sentence, *[f"{v:.7g}" for v in vector]])
    return out.getvalue()


def build_feature_extraction_tab(playground: Playground, identity: Identity, downloads: Downloads) -> dict[str, Any]:
    with gr.Tab("Feature extraction", id="feature_extraction", elem_id="tab_feature_extraction"):
        with gr.Row():
            with gr.Column(scale=2):
                model, _ = task_header(playground, Task.FEATURE_EXTRACTION)
                sentences = gr.Textbox(
                    lines=6,
                    label="Sentences (one per line)",
                    value="A cat sits on the mat.\nA kitten rests on a rug.\nThe stock market fell sharply today.",
                )
                build_tokenizer_view(playground, model, sentences, "feature_extraction")
                pooling = RawRadio(["mean", "cls"], value="mean", label="Pooling", info="how token vectors become one")
                run = gr.Button("Embed", variant="primary")
            with gr.Column(scale=3):
                heatmap = gr.Plot(label="Cosine similarity", elem_id="feature_extraction_heatmap")
                table = gr.Dataframe(headers=["#", "sentence", "tokens", "norm before L2"], label="Embeddings", interactive=False, wrap=True)
                notes = gr.Markdown()
                download = gr.File(label="Vectors (CSV)", elem_id="feature_extraction_download")
                result = gr.JSON(label="Result (JSON, as the API returns it)", open=False)

    def feature_extraction(
        model: str, sentences: str, pooling: str, browser_id: str | None, request: gr.Request,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[Any, ...]:
        """Embed sentences (one per line): vectors, norms and their cosine similarities. The last output is the JSON result."""
        with user_facing_errors():
            out = playground.feature_extraction(
                model, sentences, pooling, progress_fn(progress), Identity.owner(browser_id, request)
            ).to_json()
        rows = [
            [i + 1, s, tokens, round(norm, 4)]
            for i, (s, tokens, norm) in enumerate(zip(out["sentences"], out["tokens"], out["norms"]))
        ]
        headline = f"dimension **{out['dimension']}** · pooling **{md_text(out['pooling'])}** · L2-normalised: {out['normalized']}"
        return (
            similarity_heatmap(out["sentences"], out["similarity"]),
            rows,
            notes_markdown(out["seconds"], out["notes"], headline),
            downloads.write("embeddings.csv", vectors_csv(out["sentences"], out["vectors"])),
            out,
        )

    run.click(
        feature_extraction,
        inputs=[model, sentences, pooling, identity.state],
        outputs=[heatmap, table, notes, download, result],
        api_name="feature_extraction",
    )
    form = TabForm("feature_extraction", (Task.FEATURE_EXTRACTION.value,), model, {"sentences": sentences, "pooling": pooling})
    return {"model": model, "sentences": sentences, "run": run, "heatmap": heatmap, "result": result, "form": form}
