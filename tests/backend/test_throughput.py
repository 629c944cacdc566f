"""The throughput lab: its inputs, one lab at a time, and what it measures."""

from __future__ import annotations

import threading

import pytest

from backend.errors import ParameterError, UnknownModelError
from backend.history import HistoryQuery
from backend.playground import Playground
from backend.throughput import LabBusyError, ThroughputLab, lab_sizes, lab_tokens


def test_the_lab_takes_the_sizes_it_knows() -> None:
    assert lab_sizes([4, 1.0, "2", 4]) == (1, 2, 4)
    for bad, shown in (([3], "[3]"), ([], "[]"), ("1,2", "'1,2'"), ([1, 32], "32"), (None, "None")):
        with pytest.raises(ParameterError, match="n_values must be a") as info:
            lab_sizes(bad)
        assert shown in str(info.value)
    assert lab_tokens(64) == 64
    with pytest.raises(ParameterError, match=r"max_new_tokens must be an integer in \[1, 64\], got 65."):
        lab_tokens(65)


def test_one_lab_at_a_time() -> None:
    lab = ThroughputLab()
    inside, release = threading.Event(), threading.Event()

    def slow(prompt, params):
        inside.set()
        release.wait(10)
        raise RuntimeError("not measured")

    first = threading.Thread(target=lambda: pytest.raises(RuntimeError, lab.run, (1,), 2, slow))
    first.start()
    assert inside.wait(10)
    with pytest.raises(LabBusyError, match="a throughput lab is running already"):
        lab.run((1,), 2, slow)
    release.set()
    first.join()


def test_the_lab_measures_n_generations_at_once_as_runs_of_the_person(playground: Playground) -> None:
    points = playground.throughput_lab("session:lab", "tiny-gpt2", [1, 4], 6)
    assert [p.n for p in points] == [1, 4] and [p.tokens for p in points] == [6, 24]
    assert all(p.tokens_per_s > 0 and p.time_per_token_s > 0 and p.ttft_s > 0 for p in points)
    runs = playground.history("session:lab", HistoryQuery.of())
    assert sorted(r["id"] for r in runs) == sorted(i for p in points for i in p.run_ids)
    assert all(r["new_tokens"] == 6 and r["status"] == "ok" for r in runs)
    with pytest.raises(UnknownModelError, match="model must be one of 'tiny-gpt2', 'corrupt-gpt2', 'offline-hub-model', got 'nope'."):
        playground.throughput_lab("session:lab", "nope", [1], 4)
