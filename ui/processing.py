"""An event's inputs and outputs processed in its handler's own thread, not by Gradio.

For every input and every output of every update, Gradio 6.31 hands the component's
preprocess / postprocess to a worker thread of its own and awaits it on the event loop
(`Blocks.preprocess_data`, `Blocks.postprocess_data`): a Generate click with its 21 inputs makes
21 such trips before the handler starts, and each streamed update of 9 outputs 9 more. Each trip
needs the interpreter lock twice, which 16 generations at once, their run log and the server keep
busy: Gradio's own profiler (GRADIO_PROFILING=1) measured 74 ms of preprocessing per request
under 16 at once, for inputs whose preprocess returns them as they came (ui.inputs).

An event registered with `preprocess=False, postprocess=False` skips those trips; its handler calls
the very same component methods itself, with `preprocessed` and `postprocessed`."""

from __future__ import annotations

import copy
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import gradio as gr
import orjson
from gradio.data_classes import GradioModel, GradioRootModel

F = TypeVar("F", bound=Callable[..., Any])


def preprocessed(components: Mapping[str, gr.components.Component], payloads: Mapping[str, Any]) -> dict[str, Any]:
    """What each component's preprocess makes of the payload the client sent for it."""
    return {name: components[name].preprocess(payload) for name, payload in payloads.items()}


def postprocessed(components: Sequence[gr.components.Component], values: Sequence[Any]) -> tuple[Any, ...]:
    """One update, as Gradio's postprocessing would send it: each value through its component's
    postprocess (the value of a gr.update too; its other properties as they are)."""
    return tuple(_postprocessed(component, value) for component, value in zip(components, values, strict=True))


@dataclass(frozen=True)
class Processed:
    """A value already in the form its component's postprocess gives: made once (`postprocessed`),
    sent in many updates (a copy each time). A Dataframe's postprocess looks for polars on the
    import path three times a call (~0.3 ms)."""

    payload: Any


def _postprocessed(component: gr.components.Component, value: Any) -> Any:
    if isinstance(value, Processed):
        return copy.deepcopy(value.payload)
    if isinstance(value, dict) and value.get("__type__") == "update":
        update = dict(value)
        if "value" in update:
            update["value"] = _postprocessed(component, update["value"])
        return update
    if component.stateful:  # a gr.State keeps the value as it is
        return value
    if type(component) is gr.JSON and isinstance(value, (dict, list)):
        return _json_payload(value)
    result = component.postprocess(value)
    return result.model_dump() if isinstance(result, (GradioModel, GradioRootModel)) else result


def _json_payload(value: dict | list) -> Any:
    """What gr.JSON's postprocess and model_dump make of a dict or a list (its orjson round trip),
    without the pydantic model they validate it into and dump it out of on the way: 0.73 ms of a
    run's 0.93 ms of postprocessing for a 64-token result."""
    return orjson.loads(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATETIME, default=_json_default))


def _json_default(value: Any) -> Any:
    """gr.JSON's fallback for what orjson cannot write: a string that holds JSON is parsed, any
    other object becomes its string."""
    try:
        return orjson.loads(str(value))
    except orjson.JSONDecodeError:
        return str(value)


def resolved_annotations(fn: F) -> F:
    """`fn` with its annotations evaluated once: Gradio reads a handler's type hints at every call
    (`utils.get_positional_input_parameters`), and under `from __future__ import annotations`
    each read evaluates every annotation string again."""
    fn.__annotations__ = typing.get_type_hints(fn)
    return fn
