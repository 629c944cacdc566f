"""Generation speed on the embedded generator: is per-token capture (and the app) nearly free?

Greedy decoding of exactly N new tokens (min_new_tokens = max_new_tokens, so an early end of
sequence cannot shorten a run), measured three ways in one run of this script:

  (a) bare `model.generate` (a timing-only streamer records the first token's arrival), run in
      a worker thread like the engine's: on a busy 2-core machine, generate() in the main thread
      with two OpenMP threads was measured 4-10x slower than in a worker thread (equal with one
      torch thread), so a main-thread baseline would flatter the engine
  (b) the engine: the explicit decoding chain, raw/final taps, a TokenStep per token
  (c) end to end: `python app.py` in a subprocess, driven by gradio_client's streaming API

It prints tokens/s and time to first token for each, and the ratios b/a and c/a (targets:
b/a >= 0.95, c/a >= 0.85). Each figure is the median of --repeats runs after a warm-up; the
three take turns, run by run. Diagnostic lines follow: b/a and c/a turn by turn (their spread shows how
noisy the machine was), and (c) split into the generation's own time inside the app (its
`metrics.total_s`) and what Gradio and gradio_client add around it (queueing, the first and
last messages; gradio_client reads its event stream every 50 ms), next to the time of a call
that does nothing (the app's Stop endpoint with no run going).

All three use --threads torch threads (default 1, the app through OMP_NUM_THREADS): on a shared
2-core machine two OpenMP threads made the same run swing tenfold from one minute to the next,
while one thread gave steady figures (and, for a 4 M-parameter model, no slower ones).

    python -m bench.generation_speed [--tokens 256] [--repeats 5] [--threads 1] [--model "stdlib-gpt2 (embedded)"]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers.generation.streamers import BaseStreamer  # noqa: E402

from backend.generation import GenerationDone, GenerationEngine, TokenEvent  # noqa: E402
from backend.params import DecodingParams  # noqa: E402
from backend.registry import ModelRegistry, load_specs  # noqa: E402
from bench.app_process import free_port, start_app, steady_state  # noqa: E402

PROMPT = "Return a new list containing all items from the iterable in ascending order."


@dataclass(frozen=True)
class Measurement:
    ttft_s: float
    total_s: float
    tokens: int
    inside_s: float | None = None  # (c) only: the generation's own time, as the app measured it

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.total_s


class FirstTokenClock(BaseStreamer):
    """Records when the first new token arrives; does nothing else."""

    def __init__(self) -> None:
        self.calls = 0
        self.first: float | None = None

    def put(self, value: torch.Tensor) -> None:
        self.calls += 1
        if self.calls == 2:  # the first put carries the prompt
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


def bare_generate(loaded, n: int) -> Measurement:
    inputs = loaded.tokenizer(PROMPT, return_tensors="pt").to(loaded.device)
    clock = FirstTokenClock()
    holder: dict[str, torch.Tensor] = {}

    def work() -> None:
        holder["out"] = loaded.model.generate(
            **inputs, do_sample=False, max_new_tokens=n, min_new_tokens=n, streamer=clock,
            pad_token_id=loaded.tokenizer.eos_token_id,
        )

    start = time.perf_counter()
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    end = time.perf_counter()
    tokens = holder["out"].shape[1] - inputs["input_ids"].shape[1]
    return Measurement(clock.first - start, end - start, tokens)


def engine_generate(engine: GenerationEngine, loaded, n: int) -> Measurement:
    params = DecodingParams(max_new_tokens=n, min_new_tokens=n, seed=0)
    start = time.perf_counter()
    first = None
    tokens = 0
    for event in engine.stream(loaded, PROMPT, params, threading.Event()):
        if isinstance(event, TokenEvent):
            tokens += 1
            if first is None:
                first = time.perf_counter()
        else:
            assert isinstance(event, GenerationDone)
    end = time.perf_counter()
    return Measurement(first - start, end - start, tokens)


def app_generate(client, model: str, n: int) -> Measurement:
    start = time.perf_counter()
    job = client.submit(
        model=model, prompt=PROMPT, max_new_tokens=n, min_new_tokens=n, seed="0", api_name="/text_generation"
    )
    first = None
    for update in job:
        if first is None and update[-1] and update[-1].get("new_tokens", 0) > 0:
            first = time.perf_counter()
    end = time.perf_counter()
    metrics = job.outputs()[-1][-1]["metrics"]
    return Measurement((first or end) - start, end - start, metrics["new_tokens"], metrics["total_s"])


def app_floor(client) -> float:
    """Seconds for one call of the app's Stop endpoint with no run going: what a call through
    Gradio's queue and gradio_client costs when the function itself does nothing."""
    start = time.perf_counter()
    client.predict(api_name="/stop_text_generation")
    return time.perf_counter() - start


def median(measurements: list[Measurement]) -> Measurement:
    inside = [m.inside_s for m in measurements if m.inside_s is not None]
    return Measurement(
        statistics.median(m.ttft_s for m in measurements),
        statistics.median(m.total_s for m in measurements),
        measurements[0].tokens,
        statistics.median(inside) if inside else None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="stdlib-gpt2 (embedded)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in all three paths")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    specs = load_specs(ROOT / "models.yaml")
    registry = ModelRegistry(specs, max_loaded=1, device="auto", offline=True)
    loaded = registry.get(args.model)
    engine = GenerationEngine()
    print(f"model {args.model} on {loaded.device}, torch threads {torch.get_num_threads()}, "
          f"greedy, {args.tokens} new tokens, median of {args.repeats} runs after a warm-up")

    # (a), (b) and (c) take turns, so that drift in the machine's load hits all three alike
    # (the app is served from the start: an idle app polls its queue every 20 ms, ~1 % of a core)
    from gradio_client import Client

    port = free_port()
    a_runs: list[Measurement] = []
    b_runs: list[Measurement] = []
    c_runs: list[Measurement] = []
    floors: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        process = start_app(port, Path(tmp) / "bench.sqlite", args.threads)
        try:
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            bare_generate(loaded, args.tokens)  # warm-ups; the app's loads the model there
            engine_generate(engine, loaded, args.tokens)
            app_generate(client, args.model, args.tokens)
            print(f"the app decodes in {steady_state(client, args.model) or 'its own process'}")
            for _ in range(args.repeats):
                a_runs.append(bare_generate(loaded, args.tokens))
                b_runs.append(engine_generate(engine, loaded, args.tokens))
                c_runs.append(app_generate(client, args.model, args.tokens))
                floors.append(app_floor(client))
        finally:
            process.terminate()
            process.wait(timeout=30)

    a, b, c = median(a_runs), median(b_runs), median(c_runs)
    rows = [("(a) bare model.generate", a), ("(b) engine with per-token capture", b), ("(c) app via gradio_client", c)]
    print(f"{'':38} {'tokens/s':>10} {'TTFT ms':>9} {'total s':>8} {'tokens':>7}")
    for name, m in rows:
        print(f"{name:38} {m.tokens_per_s:10.1f} {m.ttft_s * 1000:9.1f} {m.total_s:8.3f} {m.tokens:7d}")
    print(f"ratio b/a (throughput) = {b.tokens_per_s / a.tokens_per_s:.3f}  (target >= 0.95)")
    print(f"ratio c/a (throughput) = {c.tokens_per_s / a.tokens_per_s:.3f}  (target >= 0.85)")
    for name, runs in (("b/a", b_runs), ("c/a", c_runs)):
        turns = [x.total_s / y.total_s for x, y in zip(a_runs, runs)]
        print(f"{name} turn by turn: {' '.join(f'{r:.3f}' for r in turns)} (median {statistics.median(turns):.3f})")
    print(f"(c) split: generation inside the app {c.inside_s:.3f} s, Gradio and gradio_client around it "
          f"{c.total_s - c.inside_s:.3f} s; a call of the app's Stop endpoint (no run going) takes "
          f"{statistics.median(floors):.3f} s")

if __name__ == "__main__":
    main()
