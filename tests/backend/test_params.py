"""DecodingParams: every bad value is refused with "<field> must be <rule>, got <value>."."""

from __future__ import annotations

import math

import pytest

from backend.errors import ParameterError
from backend.params import MAX_NEW_TOKENS_CAP, PRESETS, DecodingMode, DecodingParams, parse_stop_sequences

BAD = [
    ({"temperature": -0.1}, "temperature must be in [0, 5], got -0.1."),
    ({"temperature": math.nan}, "temperature must be in [0, 5], got nan."),
    ({"temperature": math.inf}, "temperature must be in [0, 5], got inf."),
    ({"top_p": 1.3}, "top_p must be in (0, 1], got 1.3."),
    ({"top_p": 0.0}, "top_p must be in (0, 1], got 0.0."),
    ({"top_k": -1}, "top_k must be an integer >= 0, got -1."),
    ({"top_k": 2.5}, "top_k must be an integer >= 0, got 2.5."),
    ({"min_p": 1.5}, "min_p must be in [0, 1], got 1.5."),
    ({"typical_p": 0.0}, "typical_p must be in (0, 1], got 0.0."),
    ({"repetition_penalty": 0.0}, "repetition_penalty must be in (0, 10], got 0.0."),
    ({"presence_penalty": 2.5}, "presence_penalty must be in [-2, 2], got 2.5."),
    ({"frequency_penalty": -3.0}, "frequency_penalty must be in [-2, 2], got -3.0."),
    ({"no_repeat_ngram_size": -2}, "no_repeat_ngram_size must be an integer >= 0, got -2."),
    ({"num_beams": 0}, "num_beams must be an integer in [1, 16], got 0."),
    ({"max_new_tokens": 0}, f"max_new_tokens must be an integer in [1, {MAX_NEW_TOKENS_CAP}], got 0."),
    ({"max_new_tokens": MAX_NEW_TOKENS_CAP + 1}, f"max_new_tokens must be an integer in [1, {MAX_NEW_TOKENS_CAP}], got {MAX_NEW_TOKENS_CAP + 1}."),
    ({"min_new_tokens": 10, "max_new_tokens": 5}, "min_new_tokens must be at most max_new_tokens (5), got 10."),
    (
        {"num_return_sequences": 3, "num_beams": 2},
        "num_return_sequences must be at most num_beams (2) when not sampling (temperature 0), got 3.",
    ),
    ({"seed": -1}, "seed must be empty or an integer in [0, 4294967295], got -1."),
    ({"seed": "abc"}, "seed must be empty or an integer in [0, 4294967295], got 'abc'."),
    ({"top_alternatives": 0}, "top_alternatives must be an integer in [1, 20], got 0."),
    ({"stop_sequences": "\n".join(f"s{i}" for i in range(9))}, "stop_sequences must be at most 8 sequences, got 9."),
    ({"length_penalty": math.nan}, "length_penalty must be in [-10, 10], got nan."),
]


@pytest.mark.parametrize(("raw", "message"), BAD, ids=[next(iter(raw)) for raw, _ in BAD])
def test_bad_values_are_refused_with_a_clear_message(raw: dict, message: str) -> None:
    with pytest.raises(ParameterError) as info:
        DecodingParams.from_mapping(raw)
    assert str(info.value) == message


def test_unknown_parameter_lists_the_known_ones() -> None:
    with pytest.raises(ParameterError, match=r"parameter must be one of temperature, top_k, .*got 'tempature'"):
        DecodingParams.from_mapping({"tempature": 1.0})


def test_form_values_are_coerced() -> None:
    params = DecodingParams.from_mapping(
        {"top_k": 40.0, "temperature": 1, "seed": "  ", "stop_sequences": "\\n\\n\nEND\n", "max_new_tokens": "12"}
    )
    assert params.top_k == 40 and isinstance(params.top_k, int)
    assert params.temperature == 1.0
    assert params.seed is None
    assert params.stop_sequences == ("\n\n", "END")
    assert params.max_new_tokens == 12


def test_sampling_allows_more_sequences_than_beams() -> None:
    params = DecodingParams(temperature=0.8, num_return_sequences=3)
    assert params.mode is DecodingMode.SAMPLE and not params.streams


def test_modes() -> None:
    assert DecodingParams().mode is DecodingMode.GREEDY
    assert DecodingParams(num_beams=3).mode is DecodingMode.BEAM
    assert DecodingParams(num_beams=3, temperature=0.5).mode is DecodingMode.BEAM_SAMPLE


def test_presets_are_valid_and_distinct() -> None:
    assert PRESETS["greedy"].mode is DecodingMode.GREEDY
    assert PRESETS["balanced"].do_sample and PRESETS["creative"].do_sample
    assert PRESETS["creative"].presence_penalty > 0 and PRESETS["creative"].temperature > PRESETS["balanced"].temperature


def test_stop_sequence_escapes() -> None:
    assert parse_stop_sequences("a\\tb\n\n\\\\n") == ("a\tb", "\\n")


def test_round_trip_through_dict() -> None:
    params = DecodingParams(temperature=0.5, stop_sequences=("x",), seed=3)
    assert DecodingParams.from_mapping(params.to_dict()) == params
