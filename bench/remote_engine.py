"""The embedded GPT-2, local and on llama.cpp's llama-server (built and cached by
tests/llama_server.py, the weights exported by training/export_gguf.py), through the app's own
service: how far the remote engine's per-token evidence is from the local engine's, and what each
costs end to end.

For each prompt, one greedy run of N new tokens on each side with 20 alternatives per token.
Printed: whether the texts are equal, the largest difference between the two sides' raw
probabilities of the chosen tokens and of the alternatives both list, and each side's tokens/s and
time to first token (the remote one measured at the client, network included, beside the engine's
own figures). Both run on one thread each, as the app pins it.

    python -m bench.remote_engine [--tokens 64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPTS = [
    "def read_file(path):\n    ", "The module provides", "Return the number of", "Raise ValueError if",
    "This package contains",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    from backend.playground import GenerationRun, Playground
    from tests.llama_server import gguf_of, llama_server
    from tests.offline import offline_settings

    folder = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    weights = ROOT / "models" / "stdlib-gpt2"
    with llama_server(gguf_of(weights), threads=1) as url:
        (folder / "models.yaml").write_text(
            f"""models:
  - {{name: local, task: text-generation, family: decoder, source: {{path: {weights}}}, max_context: 512, description: here}}
  - {{name: remote, task: text-generation, family: decoder, max_context: 512, description: llama.cpp,
      source: {{openai: {{base_url: "{url}", model: stdlib-gpt2, engine: llama.cpp}}}}}}
""",
            encoding="utf-8",
        )
        playground = Playground(offline_settings(folder, folder / "models.yaml", PLAYGROUND_TORCH_THREADS="1"))
        playground.apply_process_settings()
        params = {"max_new_tokens": args.tokens, "top_alternatives": 20}

        def run(model: str, prompt: str):
            events = playground.text_generation(model, prompt, params, threading.Event())
            return [e for e in events if isinstance(e, GenerationRun)][0].result

        run("local", "warm up")
        run("remote", "warm up")
        equal, worst, tokens = 0, 0.0, 0
        rates: dict[str, list[float]] = {"local": [], "remote": []}
        ttfts: dict[str, list[float]] = {"local": [], "remote": []}
        engine_ttft: list[float] = []
        for prompt in PROMPTS:
            local, remote = run("local", prompt), run("remote", prompt)
            equal += local.text == remote.text
            for mine, theirs in zip(local.steps, remote.steps):
                tokens += 1
                worst = max(worst, abs(mine.raw_prob - theirs.raw_prob))
                theirs_alt = {a.token_id: a.raw_prob for a in theirs.alternatives}
                worst = max([worst] + [abs(a.raw_prob - theirs_alt[a.token_id]) for a in mine.alternatives if a.token_id in theirs_alt])
            for name, result in (("local", local), ("remote", remote)):
                rates[name].append(result.metrics.tokens_per_s or 0.0)
                ttfts[name].append((result.metrics.ttft_s or 0.0) * 1000)
            engine_ttft.append(float(remote.remote["timings"].get("prompt_ms", 0.0)))
        playground.close()
    print(f"greedy texts equal: {equal}/{len(PROMPTS)} prompts; {tokens} tokens compared")
    print(f"largest |p_local - p_remote| (chosen tokens and shared alternatives): {worst:.2e}")
    for name in ("local", "remote"):
        print(f"{name:6s}: {statistics.median(rates[name]):7.1f} tokens/s, TTFT {statistics.median(ttfts[name]):6.1f} ms (medians)")
    print(f"remote engine's own prompt time: {statistics.median(engine_ttft):.1f} ms (median)")
    print(f"ratio remote/local tokens/s: {statistics.median(rates['remote']) / statistics.median(rates['local']):.2f}")


if __name__ == "__main__":
    main()
