"""The service writes every run -- finished, failed, stopped -- to the run log."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, text

from backend.errors import ModelLoadError, ParameterError
from backend.generation import TokenEvent
from backend.playground import GenerationRun
from backend.runlog import Run, TokenStepRow


def finish(events) -> GenerationRun:
    out = [e for e in events]
    assert isinstance(out[-1], GenerationRun)
    return out[-1]


def test_a_finished_run_and_its_steps_are_logged(playground) -> None:
    run = finish(playground.text_generation("tiny-gpt2", "Return the", {"max_new_tokens": 6, "seed": "7"}, threading.Event()))
    with playground.runlog.session() as session:
        row = session.get(Run, run.run_id)
        assert row.status == "ok" and row.task == "text-generation" and row.model == "tiny-gpt2"
        assert row.input == {"prompt": "Return the"} and row.params["max_new_tokens"] == 6 and row.seed == 7
        assert row.output == run.result.text and row.new_tokens == 6 and row.ttft_s > 0 and row.peak_memory_bytes > 0
        steps = session.scalars(select(TokenStepRow).where(TokenStepRow.run_id == run.run_id).order_by(TokenStepRow.position)).all()
        assert [s.token_id for s in steps] == list(run.result.sequences[0].token_ids)
        assert steps[0].alternatives[0].keys() == {"token_id", "text", "prob", "raw_prob"}
        assert abs(steps[0].raw_prob - run.result.steps[0].raw_prob) < 1e-9


def test_json_result_is_complete(playground) -> None:
    run = finish(playground.text_generation("tiny-gpt2", "Return the", {"max_new_tokens": 4}, threading.Event()))
    payload = run.to_json()
    assert {"run_id", "text", "tokens", "metrics", "seed", "finish_reason", "sequences", "chain", "params"} <= payload.keys()
    assert len(payload["tokens"]) == 4 and payload["metrics"]["new_tokens"] == 4


def test_bad_parameters_are_logged_as_errors_with_the_input_kept(playground) -> None:
    with pytest.raises(ParameterError, match=r"top_p must be in \(0, 1\], got 1.3."):
        list(playground.text_generation("tiny-gpt2", "my precious prompt", {"top_p": 1.3}, threading.Event()))
    with playground.runlog.session() as session:
        row = session.scalars(select(Run).order_by(Run.id.desc())).first()
    assert row.status == "error" and row.error == "top_p must be in (0, 1], got 1.3."
    assert row.input == {"prompt": "my precious prompt"} and row.params == {"top_p": 1.3}


def test_a_load_failure_is_logged_and_the_next_run_works(playground) -> None:
    with pytest.raises(ModelLoadError):
        list(playground.text_generation("corrupt-gpt2", "x", {}, threading.Event()))
    finish(playground.text_generation("tiny-gpt2", "x", {"max_new_tokens": 2}, threading.Event()))
    with playground.runlog.session() as session:
        statuses = [r.status for r in session.scalars(select(Run).order_by(Run.id))]
    assert statuses == ["error", "ok"]


def test_a_stopped_run_is_logged_as_cancelled_with_its_partial_output(playground) -> None:
    cancel = threading.Event()
    events = []
    for event in playground.text_generation("tiny-gpt2", "Return the", {"max_new_tokens": 200}, cancel):
        events.append(event)
        if isinstance(event, TokenEvent) and len(events) == 2:
            cancel.set()
    run = events[-1]
    assert isinstance(run, GenerationRun)
    with playground.runlog.session() as session:
        row = session.get(Run, run.run_id)
        assert row.status == "cancelled" and row.finish_reason == "cancelled" and row.output == run.result.text
        assert 1 <= row.new_tokens < 200 and len(row.steps) == row.new_tokens


def test_an_abandoned_stream_is_logged_as_cancelled(playground) -> None:
    stream = playground.text_generation("tiny-gpt2", "Return the", {"max_new_tokens": 200}, threading.Event())
    next(stream)
    stream.close()  # the browser went away
    with playground.runlog.session() as session:
        row = session.scalars(select(Run).order_by(Run.id.desc())).first()
        assert row.status == "cancelled" and len(row.steps) >= 1


def test_sqlite_runs_in_wal_mode(playground) -> None:
    with playground.runlog.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
