"""Inputs and outputs processed in the handler's thread (ui.processing) equal what Gradio's own
preprocessing and postprocessing make of them."""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import datetime
import typing
from typing import Any

import gradio as gr
import orjson
from gradio import utils
from gradio.server_messages import ProcessCompletedMessage
from gradio.state_holder import SessionState

from ui.inputs import ParamSlider, RawNumber
from ui.processing import Processed, postprocessed, preprocessed, resolved_annotations
from ui.tabs.generation import plot_data


def _blocks() -> tuple[gr.Blocks, list[gr.components.Component], list[gr.components.Component]]:
    """An event with inputs and outputs of the kinds the generative tabs have."""
    with gr.Blocks() as demo:
        inputs = [gr.Textbox(), gr.Dropdown(choices=["a", "b"], allow_custom_value=True), ParamSlider(), RawNumber(), gr.Checkbox()]
        outputs = [gr.HTML(), gr.Plot(), gr.Markdown(), gr.Dataframe(headers=["rank", "text"]), gr.Number(), gr.JSON(), gr.State()]
        gr.Button().click(lambda *args: None, inputs, outputs)
    return demo, inputs, outputs


def test_outputs_equal_gradios_postprocessing() -> None:
    demo, _, outputs = _blocks()
    updates = [
        (
            "<span>tok</span>",
            plot_data('{"data": [], "layout": {}}'),
            "  indented **markdown**\n  text",
            [[1, "first"], [2, "second"]],
            7,
            {"text": "x", "tokens": [{"p": 0.5, "alternatives": [1, 2]}], "nan": None, "inf": float("nan"), "t": (1, "a")},
            ("kept", "as is"),
        ),
        (None, None, "", gr.update(value=[[1, "only"]], visible=True), None, [{"a": [1.5, None]}, "b"], None),
        ("", None, "", [], 0, {"date": datetime.date(2026, 12, 7), "json text": JsonText('{"k": [1, 2]}')}, None),
    ]
    for values in updates:  # (Gradio pops the value out of an update: each call gets its own copy)
        expected = _gradio_postprocess(demo, outputs, copy.deepcopy(values), postprocess=True)
        ours = _gradio_postprocess(demo, outputs, postprocessed(outputs, copy.deepcopy(values)), postprocess=False)
        assert _sent(ours) == _sent(expected), values
    # what a value becomes, not only that both agree: the plot and the table as the browser gets them
    sent = postprocessed(outputs, updates[0])
    assert sent[1]["type"] == "plotly" and sent[3]["data"] == [[1, "first"], [2, "second"]]
    assert sent[6] == ("kept", "as is")


def test_a_processed_value_is_sent_as_it_was_made_a_copy_each_time() -> None:
    _, _, outputs = _blocks()
    made = Processed(postprocessed([outputs[3]], [[]])[0])
    first, second = postprocessed([outputs[3]], [made])[0], postprocessed([outputs[3]], [made])[0]
    assert first == second == made.payload == outputs[3].postprocess([]).model_dump()
    assert first is not made.payload and first is not second


class JsonText:
    """An object whose string is JSON (gr.JSON parses such a string)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def _sent(outputs: list[Any]) -> bytes:
    """An update's outputs as the browser receives them: in the message Gradio serializes for its
    event stream (a gr.JSON value may be a pydantic model until then)."""
    message = ProcessCompletedMessage(output={"data": outputs}, success=True)
    return orjson.dumps(message.model_dump()["output"]["data"], default=str)


def _gradio_postprocess(demo: gr.Blocks, outputs: list, values: Any, *, postprocess: bool) -> list[Any]:
    fn = next(iter(demo.fns.values()))
    fn.postprocess = postprocess
    return _run(demo.postprocess_data(fn, list(values), SessionState(demo)))


def _run(coroutine: Any) -> Any:
    """Gradio's coroutine, run to its end on an event loop of its own thread (a browser test in the
    same session may leave a loop running in this one)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def test_inputs_equal_gradios_preprocessing() -> None:
    demo, inputs, _ = _blocks()
    fn = next(iter(demo.fns.values()))
    payloads = ["a prompt", "custom model", 0.7, None, True]
    expected = _run(demo.preprocess_data(fn, list(payloads), SessionState(demo)))
    names = [f"in{i}" for i in range(len(inputs))]
    ours = preprocessed(dict(zip(names, inputs, strict=True)), dict(zip(names, payloads, strict=True)))
    assert list(ours.values()) == expected
    assert preprocessed({"t": inputs[0]}, {"t": 12})["t"] == "12"  # a Textbox makes a string of what it gets


def test_resolved_annotations_leave_gradio_the_same_parameters() -> None:
    def handler(model: str, request: gr.Request, browser_id: str | None = None, progress: gr.Progress = gr.Progress(),
                **values: Any) -> typing.Iterator[tuple[Any, ...]]:
        yield ()

    handler.__annotations__ = {k: str(v) if k != "request" else "gr.Request" for k, v in handler.__annotations__.items()}
    before = [p.name for p in utils.get_positional_input_parameters(handler)]
    resolved_annotations(handler)
    assert handler.__annotations__["request"] is gr.Request
    assert [p.name for p in utils.get_positional_input_parameters(handler)] == before == ["model", "browser_id"]
