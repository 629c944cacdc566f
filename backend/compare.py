"""Compare: one model, one prompt, two decoding settings, the same seed; where the two
generations part, and why.

Both runs go through the playground's own generation (each is logged, with its own run id) and
run at the same time: streaming decoder runs decode together in the batch scheduler. When both
have ended, the first position where their token ids differ is explained from the model itself:
one forward pass over the prefix the two runs share gives the raw logits there, and both runs'
chains (backend.processors, the very stages generate() applied) are run over them stage by stage
(backend.inspect.waterfall.stage_scores). The probabilities of A's token and of B's token after
every stage of both chains say which stage of which chain made them part; one sentence names it.

With the same seed two sampled runs draw the same random numbers at every step (each draw
consumes the generator alike), so where their distributions agree they take the same token, and
the first difference is where a stage of one chain moved or removed the token the other took.
"""

from __future__ import annotations

import math
import queue
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from backend.errors import ParameterError
from backend.generation import GenerationEngine, TokenEvent, decoding_chain, start_length, token_decoder
from backend.inspect.forward import forward_at
from backend.inspect.waterfall import stage_scores
from backend.params import DecodingMode, DecodingParams
from backend.registry import ModelRegistry, ProgressFn, Task

if TYPE_CHECKING:
    from backend.playground import GenerationRun


SIDES = ("a", "b")
GENERATIVE_TASKS = (Task.TEXT_GENERATION, Task.SUMMARIZATION, Task.TRANSLATION)
#: Parameters that change nothing in the tokens (display only).
DISPLAY_ONLY = frozenset({"top_alternatives"})


@dataclass(frozen=True)
class CompareEvent:
    """A token of one side while both stream."""

    side: str  # "a" or "b"
    event: TokenEvent


@dataclass(frozen=True)
class StageProbability:
    """One stage of one side's chain at the divergence: the probability it leaves A's token and B's token."""

    name: str
    label: str
    a_token: float | None  # None: A has no token there (it had ended)
    b_token: float | None

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.name, "label": self.label, "a_token": self.a_token, "b_token": self.b_token}


@dataclass(frozen=True)
class Divergence:
    position: int  # 0 = the first new token
    a_token: tuple[int, str] | None  # (id, text); None where A had already ended
    b_token: tuple[int, str] | None
    stages: dict[str, tuple[StageProbability, ...]]  # "a": A's chain, "b": B's chain (raw first, final last)
    explanation: str

    def to_json(self) -> dict[str, Any]:
        def token(t: tuple[int, str] | None) -> dict[str, Any] | None:
            return None if t is None else {"token_id": t[0], "text": t[1]}

        return {
            "position": self.position,
            "a_token": token(self.a_token),
            "b_token": token(self.b_token),
            "stages": {side: [s.to_json() for s in stages] for side, stages in self.stages.items()},
            "explanation": self.explanation,
        }


@dataclass(frozen=True)
class Comparison:
    a: GenerationRun
    b: GenerationRun
    differences: tuple[str, ...]  # the parameters that differ, "top_p: 1.0 → 0.3"
    first_divergence: Divergence | None  # None: the same token ids
    summary: str  # one sentence: where and why they part, or "identical outputs ..."
    max_prob_difference: float  # identical outputs: the largest |p_A - p_B| over the tokens (float rounding)

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a.to_json(),
            "b": self.b.to_json(),
            "differences": list(self.differences),
            "first_divergence": None if self.first_divergence is None else self.first_divergence.to_json(),
            "summary": self.summary,
            "max_prob_difference": self.max_prob_difference,
        }


def compare_params(params_a: object, params_b: object) -> tuple[DecodingParams, DecodingParams]:
    """Both sides' parameters, validated, with one seed: B's seed, absent or empty, is A's
    (chosen at random when A has none); an integer unlocks it."""
    a = _side_params("params_a", params_a)
    b = _side_params("params_b", params_b)
    seed = a.seed if a.seed is not None else secrets.randbelow(2**31)
    return a.with_seed(seed), b.with_seed(seed if b.seed is None else b.seed)


def _side_params(name: str, raw: object) -> DecodingParams:
    if raw is None or raw == "":
        raw = {}
    if not isinstance(raw, Mapping):
        raise ParameterError(name, "a JSON object of decoding-panel fields", raw)
    try:
        return DecodingParams.from_mapping(raw)
    except ParameterError as exc:
        raise ParameterError(f"{name}.{exc.field}", exc.rule, exc.value) from exc


def differences(a: DecodingParams, b: DecodingParams) -> tuple[str, ...]:
    da, db = a.to_dict(), b.to_dict()
    return tuple(
        f"{name}: {da[name]!r} → {db[name]!r}" for name in DecodingParams.field_names()
        if name not in DISPLAY_ONLY and da[name] != db[name]
    )


# -- running both ---------------------------------------------------------------------------


GenerateFn = Callable[..., Iterator[Any]]


def run_both(
    generate: GenerateFn,
    model: str,
    prompt: str,
    params: tuple[DecodingParams, DecodingParams],
    cancel: threading.Event,
    *,
    task: Task,
    input_name: str,
    owner: str | None,
    progress: ProgressFn | None = None,
) -> Iterator[CompareEvent | tuple[GenerationRun, GenerationRun]]:
    """Run A and B at the same time (each through `generate`, the playground's own streamed and
    logged generation); yield their tokens as they come, then the two GenerationRuns. A failure
    of either stops the other and is raised once both have ended. Stop (`cancel`) stops both."""
    events: queue.Queue[tuple[str, str, Any]] = queue.Queue()

    def pump(side: str, decoding: DecodingParams) -> None:
        try:
            stream = generate(
                model, prompt, decoding.to_dict(), cancel,
                progress=progress if side == "a" else None, task=task, input_name=input_name, owner=owner,
            )
            for event in stream:
                events.put(("token" if isinstance(event, TokenEvent) else "run", side, event))
        except BaseException as exc:  # handed to the consumer, which re-raises it (generate() logged it)
            events.put(("error", side, exc))
        finally:
            events.put(("end", side, None))

    threads = [
        threading.Thread(target=pump, args=(side, decoding), name=f"compare-{side}", daemon=True)
        for side, decoding in zip(SIDES, params)
    ]
    for thread in threads:
        thread.start()
    runs: dict[str, GenerationRun] = {}
    errors: list[BaseException] = []
    ended = 0
    try:
        while ended < len(threads):
            kind, side, payload = events.get()
            if kind == "token":
                yield CompareEvent(side, payload)
            elif kind == "run":
                runs[side] = payload
            elif kind == "error":
                errors.append(payload)
                cancel.set()  # the other side stops too
            else:
                ended += 1
    finally:
        if ended < len(threads):  # the consumer left: stop both; each logs its run as cancelled
            cancel.set()
            for thread in threads:
                thread.join()
    if errors:
        raise errors[0]
    yield runs["a"], runs["b"]


# -- the divergence -------------------------------------------------------------------------


def first_difference(a: Sequence[int], b: Sequence[int]) -> int | None:
    """The first position where the two token sequences differ (one ending earlier counts), or None."""
    for position, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return position
    return None if len(a) == len(b) else min(len(a), len(b))


def compare_runs(registry: ModelRegistry, engine: GenerationEngine, a: GenerationRun, b: GenerationRun) -> Comparison:
    """Where and why two finished runs of one model on one input part."""
    ra, rb = a.result, b.result
    diffs = differences(ra.params, rb.params)
    ids_a, ids_b = ra.sequences[0].token_ids, rb.sequences[0].token_ids
    position = first_difference(ids_a, ids_b)
    if position is None:
        rounding = max(
            (max(abs(x.prob - y.prob), abs(x.raw_prob - y.raw_prob)) for x, y in zip(ra.steps, rb.steps)), default=0.0
        )
        summary = f"identical outputs: the same {len(ids_a)} token ids"
        if rounding > 0:
            summary += f"; the probabilities differ by at most {rounding:.1e} (float rounding)"
        return Comparison(a, b, diffs, None, summary + ".", rounding)
    divergence = _divergence(registry, engine, a, b, position, diffs)
    return Comparison(a, b, diffs, divergence, divergence.explanation, math.nan)


def _divergence(
    registry: ModelRegistry, engine: GenerationEngine, a: GenerationRun, b: GenerationRun, position: int,
    diffs: tuple[str, ...],
) -> Divergence:
    ra, rb = a.result, b.result
    loaded = registry.get(a.model)
    decode = token_decoder(loaded.tokenizer)
    ids_a, ids_b = ra.sequences[0].token_ids, rb.sequences[0].token_ids
    tok_a = ids_a[position] if position < len(ids_a) else None
    tok_b = ids_b[position] if position < len(ids_b) else None
    inputs = ra.input_token_ids
    with engine.exclusive():
        at = forward_at(loaded, inputs, tuple(ids_a[:position]), position, details=False)
    stages = {}
    for side, params in zip(SIDES, (ra.params, rb.params)):
        chain = decoding_chain(loaded, params, start_length(loaded, len(inputs)))
        scores = stage_scores(chain, at.prefix, at.logits, params.mode)
        labels = [("raw", "raw"), *((s.name, s.label) for s in chain.stages)]
        rows = [_probabilities(s, tok_a, tok_b) for s in scores]
        stages[side] = tuple(StageProbability(n, lbl, pa, pb) for (n, lbl), (pa, pb) in zip(labels, rows))
        stages[side] += (StageProbability("final", "final", *rows[-1]),)
    a_token = None if tok_a is None else (tok_a, decode(tok_a))
    b_token = None if tok_b is None else (tok_b, decode(tok_b))
    explanation = explain(position, a, b, a_token, b_token, stages, diffs)
    return Divergence(position, a_token, b_token, stages, explanation)


def _probabilities(scores: torch.Tensor, tok_a: int | None, tok_b: int | None) -> tuple[float | None, float | None]:
    probs = torch.softmax(scores.double().reshape(-1), dim=-1)
    return (
        None if tok_a is None else float(probs[tok_a]),
        None if tok_b is None else float(probs[tok_b]),
    )


def _removed_by(stages: Sequence[StageProbability], pick: Callable[[StageProbability], float | None]) -> StageProbability | None:
    """The first stage after which the token has no probability left (where it had some before)."""
    for before, after in zip(stages, stages[1:]):
        p_before, p_after = pick(before), pick(after)
        if after.name != "final" and p_before and p_after == 0.0:
            return after
    return None


def _own_stages(mine: Sequence[StageProbability], theirs: Sequence[StageProbability]) -> list[str]:
    """Labels of this chain's stages the other chain lacks or sets differently."""
    other = {s.label for s in theirs}
    return [s.label for s in mine if s.name not in ("raw", "final") and s.label not in other]


def explain(
    position: int,
    a: GenerationRun,
    b: GenerationRun,
    a_token: tuple[int, str] | None,
    b_token: tuple[int, str] | None,
    stages: dict[str, tuple[StageProbability, ...]],
    diffs: tuple[str, ...],
) -> str:
    """One sentence naming what made the runs part at `position`."""
    ra, rb = a.result, b.result
    changed = "; ".join(diffs) if diffs else "no parameter"
    where = f"At position {position}"
    if a_token is None or b_token is None:
        ended, other, token = ("A", "B", b_token) if a_token is None else ("B", "A", a_token)
        reason = (ra if a_token is None else rb).finish_reason
        assert token is not None
        return f"{where} {ended} had ended ({reason}) while {other} went on with {token[1]!r} ({changed})."
    ta, tb = repr(a_token[1]), repr(b_token[1])
    sa, sb = stages["a"], stages["b"]
    fa, fb = sa[-1], sb[-1]
    mode_a, mode_b = ra.params.mode, rb.params.mode
    same_draw = mode_a is mode_b is DecodingMode.SAMPLE and ra.seed == rb.seed
    removed = _removed_by(sb, lambda s: s.a_token)
    if removed is not None and fa.a_token:
        tail = _took("B", tb, fb.b_token, mode_b, same_draw)
        return f"{where} B's {removed.label} removed {ta} ({_p(fa.a_token)} under A's chain); {tail}."
    removed = _removed_by(sa, lambda s: s.b_token)
    if removed is not None and fb.b_token:
        tail = _took("A", ta, fa.a_token, mode_a, same_draw)
        return f"{where} A's {removed.label} removed {tb} ({_p(fb.b_token)} under B's chain); {tail}."
    if mode_a is not mode_b:
        return (
            f"{where} A decodes by {_mode_words(mode_a)} and B by {_mode_words(mode_b)}: A took {ta} "
            f"(p {_p(fa.a_token)} under A's chain), B took {tb} (p {_p(fb.b_token)} under B's chain)."
        )
    if ra.seed != rb.seed and DecodingMode.SAMPLE in (mode_a, mode_b):
        return (
            f"{where} A and B drew with different seeds ({ra.seed} and {rb.seed}): A drew {ta} "
            f"(p {_p(fa.a_token)}), B drew {tb} (p {_p(fb.b_token)})."
        )
    own = [f"A's {label}" for label in _own_stages(sa, sb)] + [f"B's {label}" for label in _own_stages(sb, sa)]
    numbers = (
        f"{ta} has p {_p(fa.a_token)} under A and {_p(fb.a_token)} under B, {tb} {_p(fa.b_token)} under A and "
        f"{_p(fb.b_token)} under B"
    )
    if own:
        if same_draw:
            draw = "the same random draw fell on"
        elif mode_a is DecodingMode.GREEDY:
            draw = "greedy decoding took the most probable token,"
        else:
            draw = "the choice fell on"
        return f"{where} {' and '.join(own)} reshaped the distribution: {numbers}; {draw} {ta} under A and {tb} under B."
    if ra.params.use_cache != rb.params.use_cache:
        return (
            f"{where} only the KV cache differs (use_cache {ra.params.use_cache} → {rb.params.use_cache}): with and "
            f"without it the logits differ in float rounding, enough to part two nearly tied tokens: {numbers}."
        )
    return f"{where} the chains agree ({changed}); the runs parted by float rounding: {numbers}."


def _took(side: str, token: str, prob: float | None, mode: DecodingMode, same_draw: bool) -> str:
    p = "" if prob is None else f" (p {_p(prob)})"
    if same_draw:
        return f"with the same random draw {side} took {token}{p}"
    if mode is DecodingMode.GREEDY:
        return f"{side}'s greedy decoding took the most probable token left, {token}{p}"
    return f"{side} took {token}{p}"


def _p(prob: float | None) -> str:
    """A probability for a sentence: three decimals, or two significant digits when smaller."""
    if prob is None:
        return "none"
    return f"{prob:.3f}" if prob >= 0.001 or prob == 0 else f"{prob:.1e}"


def _mode_words(mode: DecodingMode) -> str:
    return {
        DecodingMode.GREEDY: "greedy decoding (the most probable token)",
        DecodingMode.SAMPLE: "sampling",
        DecodingMode.BEAM: "beam search (the best total score over the sequence)",
        DecodingMode.BEAM_SAMPLE: "beam sampling",
    }[mode]
