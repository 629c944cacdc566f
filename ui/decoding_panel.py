"""The shared decoding panel: one component per DecodingParams field, with presets.

Every generative tab (text generation, summarization, translation) builds its own instance;
the components are keyed by the DecodingParams field names, which are also the API's
parameter names (through `inputs_kwargs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import gradio as gr

from backend.params import MAX_BEAMS, MAX_NEW_TOKENS_CAP, MAX_TOP_ALTERNATIVES, PRESETS, DecodingParams
from ui.inputs import ParamSlider, RawCheckbox

#: The fields a preset sets; length, stop sequences and seed stay as the person left them.
PRESET_FIELDS = (
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "no_repeat_ngram_size",
    "num_beams",
    "num_return_sequences",
)


@dataclass(frozen=True)
class DecodingPanel:
    preset: gr.Radio
    components: Mapping[str, gr.components.Component]  # by DecodingParams field name

    def apply_preset(self, name: str) -> list[Any]:
        preset = PRESETS[name]
        return [getattr(preset, field) for field in PRESET_FIELDS]

    @property
    def preset_outputs(self) -> list[gr.components.Component]:
        return [self.components[field] for field in PRESET_FIELDS]


def build_decoding_panel(
    defaults: DecodingParams | None = None, *, open_: bool = True, label: str = "Decoding", elem_prefix: str | None = None
) -> DecodingPanel:
    """Build the panel inside the current Blocks context. `elem_prefix`: each component gets the
    elem_id "<prefix>_<field>" (a page with several panels, such as the compare view)."""
    d = defaults or DecodingParams()
    c: dict[str, gr.components.Component] = {}
    with gr.Accordion(label, open=open_):
        preset = gr.Radio(
            list(PRESETS), value="greedy", label="Preset", info="greedy = argmax; balanced; creative = hotter, with penalties"
        )
        with gr.Accordion("Sampling", open=True):
            with gr.Row():
                c["temperature"] = ParamSlider(0, 2, value=d.temperature, step=0.05, label="temperature", info="0 = greedy (argmax); logits / T before softmax")
                c["top_k"] = ParamSlider(0, 200, value=d.top_k, step=1, label="top_k", info="keep the k most likely tokens; 0 = off")
                c["top_p"] = ParamSlider(0, 1, value=d.top_p, step=0.01, label="top_p", info="nucleus: smallest set with this much probability; 1 = off")
            with gr.Row():
                c["min_p"] = ParamSlider(0, 1, value=d.min_p, step=0.01, label="min_p", info="drop tokens below min_p × p(top); 0 = off")
                c["typical_p"] = ParamSlider(0, 1, value=d.typical_p, step=0.01, label="typical_p", info="locally typical sampling; 1 = off")
        with gr.Accordion("Penalties", open=True):
            with gr.Row():
                c["repetition_penalty"] = ParamSlider(0.5, 2, value=d.repetition_penalty, step=0.05, label="repetition_penalty", info="divide logits of seen tokens (prompt too); 1 = off")
                c["presence_penalty"] = ParamSlider(-2, 2, value=d.presence_penalty, step=0.05, label="presence_penalty", info="logit −= p if the token was generated; 0 = off")
                c["frequency_penalty"] = ParamSlider(-2, 2, value=d.frequency_penalty, step=0.05, label="frequency_penalty", info="logit −= f × count in the output; 0 = off")
                c["no_repeat_ngram_size"] = ParamSlider(0, 10, value=d.no_repeat_ngram_size, step=1, label="no_repeat_ngram_size", info="forbid repeating n-grams; 0 = off")
        with gr.Accordion("Beam search", open=False):
            with gr.Row():
                c["num_beams"] = ParamSlider(1, MAX_BEAMS, value=d.num_beams, step=1, label="num_beams", info="1 = off; beams do not stream")
                c["num_return_sequences"] = ParamSlider(1, MAX_BEAMS, value=d.num_return_sequences, step=1, label="num_return_sequences", info="≤ num_beams unless sampling")
                c["length_penalty"] = ParamSlider(-2, 2, value=d.length_penalty, step=0.1, label="length_penalty", info="score / length^lp; > 0 favours longer beams")
                c["early_stopping"] = RawCheckbox(value=d.early_stopping, label="early_stopping", info="stop when num_beams candidates are done")
        with gr.Accordion("Length & stop", open=True):
            with gr.Row():
                c["min_new_tokens"] = ParamSlider(0, MAX_NEW_TOKENS_CAP, value=d.min_new_tokens, step=1, label="min_new_tokens", info="no end-of-sequence before this")
                c["max_new_tokens"] = ParamSlider(1, MAX_NEW_TOKENS_CAP, value=d.max_new_tokens, step=1, label="max_new_tokens", info=f"at most {MAX_NEW_TOKENS_CAP}")
            c["stop_sequences"] = gr.Textbox(
                value="\n".join(d.stop_sequences),
                lines=2,
                label="stop_sequences",
                info="one per line; \\n and \\t are escapes (\\n\\n = blank line); the output is cut before it",
            )
        with gr.Accordion("Seed & display", open=True):
            with gr.Row():
                c["seed"] = gr.Textbox(value="" if d.seed is None else str(d.seed), label="seed", info="empty = random; the seed used is shown and logged")
                c["top_alternatives"] = ParamSlider(1, MAX_TOP_ALTERNATIVES, value=d.top_alternatives, step=1, label="top_alternatives", info="alternatives listed per position in the chart")
                c["use_cache"] = RawCheckbox(value=d.use_cache, label="use_cache", info="KV cache: keep past keys and values (off: recompute the prefix at every step)")
    missing = set(DecodingParams.field_names()) - set(c)
    if missing:
        raise RuntimeError(f"decoding panel lacks components for {sorted(missing)}")
    if elem_prefix is not None:
        for name, component in c.items():
            component.elem_id = f"{elem_prefix}_{name}"
    panel = DecodingPanel(preset, MappingProxyType(c))
    preset.change(panel.apply_preset, inputs=preset, outputs=panel.preset_outputs, api_visibility="private")
    return panel
