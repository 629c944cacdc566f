"""How the app is served: Gradio's queue, tuned for a process that generates on a small CPU.

Gradio 6.31's queue loop polls for new work every millisecond (its progress loop every 10 ms) on
the event loop of the very process that generates. Each wake-up takes the GIL from the generation
thread: bare generate() ran 9-12 % slower beside 1 ms polls than beside 20 ms ones
(`python -m bench.queue_poll`). Polling slowly all the time has its own cost: a run waits up to
20 ms to start, and gradio_client, which reads its event stream every 50 ms, then often sees the
first token one read later (time to first token 137 ms against 92 ms, median of 8). So the queue
polls every millisecond while nothing runs and every 20 ms while a run is going: what arrives
meanwhile (a Stop, another tab's run) starts at most 20 ms later, and a second run of the same
event waits for the first anyway (one run at a time per event).
"""

from __future__ import annotations

import importlib.util
import sys

import gradio as gr
from gradio import queueing

#: Seconds between the queue's polls while a run is going (and between progress checks).
BUSY_POLL_SECONDS = 0.02


class BusyAwareQueue(queueing.Queue):
    """Gradio's queue with a poll interval that depends on whether a run is going. Gradio sets
    `sleep_when_free` in its constructor: that value stays the interval while idle."""

    idle_poll_seconds = 0.001
    busy_poll_seconds = BUSY_POLL_SECONDS

    @property
    def sleep_when_free(self) -> float:  # type: ignore[override]
        busy = any(job is not None for job in self.active_jobs)
        return self.busy_poll_seconds if busy else self.idle_poll_seconds

    @sleep_when_free.setter
    def sleep_when_free(self, value: float) -> None:
        self.idle_poll_seconds = value


#: The generative tabs' events share this concurrency group (one engine serves them all).
GENERATION_GROUP = "generation"


def generation_concurrency(max_batch: int) -> int:
    """How many generations Gradio lets run at once: with batching, twice what decodes together
    (the rest wait in the engine's own queue, where the Serving view counts them); without, one."""
    return 1 if max_batch <= 1 else 2 * max_batch


def skip_missing_matplotlib() -> None:
    """Gradio imports matplotlib twice around every function call it makes (for each streamed
    update too). Where matplotlib is not installed, each of those failing imports searches the
    whole sys.path under the interpreter lock (~1 ms, taken from the decoding loop): record it as
    missing once, so that the import fails at once, as it would anyway."""
    if "matplotlib" not in sys.modules and importlib.util.find_spec("matplotlib") is None:
        sys.modules["matplotlib"] = None  # type: ignore[assignment]  # "import matplotlib" raises ImportError


def enable_queue(demo: gr.Blocks, generations: int = 1, busy_poll_seconds: float = BUSY_POLL_SECONDS) -> gr.Blocks:
    """Gradio's queue: the generations (the GENERATION_GROUP) `generations` at once, every other
    event one run at a time (the models share one CPU or GPU); polling slowly while a run is going."""
    skip_missing_matplotlib()
    demo.queue(default_concurrency_limit=1)
    for block in demo.fns.values():
        if block.concurrency_id == GENERATION_GROUP:
            block.concurrency_limit = generations
    queue = demo._queue  # no public setting for the poll intervals (gradio 6.31, pinned)
    if (
        type(queue) is not queueing.Queue
        or not isinstance(getattr(queue, "active_jobs", None), list)
        or not all(isinstance(vars(queue).get(name), float) for name in ("sleep_when_free", "progress_update_sleep_when_free"))
    ):
        raise RuntimeError("gradio's queue is not the one enable_queue() was written for: review ui/serving.py")
    idle = vars(queue)["sleep_when_free"]
    queue.__class__ = BusyAwareQueue
    queue.idle_poll_seconds = idle
    queue.busy_poll_seconds = max(busy_poll_seconds, idle)
    queue.progress_update_sleep_when_free = max(busy_poll_seconds, queue.progress_update_sleep_when_free)
    return demo
