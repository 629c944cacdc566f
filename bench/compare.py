"""What a compare costs against one run of the same length, through the app as the README starts it.

One run: /text_generation of N new tokens (sampling, seeded, min_new_tokens = N so every run has
N tokens). One compare: /compare of two settings that keep the KV cache (A: top-p 1.0; B: top-p
0.9; one seed), each N tokens, both streamed and logged, the divergence explained. The two are
timed alternately, --repeats times each after a warm-up, end to end through gradio_client; the
ratio of the medians is the figure (target: at most 2.2). A compare of the cache against no cache
is timed too, for the record (without the cache a run costs more by design).

    python -m bench.compare [--tokens 128] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.app_process import free_port, start_app  # noqa: E402

MODEL = "stdlib-gpt2 (embedded)"
PROMPT = "Return a new list containing all items from the iterable in ascending order."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from gradio_client import Client

    n = args.tokens
    base = {"temperature": 1.0, "max_new_tokens": n, "min_new_tokens": n, "seed": 1}
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        process = start_app(port, Path(tmp) / "app.sqlite", None)
        try:
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)

            def one() -> float:
                start = time.perf_counter()
                out = client.predict(model=MODEL, prompt=PROMPT, api_name="/text_generation", **base)[-1]
                assert out["metrics"]["new_tokens"] == n
                return time.perf_counter() - start

            def compare(b: dict) -> float:
                start = time.perf_counter()
                out = client.predict(model=MODEL, prompt=PROMPT, params_a=base, params_b={**base, **b}, api_name="/compare")[-1]
                assert out["a"]["metrics"]["new_tokens"] == out["b"]["metrics"]["new_tokens"] == n
                return time.perf_counter() - start

            one(), compare({"top_p": 0.9})  # warm-up
            singles, compares, no_cache = [], [], []
            for _ in range(args.repeats):
                singles.append(one())
                compares.append(compare({"top_p": 0.9}))
                no_cache.append(compare({"use_cache": False}))
        finally:
            process.terminate()
            process.wait(timeout=30)

    def fmt(samples: list[float]) -> str:
        return f"{statistics.median(samples) * 1000:8.0f} ms (min {min(samples) * 1000:.0f}, max {max(samples) * 1000:.0f})"

    ratio = statistics.median(compares) / statistics.median(singles)
    print(f"model {MODEL}, {n} new tokens per run, median of {args.repeats} after a warm-up, through gradio_client")
    print(f"one run (/text_generation)                      {fmt(singles)}")
    print(f"compare top-p 1.0 vs 0.9 (/compare, two runs)   {fmt(compares)}")
    print(f"compare KV cache vs no cache (/compare)         {fmt(no_cache)}")
    print(f"compare / one run: {ratio:.2f} (target at most 2.2: {'met' if ratio <= 2.2 else 'NOT met'}); "
          f"with one side without the cache: {statistics.median(no_cache) / statistics.median(singles):.2f}")


if __name__ == "__main__":
    main()
