"""Serving a room, measured from outside: many gradio_client clients against `python app.py`.

For each model (the embedded generator, and a SmolLM2-135M-shaped LLaMA with random weights that
this script builds: 30 layers, hidden 576, 9 heads, 3 KV heads, vocabulary 49,152):

  (1) one client alone: a request of --tokens new tokens; tokens/s end to end
  (2) --clients clients at once (one request each, half greedy, half sampled, distinct seeds):
      aggregate tokens/s (all tokens / from the first start to the last end) and the time each
      client waited for its first streamed token
  (1) and (2) take turns, --rounds times, so that the machine's drifting load hits both alike;
  ratio (2)/(1) round by round, and its median: the targets are >= 4 (goal 6); p95 time to first
  token <= 1.5 s (embedded)

Then, on the embedded generator, --room clients x --repeats requests of 32 tokens each, against the
app as it serves (batching) and against the app with PLAYGROUND_MAX_BATCH=1 (one at a time): errors
(target 0), runs logged with all their token steps, and the wall time of each (target: batching
takes at most a third of one-at-a-time).

The app runs as the README starts it (its own thread setting: PLAYGROUND_TORCH_THREADS, default 1).

    python -m bench.serving [--clients 16] [--tokens 64] [--room 32] [--repeats 5] [--models embedded,smollm]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.app_process import free_port, start_app, steady_state  # noqa: E402

EMBEDDED = "stdlib-gpt2 (embedded)"
SMOLLM = "smollm2-135m-shaped (random)"
#: How often a client looks at its request's updates (the time to first token is measured to this).
POLL_SECONDS = 0.005
PROMPTS = (
    "Return the number of items in the",
    "The socket module provides",
    "This function raises ValueError if",
    "Create a new dictionary with keys from",
)


@dataclass(frozen=True)
class Request:
    start: float
    first: float | None  # when the first streamed token arrived
    end: float
    tokens: int
    error: str | None = None

    @property
    def ttft(self) -> float | None:
        return None if self.first is None else self.first - self.start


def request_params(i: int, tokens: int) -> dict[str, object]:
    """The i-th client's decoding fields: exactly `tokens` new tokens, seed i, every other one sampled."""
    params: dict[str, object] = {"max_new_tokens": tokens, "min_new_tokens": tokens, "seed": i}
    if i % 2:
        params.update(temperature=0.8, top_p=0.95)
    return params


def one_request(client, model: str, i: int, tokens: int) -> Request:
    kwargs = {**request_params(i, tokens), "seed": str(i)}  # (the API's seed box is text)
    start = time.perf_counter()
    first = None
    try:
        job = client.submit(model=model, prompt=PROMPTS[i % len(PROMPTS)], api_name="/text_generation", **kwargs)
        # poll the updates every POLL_SECONDS (iterating the job would poll every 1 ms while
        # holding the lock its stream appends under: 16 such clients eat a core of their own)
        while True:
            finished = job.done()
            updates = job.outputs()  # (new_tokens only grows: the latest update tells)
            if first is None and updates and updates[-1][-1] and updates[-1][-1].get("new_tokens", 0) > 0:
                first = time.perf_counter()
            if finished:
                break
            time.sleep(POLL_SECONDS)
        result = job.outputs()[-1][-1]
        return Request(start, first or time.perf_counter(), time.perf_counter(), result["metrics"]["new_tokens"])
    except Exception as exc:  # counted as an error of the run
        return Request(start, first, time.perf_counter(), 0, f"{type(exc).__name__}: {exc}")


def client_of(url: str):
    """A gradio_client Client whose HTTP connections share one TLS context: gradio_client opens a
    new httpx client for each request's stream and for its heartbeat, and each builds a TLS context
    from the CA bundle (~25 ms of CPU) even for http://, CPU the clients would take from the app
    on the same two cores."""
    from gradio_client import Client

    return Client(url, verbose=False, ssl_verify=_tls_context())


@functools.cache
def _tls_context():
    import ssl

    return ssl.create_default_context()


def warm_up(client, model: str) -> str:
    """Load the model (one short request) and wait for the app's steady state; where it decodes."""
    one_request(client, model, 0, 4)
    return steady_state(client, model)


def open_sessions(url: str, n: int) -> list:
    """n clients whose sessions are open, as a browser's is once its page has loaded (its first
    event: the identity load). Gradio builds a new session's state from the config of every
    component of the app (~40 ms of the event loop's time here, more under load): counting that
    in the first request of 16 visitors at once would measure page loads, not serving."""
    clients = [client_of(url) for _ in range(n)]
    for client in clients:
        client.predict(api_name="/serving_stats")
    return clients


def clients_at_once(url: str, model: str, n: int, tokens: int, repeats: int = 1, clients=None) -> tuple[list[Request], float]:
    """n clients, each with its own (open) session, each making `repeats` requests one after another."""
    clients = clients or open_sessions(url, n)
    results: list[list[Request]] = [[] for _ in range(n)]
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        for r in range(repeats):
            results[i].append(one_request(clients[i], model, i * repeats + r, tokens))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [r for rs in results for r in rs], time.perf_counter() - start


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def build_smollm_shaped(folder: Path) -> Path:
    """A LLaMA of SmolLM2-135M's shape with random (seeded) weights, and a tokenizer over its
    49,152 ids (the embedded BPE's 4,096 tokens, then placeholders no merge reaches)."""
    import json

    import torch
    from tokenizers import Tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    if (folder / "model.safetensors").exists():
        return folder
    base = json.loads((ROOT / "models" / "stdlib-gpt2" / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = base["model"]["vocab"]
    for i in range(len(vocab), 49_152):
        vocab[f"tok{i}"] = i
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(base)), eos_token="<|endoftext|>",
                                        bos_token="<|endoftext|>", pad_token="<|endoftext|>", model_max_length=2048)
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=49_152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
            num_key_value_heads=3, max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=True,
            bos_token_id=0, eos_token_id=0, pad_token_id=0,
        )
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def models_yaml(folder: Path, smollm: Path | None) -> Path:
    text = (ROOT / "models.yaml").read_text(encoding="utf-8")
    if smollm is not None:
        text += f"""
  - name: {SMOLLM}
    task: text-generation
    family: decoder
    source: {{path: {smollm}}}
    dtype: float32
    max_context: 2048
    description: SmolLM2-135M's shape (LLaMA, 30 layers, hidden 576, 9 heads, 3 KV heads, 49,152 tokens), random weights
    trained: false
"""
    path = folder / "models.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def room_check(db: Path) -> tuple[int, int]:
    """(runs logged "ok" with all their steps, runs logged in all)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT r.status, r.new_tokens, (SELECT count(*) FROM token_steps s WHERE s.run_id = r.id) FROM runs r")
        ).all()
    engine.dispose()
    return sum(1 for status, n, steps in rows if status == "ok" and n == steps == 32), len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--room", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default="embedded,smollm")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    wanted = args.models.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        smollm = build_smollm_shaped(ROOT / "bench" / "results" / "smollm2-135m-shaped") if "smollm" in wanted else None
        models = models_yaml(folder, smollm)
        env = {"PLAYGROUND_MODELS_FILE": str(models), "HF_HUB_OFFLINE": "1"}
        for model in [m for m, key in ((EMBEDDED, "embedded"), (SMOLLM, "smollm")) if key in wanted]:
            port = free_port()
            app = start_app(port, folder / f"{key_of(model)}.sqlite", env=env)
            try:
                url = f"http://127.0.0.1:{port}/"
                warm = client_of(url)
                print(f"{model}: decodes in {warm_up(warm, model)}")
                clients = open_sessions(url, args.clients)
                rounds = []
                for _ in range(args.rounds):
                    alone = one_request(warm, model, 1, args.tokens)
                    together, _ = clients_at_once(url, model, args.clients, args.tokens, clients=clients)
                    rounds.append((alone, together))
            finally:
                app.terminate()
                app.wait(timeout=30)
            print(f"\n{model}: {args.tokens} new tokens per request, {args.rounds} rounds")
            ratios, everyone = [], []
            for k, (alone, together) in enumerate(rounds, start=1):
                solo_rate = alone.tokens / (alone.end - alone.start)
                total = sum(r.tokens for r in together)
                rate = total / (max(r.end for r in together) - min(r.start for r in together))
                errors = [r.error for r in together if r.error]
                ttfts = [r.ttft for r in together if r.ttft is not None]
                everyone.extend(ttfts)
                ratios.append(rate / solo_rate)
                print(f"  round {k}: alone {solo_rate:6.1f} tokens/s (TTFT {alone.ttft * 1000:.0f} ms); {args.clients} at once "
                      f"{rate:7.1f} tokens/s, TTFT median {statistics.median(ttfts):.2f} s p95 {p95(ttfts):.2f} s, "
                      f"errors {len(errors)}; ratio {rate / solo_rate:.2f}")
                for error in errors[:2]:
                    print(f"    error: {error}")
            print(f"  ratio all together / alone: median {statistics.median(ratios):.2f}  (target >= 4, goal 6); "
                  f"time to first token over all rounds: p95 {p95(everyone):.2f} s (target <= 1.5 s)")

        if "embedded" in wanted:
            print(f"\nthe room: {args.room} clients x {args.repeats} requests of 32 tokens ({EMBEDDED})")
            walls = {}
            for mode, batch in (("batching", None), ("one at a time", "1")):
                db = folder / f"room-{batch or 'on'}.sqlite"
                port = free_port()
                app = start_app(port, db, env={**env, **({"PLAYGROUND_MAX_BATCH": batch} if batch else {})})
                try:
                    url = f"http://127.0.0.1:{port}/"
                    print(f"  {mode}: decodes in {warm_up(client_of(url), EMBEDDED)}")
                    results, wall = clients_at_once(url, EMBEDDED, args.room, 32, args.repeats)
                finally:
                    app.terminate()
                    app.wait(timeout=30)
                complete, logged = room_check(db)
                errors = sum(1 for r in results if r.error)
                walls[mode] = wall
                print(f"  {mode:14}: {wall:7.2f} s, errors {errors}, runs logged {logged - 1} "
                      f"(complete with their 32 steps: {complete}), p95 TTFT {p95([r.ttft for r in results if r.ttft]):.2f} s")
            print(f"  ratio batching / one at a time = {walls['batching'] / walls['one at a time']:.2f}  (target <= 0.33)")


def key_of(model: str) -> str:
    return "embedded" if model == EMBEDDED else "smollm"


if __name__ == "__main__":
    main()
