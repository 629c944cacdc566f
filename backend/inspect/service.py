"""The token inspector's service: finds a run in the log (for its owner only), loads its model,
and answers the three questions of the inspector: why this token (stage waterfall, attention,
logit lens), how surprising the prompt was, and how a text is cut into tokens.

Inspections are reads, not runs: nothing is logged as a run. They run after a generation, never
while tokens stream, and hold the engine while they use the model (a generation in progress
observes the model through a forward hook, and attention needs the eager implementation), so an
inspection asked for during someone's generation waits for it to end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from backend.errors import InputError, ParameterError
from backend.fields import integer
from backend.generation import GenerationEngine, decoding_chain, input_token_ids, start_length, token_decoder
from backend.history import owned_run
from backend.inspect.forward import ForwardAt, forward_at, prompt_logits
from backend.inspect.lens import logit_lens
from backend.inspect.prompt import surprisal
from backend.inspect.records import AttentionOver, AttentionView, PromptSurprisal, TokenInspection, Tokenization, Unavailable
from backend.inspect.tokens import tokenize
from backend.inspect.waterfall import waterfall
from backend.params import DecodingMode, DecodingParams
from backend.registry import Family, LoadedModel, ModelRegistry, Task
from backend.runlog import Run, RunLog

GENERATIVE_TASKS = (Task.TEXT_GENERATION, Task.SUMMARIZATION, Task.TRANSLATION)
#: Candidates per stage of the waterfall: the default and the most a request may ask for.
DEFAULT_TOP_N = 10
MAX_TOP_N = 50
#: Digits kept of attention weights (the JSON stays small; the sum over a context stays 1 to 1e-5).
ATTENTION_DIGITS = 6


@dataclass(frozen=True)
class RunReplay:
    """What the log holds of a generation run, enough to rebuild its chain at any position."""

    run_id: int
    model: str
    task: Task
    text: str  # the input as the person typed it
    params: DecodingParams  # as applied (seed filled in, max_new_tokens fitted)
    input_ids: tuple[int, ...] | None  # what the model read; None for runs logged before they were kept
    generated: tuple[int, ...]  # the new tokens of the best (or only) sequence
    streamed: tuple[tuple[float, float], ...]  # (prob, raw_prob) per new token, as streamed


def _replay(run: Run) -> RunReplay:
    try:
        task = Task(run.task)
    except ValueError:
        task = None
    if task not in GENERATIVE_TASKS:
        raise ParameterError(
            "run_id", "a text generation, summarization or translation run", f"a {run.task} run ({run.id})"
        )
    if not run.steps:
        raise ParameterError("run_id", "a run that generated at least one token", f"run {run.id} ({run.status}, no tokens)")
    text = next(iter(run.input.values()), "") if run.input else ""
    stored = (run.result or {}).get("input_token_ids")
    return RunReplay(
        run_id=run.id,
        model=run.model,
        task=task,
        text=text if isinstance(text, str) else "",
        params=DecodingParams.from_mapping(run.params),
        input_ids=tuple(int(i) for i in stored) if stored else None,
        generated=tuple(step.token_id for step in run.steps),
        streamed=tuple((step.prob, step.raw_prob) for step in run.steps),
    )


class Inspector:
    def __init__(self, registry: ModelRegistry, engine: GenerationEngine, runlog: RunLog, *, shared: bool) -> None:
        self.registry = registry
        self.engine = engine
        self.runlog = runlog
        self.shared = shared

    # -- reading runs -------------------------------------------------------------------------

    def replay(self, owner: str, run_id: object) -> RunReplay:
        """The run, if `owner` may read it and it is a generation with tokens."""
        with self.runlog.session() as session:
            return _replay(owned_run(session, run_id, owner, shared=self.shared))

    def _model_for(self, replay: RunReplay) -> tuple[LoadedModel, tuple[int, ...]]:
        loaded = self.registry.get(replay.model, replay.task)
        ids = replay.input_ids if replay.input_ids is not None else input_token_ids(loaded, replay.text)
        return loaded, ids

    # -- the token --------------------------------------------------------------------------

    def inspect_token(
        self, owner: str, run_id: object, position: object, top_n: object = DEFAULT_TOP_N, layer: object = None
    ) -> TokenInspection:
        """Why the token at `position` (0 = first new token) of run `run_id` came out."""
        replay = self.replay(owner, run_id)
        n = len(replay.generated)
        pos = integer("position", position, 0, n - 1, f"an integer in [0, {n - 1}] (run {replay.run_id} has {n} new tokens)")
        top_n = DEFAULT_TOP_N if top_n is None or top_n == "" else top_n
        top = integer("top_n", top_n, 1, MAX_TOP_N, f"an integer in [1, {MAX_TOP_N}]")
        loaded, input_ids = self._model_for(replay)
        layers = _attention_layers(loaded)
        chosen_layer = layers - 1  # the last layer, unless asked (negative counts from the end, as in Python)
        if layer is not None and layer != "":
            rule = f"empty or an integer in [{-layers}, {layers - 1}] (-1 = the last layer)"
            chosen_layer = integer("layer", layer, -layers, layers - 1, rule) % layers
        with self.engine.exclusive():
            at = forward_at(loaded, input_ids, replay.generated, pos, details=True)
            decode = token_decoder(loaded.tokenizer)
            chosen = replay.generated[pos]
            mode = replay.params.mode
            chain = decoding_chain(loaded, replay.params, start_length(loaded, len(input_ids)))
            stages = waterfall(chain, at.prefix, at.logits, chosen, mode, decode, top)
            lens = logit_lens(loaded.model, at.hidden, chosen, decode)
        attention = _attention(at, decode, input_ids, chosen_layer)
        notes = _notes(replay, pos, stages[-1].chosen_prob, stages[0].chosen_prob, mode)
        return TokenInspection(replay.run_id, pos, chosen, decode(chosen), mode.value, stages, attention, lens, notes)

    # -- the prompt -------------------------------------------------------------------------

    def inspect_prompt(self, owner: str, run_id: object) -> PromptSurprisal | Unavailable:
        replay = self.replay(owner, run_id)
        spec = self.registry.spec(replay.model)
        if spec.family is Family.ENCODER_DECODER:
            return Unavailable(
                "an encoder reads its whole input at once, in both directions: no source token is predicted "
                "from the ones before it, so the source has no left-to-right probability."
            )
        loaded, input_ids = self._model_for(replay)
        with self.engine.exclusive():
            logits = prompt_logits(loaded, input_ids)
            return surprisal(replay.run_id, input_ids, logits, token_decoder(loaded.tokenizer))

    # -- tokenization -----------------------------------------------------------------------

    def tokenize(self, model: str, text: object) -> Tokenization:
        if not isinstance(model, str) or not model:
            raise InputError("model", "model must be the name of a registry model, got nothing.")
        spec = self.registry.spec(model)
        return tokenize(spec.name, self.registry.tokenizer(model), text, spec.max_context, spec.prefix)


def _attention_layers(loaded: LoadedModel) -> int:
    config = loaded.model.config
    if loaded.spec.family is Family.ENCODER_DECODER:
        value = getattr(config, "decoder_layers", None) or getattr(config, "num_decoder_layers", None)
    else:
        value = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    return int(value or getattr(config, "num_layers", 1))


def _attention(
    at: ForwardAt, decode: Callable[[int], str], input_ids: tuple[int, ...], layer: int
) -> AttentionView | Unavailable:
    if at.self_attention is None:
        return Unavailable(at.attention_note or "attention was not read")
    context = tuple(decode(int(t)) for t in at.prefix[0].tolist())
    own = _over(context, at.self_attention, layer)
    cross = None
    if at.cross_attention is not None:
        cross = _over(tuple(decode(int(t)) for t in input_ids), at.cross_attention, layer)
    return AttentionView(len(at.self_attention), int(at.self_attention[0].shape[0]), layer, own, cross)


def _over(context: tuple[str, ...], per_layer: tuple[torch.Tensor, ...], layer: int) -> AttentionOver:
    stacked = np.stack([w.numpy() for w in per_layer])  # (layers, heads, context)
    weights = np.round(stacked.mean(axis=1), ATTENTION_DIGITS)
    heads = np.round(stacked[layer], ATTENTION_DIGITS)
    return AttentionOver(
        context, tuple(tuple(row.tolist()) for row in weights), tuple(tuple(row.tolist()) for row in heads)
    )


def _notes(replay: RunReplay, position: int, final: float, raw: float, mode: DecodingMode) -> tuple[str, ...]:
    streamed_prob, streamed_raw = replay.streamed[position]
    notes = [
        f"recomputed in one forward pass over the run's own tokens: p {final:.6f} (streamed {streamed_prob:.6f}), "
        f"raw p {raw:.6f} (streamed {streamed_raw:.6f}); the step-by-step decode with its KV cache and one full "
        f"forward differ only in float rounding ({max(abs(final - streamed_prob), abs(raw - streamed_raw)):.1e} here)"
    ]
    if mode in (DecodingMode.BEAM, DecodingMode.BEAM_SAMPLE):
        notes.append("a beam-search run: the best returned sequence is inspected; its chain works on log-probabilities")
    if replay.input_ids is None:
        notes.append("the run was logged before input tokens were kept: its input was tokenized again")
    return tuple(notes)
