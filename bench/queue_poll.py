"""What Gradio's queue loops cost the generation running beside them, polling at Gradio's own
intervals (1 ms for new work, 10 ms for progress) and at the app's while a run is going
(ui.serving.BUSY_POLL_SECONDS).

In one process: the embedded generator's bare `model.generate` (greedy, --tokens new tokens,
in a worker thread as in the app), timed (1) before any server runs, then with the real app
served on a loopback port and its queue polling (2) at Gradio's intervals and (3) at the app's
busy interval, (2) and (3) alternating so that drift in machine load hits both alike. Each
wake-up of the queue loop takes the GIL from the generation thread.

    python -m bench.queue_poll [--tokens 256] [--repeats 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from backend.playground import Playground  # noqa: E402
from backend.settings import Settings  # noqa: E402
from bench.generation_speed import bare_generate  # noqa: E402
from ui.interface import build_demo  # noqa: E402
from ui.serving import BUSY_POLL_SECONDS, enable_queue  # noqa: E402

GRADIO_POLLS = (0.001, 0.01)  # gradio 6.31's sleep_when_free and progress_update_sleep_when_free (Linux)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default="stdlib-gpt2 (embedded)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({"PLAYGROUND_DB_URL": f"sqlite:///{Path(tmp) / 'runs.sqlite'}", "HF_HUB_OFFLINE": "1"})
        playground = Playground(settings)
        loaded = playground.registry.get(args.model)
        bare_generate(loaded, args.tokens)  # warm-up
        runs: dict[str, list[float]] = {"no server": [bare_generate(loaded, args.tokens).total_s for _ in range(args.repeats)]}

        demo = enable_queue(build_demo(playground))
        demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
        queue = demo._queue
        settings_by_name = {
            f"Gradio's polls ({GRADIO_POLLS[0] * 1000:g} / {GRADIO_POLLS[1] * 1000:g} ms)": GRADIO_POLLS,
            f"the app's polls during a run ({BUSY_POLL_SECONDS * 1000:g} ms)": (BUSY_POLL_SECONDS, BUSY_POLL_SECONDS),
        }
        try:
            for _ in range(args.repeats):
                for name, (work, progress) in settings_by_name.items():
                    # no run is going here, so the queue uses its idle interval: set both to the one under test
                    queue.idle_poll_seconds = queue.busy_poll_seconds = work
                    queue.progress_update_sleep_when_free = progress
                    time.sleep(0.2)  # the loops pick up the new interval
                    runs.setdefault(name, []).append(bare_generate(loaded, args.tokens).total_s)
        finally:
            demo.close()
            playground.close()

    print(f"bare model.generate of {args.model}, {args.tokens} greedy tokens, torch threads {torch.get_num_threads()}, "
          f"median of {args.repeats}")
    base = statistics.median(runs["no server"])
    for name, times in runs.items():
        median = statistics.median(times)
        print(f"{name:40} {median:7.3f} s  {args.tokens / median:7.1f} tok/s  x{base / median:.3f} of no server")
    gradio_name, app_name = settings_by_name
    gain = statistics.median(runs[gradio_name]) / statistics.median(runs[app_name])
    print(f"speed-up of generation from the app's busy poll interval: x{gain:.3f}")


if __name__ == "__main__":
    main()
