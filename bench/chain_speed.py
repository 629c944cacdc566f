"""What a batched decoding step costs, with transformers' own parts and with the loop's: the
chain's stages (backend.processors: top-p sorting with NumPy, min_new_tokens without work once
it no longer applies; both give transformers' scores, tests/backend/test_processors.py) and the
batch's cache layers (backend.batching.RoomyLayer, which writes each step into room kept at the
end instead of copying the whole cache).

  (1) one call of each stage on one row of logits, for the vocabularies of the embedded
      generator (4,096), SmolLM2 (49,152) and GPT-2 (50,257): microseconds, and the ratio
  (2) the decoding loop of the embedded generator as its decoding process runs it
      (backend.batching.DecodeScheduler, each step's numbers computed as the worker does): 16
      requests of 64 new tokens like bench.serving's (half greedy, half sampled with temperature
      0.8 and top-p 0.95; min_new_tokens 64), three ways taking turns: transformers' stages and
      DynamicLayer, the chain's stages and DynamicLayer, the chain's stages and RoomyLayer (the
      app's): milliseconds per step, median of --rounds, and the ratios to the first

One torch thread, as the app pins it (PLAYGROUND_TORCH_THREADS, default 1).

    python -m bench.chain_speed [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from transformers import MinNewTokensLengthLogitsProcessor, TopPLogitsWarper  # noqa: E402

from backend.processors import MinNewTokensLogitsProcessor, SortedTopPLogitsWarper  # noqa: E402
from bench.serving import EMBEDDED, PROMPTS, request_params  # noqa: E402

#: transformers' stage for each of the chain's own.
TRANSFORMERS_STAGE = {SortedTopPLogitsWarper: TopPLogitsWarper, MinNewTokensLogitsProcessor: MinNewTokensLengthLogitsProcessor}


def per_call_us(fn, repeats: int = 300) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e6


def stage_calls() -> None:
    print("(1) one call on one row of logits, microseconds (transformers' stage / the chain's)")
    generator = torch.Generator().manual_seed(0)
    for vocab in (4_096, 49_152, 50_257):
        scores = torch.randn(1, vocab, generator=generator) * 3
        early, late = torch.zeros((1, 10), dtype=torch.long), torch.zeros((1, 100), dtype=torch.long)
        rows = [
            ("top-p 0.95", TopPLogitsWarper(0.95), SortedTopPLogitsWarper(0.95), early),
            ("min new tokens, applies", MinNewTokensLengthLogitsProcessor(5, 64, [0]), MinNewTokensLogitsProcessor(5, 64, [0]), early),
            ("min new tokens, done", MinNewTokensLengthLogitsProcessor(5, 64, [0]), MinNewTokensLogitsProcessor(5, 64, [0]), late),
        ]
        for name, theirs, ours, ids in rows:
            a = per_call_us(lambda: theirs(ids, scores))
            b = per_call_us(lambda: ours(ids, scores))
            print(f"  vocabulary {vocab:6d}  {name:24s} {a:8.1f} / {b:8.1f}   ratio {a / b:5.1f}")


def loop_round(loaded, engine, transformers_stages: bool, cache_layer=None) -> tuple[float, int]:
    """One round of 16 requests through the worker's loop; (seconds, steps). `cache_layer`: the
    batch cache's layer class (None: the app's)."""
    from backend.batching import BatchRequest, DecodeScheduler
    from backend.decode_process import _Outbox, _RelayChannel
    from backend.params import DecodingParams
    from backend.processors import SequentialProcessor

    class Discard:  # the pipe to the app's process
        def send(self, message: object) -> None:
            pass

    outbox = _Outbox(Discard())
    scheduler = DecodeScheduler(loaded.model, torch.device("cpu"), 16, threading.Lock(), on_step=outbox.flush)
    if cache_layer is not None:
        scheduler.cache_layer = cache_layer
    requests = []
    for i in range(16):
        prepared = engine.prepare(loaded, PROMPTS[i % len(PROMPTS)], DecodingParams(**request_params(i, 64)))
        stages = [stage.processor for stage in prepared.chain.stages]
        if transformers_stages:
            stages = [_transformers_stage(stage) for stage in stages]
        requests.append(BatchRequest(
            input_ids=prepared.inputs["input_ids"], params=prepared.params, processors=SequentialProcessor(tuple(stages)),
            eos_ids=frozenset(prepared.eos_ids), stop=None, cancel=threading.Event(),
            channel=_RelayChannel(i, prepared.params.top_alternatives, outbox), on_token=lambda: None,
        ))
    start = time.perf_counter()
    steps = 0
    with torch.inference_mode():
        for request in requests:
            scheduler._waiting.append(request)
        scheduler._admit()
        while scheduler._rows:
            scheduler._step()
            outbox.flush()
            steps += 1
    return time.perf_counter() - start, steps


def _transformers_stage(stage):
    kind = TRANSFORMERS_STAGE.get(type(stage))
    if kind is None:
        return stage
    replacement = kind.__new__(kind)
    replacement.__dict__.update(stage.__dict__)
    return replacement


def decoding_loop(rounds: int) -> None:
    from transformers.cache_utils import DynamicLayer

    from backend.generation import GenerationEngine
    from backend.registry import ModelRegistry, load_specs

    loaded = ModelRegistry(load_specs(ROOT / "models.yaml"), max_loaded=1, device="cpu", offline=True).get(EMBEDDED)
    engine = GenerationEngine(max_batch=16)
    print("\n(2) the decoding process's loop, 16 requests x 64 new tokens (embedded generator), ms per step")
    variants = {
        "transformers' stages, DynamicLayer": (True, DynamicLayer),
        "the chain's stages, DynamicLayer": (False, DynamicLayer),
        "the chain's stages, RoomyLayer (the app)": (False, None),
    }
    for stages, layer in variants.values():
        loop_round(loaded, engine, stages, layer)  # warm-up
    per_step: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (stages, layer) in variants.items():
            seconds, steps = loop_round(loaded, engine, stages, layer)
            per_step[name].append(seconds / steps * 1000)
    first = statistics.median(next(iter(per_step.values())))
    for name, values in per_step.items():
        median = statistics.median(values)
        print(f"  {name:42s} {median:6.2f} ms  ratio {first / median:4.2f}  (rounds: {', '.join(f'{v:.2f}' for v in values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    stage_calls()
    decoding_loop(args.rounds)


if __name__ == "__main__":
    main()
