"""Serving a room on CPU: the batched decoding loop of a model in a process of its own.

In one process, the decoding loop (backend.batching) and the web server share one interpreter
lock, so the app uses about one core however many it has: on two cores, profiled with 16
streams, the loop took half of that core and Gradio with the request handlers the other half.
A `ProcessScheduler` runs the very same `DecodeScheduler` in a spawned process, on the same
weights (torch shares the parameters' memory with the child: nothing is copied or loaded
again), and computes each step's numbers there (backend.capture.step_numbers). The app's
process sends each request (token ids, parameters as applied, its chain, stop criteria) and
each Stop; the worker sends back every sequence's `RawStep`s and the requests that ended (with
their KV cache size or their error), in one message every 20 ms (at once for a first token or
an end). The request's own thread then gives the steps their texts, streams them and logs them,
as for a run decoded in the app's process.

The worker starts when a model's first streaming run arrives (a spawned Python with torch
takes a few seconds); until it is ready, runs decode in a thread of the app's process as
before, and a worker that cannot start (a model that cannot be shared) leaves them there. A
worker with nothing to decode for `WORKER_IDLE_SECONDS` is closed (the registry may unload the
model); the next run starts another. A worker that dies fails the runs it was decoding, with
a message; the app keeps serving.
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection

import torch
import torch.multiprocessing as multiprocessing
from transformers import LogitsProcessor, StoppingCriteria

from backend.batching import BatchRequest, DecodeScheduler, Figures, ServingStats, merged
from backend.capture import PendingStep, RawStep, StepChannel, step_numbers
from backend.heap import freeze_long_lived
from backend.params import DecodingParams

log = logging.getLogger(__name__)

#: A worker with nothing to decode for this long is closed (a new run starts another).
WORKER_IDLE_SECONDS = 300.0
#: After this many deaths of its workers, a model decodes in the app's process only.
MAX_DEATHS = 3
#: The worker sends its steps at least this often (a request's first token and its end at once).
FLUSH_SECONDS = 0.02


@dataclass(frozen=True)
class _Submit:
    """A request as the worker receives it."""

    rid: int
    input_ids: list[int]
    params: DecodingParams
    processors: LogitsProcessor
    eos_ids: frozenset[int]
    stop: StoppingCriteria | None


class ProcessScheduler:
    """The streaming runs of one CPU model, decoded together in a worker process (see the module
    docstring); the same interface as `DecodeScheduler`. `local` is the model's scheduler in
    this process: it decodes while the worker starts, and for good if the worker cannot run."""

    def __init__(
        self, local: DecodeScheduler, threads: int = 1, on_exit: Callable[[ProcessScheduler], None] = lambda scheduler: None
    ) -> None:
        self.name = local.name
        self.model = local.model
        self.max_batch = local.max_batch
        self.threads = threads
        self.on_exit = on_exit
        self._local = local
        local.on_exit = lambda _: self._exit_if_idle()  # (this scheduler is the one the engine forgets)
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._deaths = 0
        self._closed = False

    def submit(self, request: BatchRequest) -> None:
        with self._lock:  # (held while handing over: a worker is not retired or replaced meanwhile)
            if self._worker is None and not self._closed and self._deaths < MAX_DEATHS:
                self._worker = self._start()
            worker = self._worker
            if worker is not None and worker.ready.is_set() and worker.submit(request):
                return
        self._local.submit(request)

    @property
    def decoding(self) -> int:
        worker = self._worker
        return self._local.decoding + (worker.decoding if worker is not None else 0)

    @property
    def worker_pid(self) -> int | None:
        """The process that decodes the next run, when it is not this one."""
        worker = self._worker
        return worker.process.pid if worker is not None and worker.ready.is_set() else None

    def stats(self) -> ServingStats:
        worker = self._worker
        local = self._local.stats()
        if worker is None:
            return local
        where = f"worker process {worker.process.pid}" if worker.ready.is_set() else "the app's process (a worker starts)"
        return replace(merged(worker.stats(), local), decoded_in=where)

    def close(self) -> None:
        """End the worker (the runs it decodes fail); runs in the app's process go on."""
        with self._lock:
            self._closed = True
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()

    def close_when_idle(self) -> None:
        """Take no more runs; end the worker now if it decodes none, else when it has been idle
        for WORKER_IDLE_SECONDS (its runs go on to their end)."""
        with self._lock:
            self._closed = True
            worker = self._worker
            if worker is None or worker.in_flight:
                return
            self._worker = None
        worker.close()

    # -- the worker's life ----------------------------------------------------------------------

    def _start(self) -> _Worker | None:
        try:
            return _Worker(self)
        except Exception:  # the model cannot be shared with a child: its runs stay in this process
            log.exception("the decoding process of %s could not start; it decodes in the app's process", self.name)
            self._deaths = MAX_DEATHS
            return None

    def retire_worker(self, worker: _Worker) -> bool:
        """Close an idle worker, unless a run was handed to it meanwhile."""
        with self._lock:
            if worker.in_flight or self._worker is not worker:
                return False
            self._worker = None
        worker.close()
        self._exit_if_idle()
        return True

    def worker_died(self, worker: _Worker) -> None:
        with self._lock:
            if self._worker is worker:
                self._worker = None
                self._deaths += 1

    def _exit_if_idle(self) -> None:
        """Let the engine forget this scheduler (and the model) when nothing decodes; a scheduler
        whose worker died or could not start is kept, so that its count of deaths holds."""
        with self._lock:
            idle = self._worker is None and self._local.idle and self._deaths == 0
        if idle:
            self.on_exit(self)


class _Worker:
    """One decoding process, and the thread of the app's process that reads what it sends."""

    def __init__(self, owner: ProcessScheduler) -> None:
        self.owner = owner
        context = multiprocessing.get_context("spawn")
        commands_in, self._commands = context.Pipe(duplex=False)
        self._results, results_out = context.Pipe(duplex=False)
        self.process = context.Process(
            target=serve,
            args=(owner.model, owner.max_batch, owner.threads, commands_in, results_out),
            name=f"decode {owner.name}",
            daemon=True,
        )
        self.process.start()
        commands_in.close()  # (the child holds its own ends: their closing tells each side the other ended)
        results_out.close()
        self.ready = threading.Event()
        self.figures = Figures()
        self._send_lock = threading.Lock()
        self._requests: dict[int, BatchRequest] = {}
        self._started: set[int] = set()  # requests that have had a step
        self._cancelled: set[int] = set()  # requests whose Stop was sent
        self._ids = itertools.count()
        self._reader = threading.Thread(target=self._read, name=f"decode {owner.name} reader", daemon=True)
        self._reader.start()

    @property
    def in_flight(self) -> int:
        return len(self._requests)

    @property
    def decoding(self) -> int:
        return len(self._started)

    def stats(self) -> ServingStats:
        return self.figures.stats(len(self._requests) - len(self._started), len(self._started), self.owner.max_batch)

    def submit(self, request: BatchRequest) -> bool:
        """Hand a request to the worker; False if it cannot go (the caller decodes it here)."""
        rid = next(self._ids)
        message = _Submit(
            rid,
            request.input_ids[0].tolist(),
            request.params,
            request.processors,
            request.eos_ids,
            request.stop,
        )
        try:
            payload = pickle.dumps(("submit", message))
        except Exception:  # noqa: BLE001 - a chain that cannot be pickled decodes in the app's process
            log.exception("a run's chain cannot go to the decoding process of %s", self.owner.name)
            return False
        self._requests[rid] = request
        try:
            self._send(payload)
        except (OSError, ValueError):  # the worker has ended
            self._requests.pop(rid, None)
            return False
        return True

    def close(self) -> None:
        try:
            self._send(pickle.dumps(("close",)))
        except (OSError, ValueError):
            log.info("the decoding process of %s had ended before it was closed", self.owner.name)
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)

    def _send(self, payload: bytes) -> None:
        """A pickled command (plain pickle: a chain's few tensors travel as bytes, not as
        shared memory)."""
        with self._send_lock:
            self._commands.send_bytes(payload)

    def _read(self) -> None:
        try:
            while True:
                if not self._results.poll(WORKER_IDLE_SECONDS):
                    if self.owner.retire_worker(self):
                        return
                    continue
                message = self._results.recv()
                if message[0] == "ready":
                    self.ready.set()
                elif message[0] == "steps":
                    self._deliver(*message[1:])
        except (EOFError, OSError):
            log.info("the decoding process of %s has ended", self.owner.name)
        except Exception:  # a message this side cannot read: end the worker, fail its runs
            log.exception("reading the decoding process of %s failed", self.owner.name)
            self.process.terminate()
        self._end()

    def _deliver(
        self,
        loop_steps: list[tuple[float, int]],
        steps: list[tuple[int, RawStep]],
        ends: list[tuple[int, int | None, BaseException | None]],
    ) -> None:
        for now, sequences in loop_steps:
            self.figures.record(now, sequences)
        for rid, raw in steps:
            request = self._requests.get(rid)
            if request is not None:
                self._started.add(rid)
                request.channel.send(raw)
                request.on_token()
        for rid, cache_bytes, error in ends:
            request = self._requests.pop(rid, None)
            self._started.discard(rid)
            self._cancelled.discard(rid)
            if request is not None:
                request.channel.cache_bytes = cache_bytes
                request.channel.close(error)
        for rid, request in list(self._requests.items()):  # the runs stopped since the last step
            if request.cancel.is_set() and rid not in self._cancelled:
                self._cancelled.add(rid)
                try:
                    self._send(pickle.dumps(("cancel", rid)))
                except (OSError, ValueError):
                    break  # (it has ended: _read sees that next)

    def _end(self) -> None:
        """The worker has ended: every run it had fails with a message."""
        self.owner.worker_died(self)  # (first: no run is handed to it after this)
        self.process.join(timeout=5)
        lost = list(self._requests.values())
        self._requests.clear()
        self._started.clear()
        if lost:
            log.error("the decoding process of %s ended (exit code %s) with %d runs", self.owner.name, self.process.exitcode, len(lost))
        for request in lost:
            request.channel.close(
                RuntimeError(
                    f"the process that decoded {self.owner.name} ended (exit code {self.process.exitcode}); "
                    "this run was lost, run it again."
                )
            )


# -- the worker's side -----------------------------------------------------------------------


class _Outbox:
    """What the worker's decoding loop produced, sent to the app's process in one message: at
    once when a request has its first token or ends, otherwise every FLUSH_SECONDS (the request
    threads read their steps every 50 ms or more: generation.BATCH_SECONDS), so that a step's
    numbers are computed for many steps together, not one row at a time."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.steps: list[tuple[int, int, PendingStep]] = []  # (rid, alternatives wanted, step)
        self.ends: list[tuple[int, int | None, BaseException | None]] = []
        self.cancels: dict[int, threading.Event] = {}  # the Stop of each request not ended yet
        self.firsts = False  # a request had its first step since the last message
        self._counted = 0  # steps already in `loop_steps`
        self._loop_steps: list[tuple[float, int]] = []  # (time, sequences) of each decoding step
        self._sent = 0.0

    def flush(self) -> None:
        """Called by the loop after each of its steps."""
        now = time.perf_counter()
        if len(self.steps) > self._counted:
            self._loop_steps.append((now, len(self.steps) - self._counted))
            self._counted = len(self.steps)
        if not self.ends and not self.firsts and (not self.steps or now - self._sent < FLUSH_SECONDS):
            return
        steps, ends, loop_steps = self.steps, self.ends, self._loop_steps
        self.steps, self.ends, self._loop_steps, self.firsts, self._counted, self._sent = [], [], [], False, 0, now
        numbered: list[tuple[int, RawStep]] = []
        for k in sorted({k for _, k, _ in steps}):
            group = [(rid, step) for rid, wanted, step in steps if wanted == k]
            numbers = step_numbers([step for _, step in group], k)
            numbered.extend((rid, raw) for (rid, _), raw in zip(group, numbers, strict=True))
        self.connection.send(("steps", loop_steps, numbered, ends))


class _RelayChannel(StepChannel):
    """A request's channel in the worker: its steps and its end go to the outbox."""

    def __init__(self, rid: int, alternatives: int, outbox: _Outbox) -> None:
        super().__init__()
        self.rid = rid
        self.alternatives = alternatives
        self.outbox = outbox
        self.started = False

    def send(self, step: PendingStep | RawStep) -> None:
        assert isinstance(step, PendingStep)
        if not self.started:
            self.started = True
            self.outbox.firsts = True
        self.outbox.steps.append((self.rid, self.alternatives, step))

    def close(self, error: BaseException | None = None) -> None:
        if self.finished.is_set():
            return
        self.finished.set()
        self.outbox.cancels.pop(self.rid, None)
        self.outbox.ends.append((self.rid, self.cache_bytes, None if error is None else _portable(error)))


def _portable(error: BaseException) -> BaseException:
    """The error itself when it crosses to the app's process intact, else its type and text."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 - any failure to pickle means: send its text
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def serve(model: torch.nn.Module, max_batch: int, threads: int, commands: Connection, results: Connection) -> None:
    """The worker process: decode the requests that arrive, until told to close or the app ends.
    It ends with os._exit: its decoding thread may be inside torch, which aborts the process if
    the interpreter finalizes under it (the app's side fails what was decoding)."""
    _decode(model, max_batch, threads, commands, results)
    os._exit(0)


def _decode(model: torch.nn.Module, max_batch: int, threads: int, commands: Connection, results: Connection) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s decode-worker %(levelname)s %(name)s: %(message)s")
    if threads > 0:
        torch.set_num_threads(threads)
    outbox = _Outbox(results)
    cancels = outbox.cancels
    scheduler = DecodeScheduler(model, torch.device("cpu"), max_batch, threading.Lock(), name="worker", on_step=outbox.flush)
    freeze_long_lived()  # (the model and the modules: no full collection stalls the batch walking them)
    results.send(("ready",))
    while True:
        try:
            message = pickle.loads(commands.recv_bytes())
        except EOFError:  # the app's process ended
            return
        if message[0] == "close":
            return
        if message[0] == "cancel":
            event = cancels.get(message[1])
            if event is not None:
                event.set()
            continue
        submit: _Submit = message[1]
        cancel = cancels.setdefault(submit.rid, threading.Event())
        scheduler.submit(
            BatchRequest(
                input_ids=torch.tensor([submit.input_ids], dtype=torch.long),
                params=submit.params,
                processors=submit.processors,
                eos_ids=submit.eos_ids,
                stop=submit.stop,
                cancel=cancel,
                channel=_RelayChannel(submit.rid, submit.params.top_alternatives, outbox),
                on_token=lambda: None,
            )
        )
