"""Token inspector speed on the embedded generator, through the app as the README starts it.

  - inspect one position of a 512-token run (prompt + new tokens fill the 512-token context):
    the stage waterfall, attention and the logit lens, at the first, middle and last new token
    (the last one reads the longest context), end to end through gradio_client (/inspect_token)
    and in-process (Inspector.inspect_token, the same code without Gradio around it);
  - prompt surprisal of a 400-token prompt (/inspect_prompt).

Targets: at most 300 ms each on this 2-core CPU. Each figure is the median of --repeats calls
after a warm-up. The app runs with torch's own thread setting, as `python app.py` does, and so
does the in-process measurement.

    python -m bench.inspector_speed [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from backend.playground import GenerationRun, Playground  # noqa: E402
from backend.settings import Settings  # noqa: E402
from bench.app_process import free_port, start_app  # noqa: E402

MODEL = "stdlib-gpt2 (embedded)"
CONTEXT = 512
PROMPT = "Return a new list containing all items from the iterable in ascending order."
#: A prompt of stdlib-like text, cut to PROMPT_TOKENS tokens by the bench.
LONG_TEXT = (
    "Return the number of items in the container. If the argument is a string, it is parsed as a "
    "decimal number. The socket module provides access to the BSD socket interface. This function "
    "raises ValueError if the argument is negative, and TypeError if it is not an integer. "
) * 8
PROMPT_TOKENS = 400


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:7.1f} ms (min {min(samples) * 1000:.1f}, max {max(samples) * 1000:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    from gradio_client import Client

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({**os.environ, "PLAYGROUND_DB_URL": f"sqlite:///{Path(tmp) / 'inproc.sqlite'}"})
        playground = Playground(settings)
        tokenizer = playground.registry.tokenizer(MODEL)
        prompt_ids = tokenizer(PROMPT)["input_ids"]
        new = CONTEXT - len(prompt_ids)
        long_prompt = tokenizer.decode(tokenizer(LONG_TEXT)["input_ids"][:PROMPT_TOKENS])
        long_count = len(tokenizer(long_prompt)["input_ids"])
        params = {"max_new_tokens": new, "min_new_tokens": new, "seed": 0}
        print(f"model {MODEL}, torch threads {torch.get_num_threads()} (torch's own choice, as app.py runs); "
              f"a run of {len(prompt_ids)} prompt + {new} new tokens = {CONTEXT}; a {long_count}-token prompt; "
              f"median of {args.repeats} calls after a warm-up")

        # in-process: the Inspector alone
        owner = "session:bench"
        events = list(playground.text_generation(MODEL, PROMPT, params, threading.Event(), owner=owner))
        run = events[-1]
        assert isinstance(run, GenerationRun) and len(run.result.steps) == new
        long_run = list(playground.text_generation(MODEL, long_prompt, {"max_new_tokens": 1}, threading.Event(), owner=owner))[-1]
        inspector = playground.inspector
        positions = {"first": 0, "middle": new // 2, "last": new - 1}
        inproc: dict[str, list[float]] = {name: [] for name in positions}
        inproc_prompt: list[float] = []
        inspector.inspect_token(owner, run.run_id, new - 1)  # warm-up
        inspector.inspect_prompt(owner, long_run.run_id)
        for _ in range(args.repeats):
            for name, position in positions.items():
                inproc[name].append(timed(lambda p=position: inspector.inspect_token(owner, run.run_id, p)))
            inproc_prompt.append(timed(lambda: inspector.inspect_prompt(owner, long_run.run_id)))
        playground.close()

        # end to end: python app.py, driven by gradio_client
        port = free_port()
        process = start_app(port, Path(tmp) / "app.sqlite", None)
        try:
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            run_id = client.predict(model=MODEL, prompt=PROMPT, api_name="/text_generation", **params)[-1]["run_id"]
            long_id = client.predict(model=MODEL, prompt=long_prompt, max_new_tokens=1, api_name="/text_generation")[-1]["run_id"]
            app: dict[str, list[float]] = {name: [] for name in positions}
            app_prompt: list[float] = []
            client.predict(run_id=run_id, position=new - 1, api_name="/inspect_token")  # warm-up
            client.predict(run_id=long_id, api_name="/inspect_prompt")
            for _ in range(args.repeats):
                for name, position in positions.items():
                    app[name].append(timed(lambda p=position: client.predict(run_id=run_id, position=p, api_name="/inspect_token")))
                app_prompt.append(timed(lambda: client.predict(run_id=long_id, api_name="/inspect_prompt")))
            floor = [timed(lambda: client.predict(api_name="/stop_text_generation")) for _ in range(args.repeats)]
        finally:
            process.terminate()
            process.wait(timeout=30)

    print(f"{'':44} {'in-process':>38}   {'through the app (gradio_client)':>38}")
    for name, position in positions.items():
        print(f"inspect_token, {name} new token (position {position:3d})  {median_ms(inproc[name])}   {median_ms(app[name])}")
    print(f"inspect_prompt, {long_count}-token prompt           {median_ms(inproc_prompt)}   {median_ms(app_prompt)}")
    print(f"a call that does nothing (the app's Stop endpoint): {median_ms(floor)}")
    worst = max(statistics.median(app[name]) for name in positions)
    print(f"target: at most 300 ms -> inspect_token {'met' if worst <= 0.3 else 'NOT met'} "
          f"({worst * 1000:.0f} ms at worst), inspect_prompt {'met' if statistics.median(app_prompt) <= 0.3 else 'NOT met'}")


if __name__ == "__main__":
    main()
