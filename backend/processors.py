"""The decoding chain: every stage that turns the model's logits into the distribution that a
token is chosen from, in one explicit, ordered list.

Order (the one the seed documents teach): the model's raw logits -> the checkpoint's own rules
(forbidden tokens, forced first and last tokens, minimum length) -> penalties (repetition,
presence/frequency, no-repeat n-gram) -> length rule (min_new_tokens) -> temperature ->
truncations (top-k, top-p, min-p, typical). transformers' generate() would add the checkpoint's
rules, temperature and the truncations itself, around any processor we pass; we pass them all
ourselves and give generate() neutral values, so this module is the only place that decides the
order, and every stage a token went through is named in the run's chain (the token inspector
replays it stage by stage).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import (
    ForcedBOSTokenLogitsProcessor,
    ForcedEOSTokenLogitsProcessor,
    LogitsProcessor,
    LogitsProcessorList,
    MinLengthLogitsProcessor,
    MinNewTokensLengthLogitsProcessor,
    MinPLogitsWarper,
    NoBadWordsLogitsProcessor,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    SuppressTokensAtBeginLogitsProcessor,
    SuppressTokensLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

from backend.params import DecodingParams


class PresenceFrequencyPenaltyLogitsProcessor(LogitsProcessor):
    """OpenAI/vLLM presence and frequency penalties, which transformers does not have.

    For every token t, with count[t] its number of occurrences among the *generated* tokens
    (the prompt does not count):  logit[t] -= presence * (count[t] > 0) + frequency * count[t].
    Stateless: counts are taken from input_ids at every step, so beams that get reordered
    keep correct counts.
    """

    def __init__(self, presence_penalty: float, frequency_penalty: float, prompt_length: int):
        self.presence_penalty = float(presence_penalty)
        self.frequency_penalty = float(frequency_penalty)
        self.prompt_length = int(prompt_length)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self.prompt_length :]
        if generated.shape[1] == 0:
            return scores
        counts = torch.zeros_like(scores)
        counts.scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        penalty = self.frequency_penalty * counts + self.presence_penalty * (counts > 0).to(scores.dtype)
        return scores - penalty


class SortedTopPLogitsWarper(TopPLogitsWarper):
    """transformers' top-p, with its sort done by NumPy for a CPU row: torch's CPU sort is the
    slow part of the stage, which runs once per sampled token of every sequence. A call took 228
    against 89 microseconds for the embedded generator's 4,096 tokens, 3.2 ms against 0.86 ms for
    SmolLM2's 49,152 (`python -m bench.chain_speed`). The rest is transformers' code line for
    line, so the result is the same: the same sorted values (only the order among equal logits may
    differ, which torch.sort leaves unspecified as well), the same softmax and cumulative sum."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.device.type != "cpu" or scores.dtype not in (torch.float32, torch.float64):
            return super().__call__(input_ids, scores)
        sorted_indices = torch.from_numpy(np.argsort(scores.detach().numpy(), axis=-1))
        sorted_logits = scores.gather(-1, sorted_indices)
        cumulative_probs = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # Remove tokens with cumulative top_p above the threshold (token with 0 are kept)
        sorted_indices_to_remove = cumulative_probs <= (1 - self.top_p)
        # Keep at least min_tokens_to_keep
        sorted_indices_to_remove[..., -self.min_tokens_to_keep :] = 0
        indices_to_remove = sorted_indices_to_remove.scatter(1, sorted_indices, sorted_indices_to_remove)
        return scores.masked_fill(indices_to_remove, self.filter_value)


class MinNewTokensLogitsProcessor(MinNewTokensLengthLogitsProcessor):
    """transformers' min_new_tokens rule, without its per-call work: transformers copies the row
    and builds a vocabulary-long mask at every step, also after min_new_tokens (28 microseconds a
    call for 4,096 tokens, 0.29 ms for 49,152; this one 4-8 while it applies, nothing after:
    `python -m bench.chain_speed`). Same result: the end-of-sequence tokens at -inf while fewer
    than min_new_tokens tokens are new; the scores unchanged after (no stage writes in place)."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[-1] - self.prompt_length_to_skip >= self.min_new_tokens:
            return scores
        return scores.index_fill(-1, self.eos_token_id.to(scores.device), -math.inf)


class SequentialProcessor(LogitsProcessor):
    """Applies processors in order, each as processor(input_ids, scores): all of the chain's
    stages take no other arguments."""

    def __init__(self, processors: Sequence[LogitsProcessor]) -> None:
        self.processors = tuple(processors)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for processor in self.processors:
            scores = processor(input_ids, scores)
        return scores


@dataclass(frozen=True)
class ModelRules:
    """What a checkpoint's generation_config makes generate() do to the logits on its own, read
    once per run and applied by the chain as named stages (generate() gets neutral values).
    Marian never emits its padding token (bad_words_ids) and ends at the last position
    (forced_eos_token_id); BART starts with <s> (forced_bos_token_id); a Hub summarizer may
    carry min_length 56. Defaults: no rules (what a decoder checkpoint usually has)."""

    # Token sequences the checkpoint never emits (generation_config.bad_words_ids).
    bad_words_ids: tuple[tuple[int, ...], ...] = ()
    # No end of sequence while the whole sequence (prompt included) is shorter than this. 0 = off.
    min_length: int = 0
    # The first new token is forced to this one. None = off.
    forced_bos_token_id: int | None = None
    # At the last position max_new_tokens allows, one of these is forced. () = off.
    forced_eos_token_ids: tuple[int, ...] = ()
    # Tokens never emitted (generation_config.suppress_tokens).
    suppress_tokens: tuple[int, ...] = ()
    # Tokens not emitted as the first new token (generation_config.begin_suppress_tokens).
    begin_suppress_tokens: tuple[int, ...] = ()
    # generation_config fields that would change the logits and that the chain does not apply.
    ignored: tuple[str, ...] = ()

    @classmethod
    def from_generation_config(cls, config: object) -> ModelRules:
        def ids(value: object) -> tuple[int, ...]:
            if value is None:
                return ()
            return tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else (int(value),)  # type: ignore[arg-type]

        ignored = tuple(
            name for name, off in _UNSUPPORTED_RULES.items() if getattr(config, name, None) not in (None, off)
        )
        bos = getattr(config, "forced_bos_token_id", None)
        return cls(
            bad_words_ids=tuple(tuple(int(t) for t in words) for words in (getattr(config, "bad_words_ids", None) or ())),
            min_length=int(getattr(config, "min_length", None) or 0),
            forced_bos_token_id=None if bos is None else int(bos),
            forced_eos_token_ids=ids(getattr(config, "forced_eos_token_id", None)),
            suppress_tokens=ids(getattr(config, "suppress_tokens", None)),
            begin_suppress_tokens=ids(getattr(config, "begin_suppress_tokens", None)),
            ignored=ignored,
        )


#: generation_config fields that add a logits processor the chain does not reproduce, with their
#: "off" value: generate() gets the off value, and the run's notes say the checkpoint's is ignored.
_UNSUPPORTED_RULES = {
    "sequence_bias": None,
    "encoder_repetition_penalty": 1.0,
    "encoder_no_repeat_ngram_size": 0,
    "exponential_decay_length_penalty": None,
    "guidance_scale": None,
    "remove_invalid_values": False,
}
NO_RULES = ModelRules()


@dataclass(frozen=True)
class Stage:
    """One step of the chain: a short name (shown in the UI), what it does, the processor."""

    name: str
    description: str
    processor: LogitsProcessor
    setting: str = ""  # the stage's value as a person set it ("0.9" for top-p 0.9), if any

    @property
    def label(self) -> str:
        """The name with its setting: "top-p 0.9"."""
        return f"{self.name} {self.setting}".strip()


@dataclass(frozen=True)
class DecodingChain:
    """The ordered stages. `processors()` is what generate() receives."""

    stages: tuple[Stage, ...]

    def processors(
        self, first: LogitsProcessor | None = None, last: LogitsProcessor | None = None
    ) -> LogitsProcessorList:
        """What generate() receives: the stages, optionally between two observers (the taps
        that record the raw and the final distribution), as ONE processor that applies them in
        order. generate()'s LogitsProcessorList inspects the signature of each processor it
        holds at every step (~15 us each); one processor pays that once."""
        chain: list[LogitsProcessor] = [] if first is None else [first]
        chain.extend(stage.processor for stage in self.stages)
        if last is not None:
            chain.append(last)
        return LogitsProcessorList([SequentialProcessor(tuple(chain))] if chain else [])

    @property
    def names(self) -> list[str]:
        return [stage.name for stage in self.stages]

    def describe(self) -> str:
        if not self.stages:
            return "raw logits → softmax (no processing)"
        return "raw logits → " + " → ".join(self.names) + " → softmax"


def _rule_bans(rules: ModelRules, eos_token_ids: Sequence[int]) -> list[Stage]:
    """The checkpoint's bans (forbidden sequences, its min_length), where generate() applies
    them: after the penalties, before the length rule and the forcing rules."""
    stages: list[Stage] = []
    eos = list(eos_token_ids)
    if rules.bad_words_ids:
        stages.append(
            Stage(
                "forbidden tokens",
                f"token sequences the checkpoint never emits (bad_words_ids {[list(w) for w in rules.bad_words_ids]})",
                NoBadWordsLogitsProcessor([list(w) for w in rules.bad_words_ids], eos or None),
            )
        )
    if rules.min_length > 0 and eos:
        stages.append(
            Stage(
                "min length",
                f"end of sequence forbidden while the sequence is shorter than {rules.min_length} tokens "
                f"(the checkpoint's min_length)",
                MinLengthLogitsProcessor(rules.min_length, eos),
            )
        )
    return stages


def _rule_forcing(rules: ModelRules, params: DecodingParams, prompt_length: int) -> list[Stage]:
    """The checkpoint's forced and suppressed tokens, where generate() applies them: after every
    ban and penalty (a forced end of sequence overrides them all), before temperature and the
    truncations."""
    stages: list[Stage] = []
    if rules.forced_bos_token_id is not None:
        stages.append(
            Stage(
                "forced first token",
                f"the first new token is forced to token {rules.forced_bos_token_id} (forced_bos_token_id)",
                ForcedBOSTokenLogitsProcessor(rules.forced_bos_token_id),
            )
        )
    if rules.forced_eos_token_ids:
        stages.append(
            Stage(
                "forced end",
                "at the last position max_new_tokens allows, the end of sequence is forced (forced_eos_token_id)",
                ForcedEOSTokenLogitsProcessor(prompt_length + params.max_new_tokens, list(rules.forced_eos_token_ids)),
            )
        )
    if rules.suppress_tokens:
        stages.append(
            Stage(
                "suppressed tokens",
                f"tokens {list(rules.suppress_tokens)} are never emitted (suppress_tokens)",
                SuppressTokensLogitsProcessor(list(rules.suppress_tokens)),
            )
        )
    if rules.begin_suppress_tokens:
        begin = prompt_length + (1 if prompt_length == 1 and rules.forced_bos_token_id is not None else 0)
        stages.append(
            Stage(
                "suppressed at start",
                f"tokens {list(rules.begin_suppress_tokens)} are not emitted first (begin_suppress_tokens)",
                SuppressTokensAtBeginLogitsProcessor(list(rules.begin_suppress_tokens), begin),
            )
        )
    return stages


def build_chain(
    params: DecodingParams,
    *,
    prompt_length: int,
    eos_token_ids: Sequence[int],
    rules: ModelRules = NO_RULES,
) -> DecodingChain:
    """The chain for these parameters. `prompt_length` is the number of tokens in the sequence
    that generate() extends before the first new token (the prompt for a decoder, the decoder
    start token for an encoder-decoder); `eos_token_ids` are the ends of sequence that
    min_new_tokens holds back; `rules` are the checkpoint's own. The order is generate()'s own
    (GenerationMixin._get_logits_processor): penalties, the checkpoint's bans, the length rule,
    its forcing rules, then (sampling) temperature and the truncations."""
    stages: list[Stage] = []
    add = stages.append
    # 1. penalties: change the logits of tokens that already occurred
    if params.repetition_penalty != 1.0:
        add(
            Stage(
                "repetition penalty",
                f"logits of tokens already present (prompt or output) divided by "
                f"{params.repetition_penalty:g} (multiplied when negative)",
                RepetitionPenaltyLogitsProcessor(params.repetition_penalty),
                f"{params.repetition_penalty:g}",
            )
        )
    if params.presence_penalty != 0.0 or params.frequency_penalty != 0.0:
        add(
            Stage(
                "presence/frequency penalty",
                f"logit -= {params.presence_penalty:g}·[seen] + {params.frequency_penalty:g}·count "
                f"over generated tokens",
                PresenceFrequencyPenaltyLogitsProcessor(
                    params.presence_penalty, params.frequency_penalty, prompt_length
                ),
                f"{params.presence_penalty:g}/{params.frequency_penalty:g}",
            )
        )
    if params.no_repeat_ngram_size > 0:
        add(
            Stage(
                "no-repeat n-gram",
                f"tokens that would repeat a {params.no_repeat_ngram_size}-gram are forbidden",
                NoRepeatNGramLogitsProcessor(params.no_repeat_ngram_size),
                str(params.no_repeat_ngram_size),
            )
        )
    stages.extend(_rule_bans(rules, eos_token_ids))
    # 2. length rule: no end of sequence before min_new_tokens
    if params.min_new_tokens > 0 and eos_token_ids:
        add(
            Stage(
                "min new tokens",
                f"end of sequence forbidden for the first {params.min_new_tokens} new tokens",
                MinNewTokensLogitsProcessor(
                    prompt_length, params.min_new_tokens, list(eos_token_ids)
                ),
                str(params.min_new_tokens),
            )
        )
    stages.extend(_rule_forcing(rules, params, prompt_length))
    if not params.do_sample:
        return DecodingChain(tuple(stages))
    # Beam sampling must keep one token besides the end-of-sequence ones (transformers' rule).
    keep = len(eos_token_ids) + 1 if params.num_beams > 1 else 1
    # 3. temperature: logits / T (flatter when T > 1, sharper when T < 1)
    if params.temperature != 1.0:
        add(
            Stage(
                "temperature",
                f"logits divided by {params.temperature:g}",
                TemperatureLogitsWarper(params.temperature),
                f"{params.temperature:g}",
            )
        )
    # 4. truncations: drop unlikely tokens, renormalise what is left
    truncations: list[tuple[bool, str, str, Callable[[], LogitsProcessor], str]] = [
        (
            params.top_k > 0,
            "top-k",
            f"only the {params.top_k} most likely tokens are kept",
            lambda: TopKLogitsWarper(params.top_k, min_tokens_to_keep=keep),
            str(params.top_k),
        ),
        (
            params.top_p < 1.0,
            "top-p",
            f"the smallest set of tokens with {params.top_p:g} of the probability is kept",
            lambda: SortedTopPLogitsWarper(params.top_p, min_tokens_to_keep=keep),
            f"{params.top_p:g}",
        ),
        (
            params.min_p > 0.0,
            "min-p",
            f"tokens below {params.min_p:g} × p(most likely) are dropped",
            lambda: MinPLogitsWarper(params.min_p, min_tokens_to_keep=keep),
            f"{params.min_p:g}",
        ),
        (
            params.typical_p < 1.0,
            "typical-p",
            f"locally typical tokens with {params.typical_p:g} of the mass are kept",
            lambda: TypicalLogitsWarper(params.typical_p, min_tokens_to_keep=keep),
            f"{params.typical_p:g}",
        ),
    ]
    for active, name, description, make, setting in truncations:
        if active:
            add(Stage(name, description, make(), setting))
    return DecodingChain(tuple(stages))


def neutral_generate_kwargs(params: DecodingParams) -> dict[str, object]:
    """generate() keyword arguments that switch off everything the chain does itself, and
    carry the knobs that are not logits processors (beams, lengths, sampling on/off).

    This and `build_chain` are the only places that know Hugging Face's argument names."""
    kwargs: dict[str, object] = {
        "do_sample": params.do_sample,
        "num_beams": params.num_beams,
        "num_return_sequences": params.num_return_sequences,
        "max_new_tokens": params.max_new_tokens,
        "use_cache": params.use_cache,
        # neutral values: the chain applies these itself
        "repetition_penalty": 1.0,
        "no_repeat_ngram_size": 0,
        "min_new_tokens": 0,
        # the checkpoint's rules: the chain applies them (ModelRules), or the notes say they are ignored
        "bad_words_ids": None,
        "min_length": None,  # (0 would make generate() warn that min_new_tokens is set too)
        "forced_bos_token_id": None,
        "forced_eos_token_id": None,
        "suppress_tokens": None,
        "begin_suppress_tokens": None,
        **_UNSUPPORTED_RULES,
    }
    if params.num_beams > 1:
        kwargs.update(length_penalty=params.length_penalty, early_stopping=params.early_stopping)
    if params.do_sample:
        # neutral warpers, so that a checkpoint's generation_config (top_k=50...) adds none
        kwargs.update(temperature=1.0, top_k=0, top_p=1.0, min_p=None, typical_p=1.0)
    return kwargs
