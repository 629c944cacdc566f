"""One frozen, validated object that carries every decoding knob.

Modelled on vLLM's SamplingParams: each field says its range and its "off" value, single
fields are validated first, then the rules that tie fields together. Nothing is clamped
silently: a value out of range is an error that names the field, the rule and the value.

Only `backend.processors` and `backend.generation` turn these fields into Hugging Face
arguments; the rest of the code speaks this vocabulary.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from backend.errors import ParameterError

#: The documented cap on max_new_tokens (the UI slider stops here too).
MAX_NEW_TOKENS_CAP = 1024
#: At most this many beams / returned sequences: beyond it a CPU demo only gets slow.
MAX_BEAMS = 16
#: Stop sequences: at most this many, each at most this long.
MAX_STOP_SEQUENCES = 8
MAX_STOP_SEQUENCE_CHARS = 64
#: Alternatives listed per position in the probability chart.
MAX_TOP_ALTERNATIVES = 20
MAX_SEED = 2**32 - 1


class DecodingMode(enum.Enum):
    """How the next token is chosen; derived from temperature and num_beams."""

    GREEDY = "greedy"  # temperature 0, one beam: argmax
    SAMPLE = "sample"  # temperature > 0, one beam: multinomial sampling
    BEAM = "beam"  # temperature 0, several beams: beam search
    BEAM_SAMPLE = "beam_sample"  # temperature > 0, several beams: beam sampling


@dataclass(frozen=True)
class DecodingParams:
    """Decoding parameters. Defaults are greedy decoding of up to 64 new tokens."""

    # Randomness. 0 = greedy (argmax); > 0 divides the logits before sampling. Range [0, 5].
    temperature: float = 0.0
    # Keep only the k most likely tokens. 0 = off. Integer >= 0. Ignored when greedy.
    top_k: int = 0
    # Keep the smallest set of tokens whose probability adds up to top_p. 1 = off. Range (0, 1].
    top_p: float = 1.0
    # Drop tokens whose probability is below min_p * p(most likely). 0 = off. Range [0, 1].
    min_p: float = 0.0
    # Locally typical sampling mass. 1 = off. Range (0, 1].
    typical_p: float = 1.0
    # Multiplicative penalty (CTRL) on tokens already in prompt or output. 1 = off. Range (0, 10].
    repetition_penalty: float = 1.0
    # OpenAI/vLLM: subtract this from the logit of every token already generated. 0 = off. [-2, 2].
    presence_penalty: float = 0.0
    # OpenAI/vLLM: subtract this times the token's count among generated tokens. 0 = off. [-2, 2].
    frequency_penalty: float = 0.0
    # Forbid any n-gram of this size from occurring twice. 0 = off. Integer >= 0.
    no_repeat_ngram_size: int = 0
    # Beam search width. 1 = off. Integer in [1, 16]. Beam search cannot stream.
    num_beams: int = 1
    # Beam score = log-prob sum / length ** length_penalty. 1 = neutral. Range [-10, 10].
    length_penalty: float = 1.0
    # Beam search stops as soon as num_beams finished candidates exist.
    early_stopping: bool = False
    # How many sequences to return. Integer in [1, 16]; <= num_beams unless sampling.
    num_return_sequences: int = 1
    # At least this many new tokens before end-of-sequence may be chosen. Integer >= 0.
    min_new_tokens: int = 0
    # At most this many new tokens. Integer in [1, MAX_NEW_TOKENS_CAP].
    max_new_tokens: int = 64
    # Generation stops when the output contains one of these; the output is cut before it.
    stop_sequences: tuple[str, ...] = ()
    # Seed for the random generator. None = a random seed, which is then reported and logged.
    seed: int | None = None
    # Keep the attention keys and values of past tokens (the KV cache) instead of recomputing the
    # whole prefix at every step. Same tokens either way (up to float rounding); without it each
    # step costs more as the text grows. Off = no cache.
    use_cache: bool = True
    # Display only: alternatives listed per position in the probability chart. Range [1, 20].
    top_alternatives: int = 5

    def __post_init__(self) -> None:
        self._validate_fields()
        self._validate_combinations()

    # -- validation -------------------------------------------------------------------------

    def _validate_fields(self) -> None:
        _check_range("temperature", self.temperature, 0.0, 5.0, "in [0, 5]")
        _check_int("top_k", self.top_k, 0, None, "an integer >= 0")
        _check_range("top_p", self.top_p, 0.0, 1.0, "in (0, 1]", low_open=True)
        _check_range("min_p", self.min_p, 0.0, 1.0, "in [0, 1]")
        _check_range("typical_p", self.typical_p, 0.0, 1.0, "in (0, 1]", low_open=True)
        _check_range(
            "repetition_penalty", self.repetition_penalty, 0.0, 10.0, "in (0, 10]", low_open=True
        )
        _check_range("presence_penalty", self.presence_penalty, -2.0, 2.0, "in [-2, 2]")
        _check_range("frequency_penalty", self.frequency_penalty, -2.0, 2.0, "in [-2, 2]")
        _check_int("no_repeat_ngram_size", self.no_repeat_ngram_size, 0, None, "an integer >= 0")
        _check_int("num_beams", self.num_beams, 1, MAX_BEAMS, f"an integer in [1, {MAX_BEAMS}]")
        _check_range("length_penalty", self.length_penalty, -10.0, 10.0, "in [-10, 10]")
        if not isinstance(self.early_stopping, bool):
            raise ParameterError("early_stopping", "true or false", self.early_stopping)
        if not isinstance(self.use_cache, bool):
            raise ParameterError("use_cache", "true or false", self.use_cache)
        _check_int(
            "num_return_sequences",
            self.num_return_sequences,
            1,
            MAX_BEAMS,
            f"an integer in [1, {MAX_BEAMS}]",
        )
        _check_int("min_new_tokens", self.min_new_tokens, 0, None, "an integer >= 0")
        _check_int(
            "max_new_tokens",
            self.max_new_tokens,
            1,
            MAX_NEW_TOKENS_CAP,
            f"an integer in [1, {MAX_NEW_TOKENS_CAP}]",
        )
        if not isinstance(self.stop_sequences, tuple):
            raise ParameterError("stop_sequences", "a tuple of strings", self.stop_sequences)
        if len(self.stop_sequences) > MAX_STOP_SEQUENCES:
            raise ParameterError(
                "stop_sequences",
                f"at most {MAX_STOP_SEQUENCES} sequences",
                len(self.stop_sequences),
            )
        for stop in self.stop_sequences:
            if not isinstance(stop, str) or not stop or len(stop) > MAX_STOP_SEQUENCE_CHARS:
                raise ParameterError(
                    "stop_sequences",
                    f"non-empty strings of at most {MAX_STOP_SEQUENCE_CHARS} characters",
                    stop,
                )
        if self.seed is not None:
            _check_int("seed", self.seed, 0, MAX_SEED, f"empty or an integer in [0, {MAX_SEED}]")
        _check_int(
            "top_alternatives",
            self.top_alternatives,
            1,
            MAX_TOP_ALTERNATIVES,
            f"an integer in [1, {MAX_TOP_ALTERNATIVES}]",
        )

    def _validate_combinations(self) -> None:
        if self.min_new_tokens > self.max_new_tokens:
            raise ParameterError(
                "min_new_tokens",
                f"at most max_new_tokens ({self.max_new_tokens})",
                self.min_new_tokens,
            )
        if not self.do_sample and self.num_return_sequences > self.num_beams:
            raise ParameterError(
                "num_return_sequences",
                f"at most num_beams ({self.num_beams}) when not sampling (temperature 0)",
                self.num_return_sequences,
            )

    # -- derived views ----------------------------------------------------------------------

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0.0

    @property
    def mode(self) -> DecodingMode:
        if self.num_beams > 1:
            return DecodingMode.BEAM_SAMPLE if self.do_sample else DecodingMode.BEAM
        return DecodingMode.SAMPLE if self.do_sample else DecodingMode.GREEDY

    @property
    def streams(self) -> bool:
        """Token-by-token streaming needs one sequence and no beams (transformers' rule)."""
        return self.num_beams == 1 and self.num_return_sequences == 1

    def with_seed(self, seed: int) -> DecodingParams:
        return replace(self, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (stop sequences as a list), as logged with every run."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["stop_sequences"] = list(self.stop_sequences)
        return out

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> DecodingParams:
        """Build from loosely typed values (a form, a JSON body): numbers given as floats with
        an integral value become ints, empty values take the default, stop sequences may be
        one string with one sequence per line (backslash escapes such as \\n are understood).
        Unknown keys are an error that lists the known ones."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ParameterError(
                "parameter", f"one of {', '.join(known)}", unknown[0]
            )
        values: dict[str, Any] = {}
        for name, value in raw.items():
            if value is None or (isinstance(value, str) and not value.strip() and name != "stop_sequences"):
                if name == "seed":
                    values["seed"] = None
                continue
            values[name] = _coerce(name, known[name].type, value)
        return cls(**values)


# -- helpers ----------------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_range(
    name: str, value: object, low: float, high: float, rule: str, *, low_open: bool = False
) -> None:
    if not _is_number(value) or math.isnan(value):  # type: ignore[arg-type]
        raise ParameterError(name, rule, value)
    too_low = value <= low if low_open else value < low  # type: ignore[operator]
    if too_low or value > high:  # type: ignore[operator]
        raise ParameterError(name, rule, value)


def _check_int(name: str, value: object, low: int, high: int | None, rule: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ParameterError(name, rule, value)
    if value < low or (high is not None and value > high):
        raise ParameterError(name, rule, value)


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "r": "\r"}


def parse_stop_sequences(text: str) -> tuple[str, ...]:
    """One stop sequence per line; \\n, \\t, \\r and \\\\ are escapes, so "\\n\\n" stops at a
    blank line. Empty lines are ignored."""
    out = []
    for line in text.splitlines():
        if not line:
            continue
        chars, i = [], 0
        while i < len(line):
            if line[i] == "\\" and i + 1 < len(line) and line[i + 1] in _ESCAPES:
                chars.append(_ESCAPES[line[i + 1]])
                i += 2
            else:
                chars.append(line[i])
                i += 1
        out.append("".join(chars))
    return tuple(out)


def _coerce(name: str, annotation: str, value: Any) -> Any:
    """Turn a form value into the field's type; leave anything odd for validation to reject."""
    if name == "stop_sequences":
        if isinstance(value, str):
            return parse_stop_sequences(value)
        if isinstance(value, (list, tuple)):
            return tuple(value)
        return value
    if annotation in ("int", "int | None"):
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value
    if annotation == "float":
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                return value
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    return value


# -- presets ----------------------------------------------------------------------------------


PRESETS: Mapping[str, DecodingParams] = {
    # argmax at every step: reproducible, and on a small model quickly repetitive
    "greedy": DecodingParams(),
    # the usual chat-style setting
    "balanced": DecodingParams(temperature=0.7, top_k=50, top_p=0.9, repetition_penalty=1.1),
    # flatter distribution, wide nucleus, and OpenAI-style penalties against repetition
    "creative": DecodingParams(
        temperature=1.1, top_k=0, top_p=0.95, presence_penalty=0.6, frequency_penalty=0.4
    ),
}
