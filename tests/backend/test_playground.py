"""The service writes every run -- finished, failed, stopped -- to the run log."""

from __future__ import annotations

import threading
import time

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


def test_a_run_is_in_the_log_from_its_start_and_its_steps_arrive_while_it_streams(playground, monkeypatch) -> None:
    from backend.runlog import RunRecorder

    monkeypatch.setattr(RunRecorder, "FLUSH_STEPS", 4)  # small batches, to see them arrive
    seen: list[tuple[str, int]] = []
    stream = playground.text_generation(
        "tiny-gpt2", "Return the", {"max_new_tokens": 40, "seed": 3}, threading.Event(), owner="session:s"
    )
    for event in stream:
        if isinstance(event, TokenEvent) and event.step.position in (0, 10, 30):
            with playground.runlog.session() as session:
                row = session.scalars(select(Run).order_by(Run.id.desc())).first()
                seen.append((row.status, len(row.steps)))
                assert row.seed == 3 and row.owner == "session:s" and row.prompt_tokens > 0
    assert [status for status, _ in seen] == ["running"] * 3
    written = [n for _, n in seen]
    assert written[0] == 0 and 8 <= written[1] <= 11 and 28 <= written[2] <= 31  # at most FLUSH_STEPS behind
    with playground.runlog.session() as session:
        row = session.scalars(select(Run).order_by(Run.id.desc())).first()
        assert row.status == "ok" and len(row.steps) == 40 and [s.position for s in row.steps] == list(range(40))
        assert session.scalar(select(text("count(*)")).select_from(Run)) == 1  # one row, updated, not two


def test_an_abandoned_stream_keeps_its_seed_params_and_times(playground) -> None:
    stream = playground.text_generation("tiny-gpt2", "Return the", {"max_new_tokens": 100, "temperature": 0.9}, threading.Event())
    for _ in range(5):
        next(stream)
    stream.close()  # job.cancel(), or the browser went away
    with playground.runlog.session() as session:
        row = session.scalars(select(Run).order_by(Run.id.desc())).first()
        assert row.status == "cancelled" and row.finish_reason == "cancelled"
        assert row.seed is not None and row.params["temperature"] == 0.9 and row.params["seed"] == row.seed
        assert row.new_tokens == len(row.steps) >= 5 and row.ttft_s > 0 and row.total_s >= row.ttft_s
        assert row.prompt_tokens == 2 and row.output == "".join(s.text for s in row.steps)
        assert row.result["input_token_ids"] and row.result["chain"] == ["temperature"]


def test_runs_left_running_by_an_app_that_ended_are_interrupted_at_the_next_start(settings) -> None:
    from backend.playground import Playground
    from backend.runlog import RunRecord, RunRecorder, RunStatus

    first = Playground(settings)
    stream = first.text_generation("tiny-gpt2", "Return the", {"max_new_tokens": 100}, threading.Event())
    for _ in range(3):
        next(stream)
    recorder = RunRecorder(
        first.runlog,
        RunRecord(task="text-generation", model="tiny-gpt2", status=RunStatus.RUNNING, input={"prompt": "x"}, params={}),
    )
    steps = [event.step for event in [next(stream) for _ in range(3)]]
    for step in steps:
        recorder.add(step)
    recorder.flush()  # what reached the log before the crash
    first.runlog.dispose()  # the process "dies": nothing more is written
    second = Playground(settings)
    with second.runlog.session() as session:
        row = session.get(Run, recorder.run_id)
        assert row.status == "interrupted" and row.finish_reason == "interrupted"
        assert row.new_tokens == 3 and row.output == "".join(s.text for s in steps)
    stream.close()
    first.engine.close()
    second.close()


def test_a_failure_after_the_start_ends_the_started_run_as_an_error(playground, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("the model fell over")

    loaded = playground.registry.get("tiny-gpt2")
    monkeypatch.setattr(loaded.model, "forward", broken)
    with pytest.raises(RuntimeError):
        list(playground.text_generation("tiny-gpt2", "Return the", {"max_new_tokens": 4}, threading.Event()))
    with playground.runlog.session() as session:
        rows = session.scalars(select(Run)).all()
    assert [(r.status, r.error) for r in rows] == [("error", "RuntimeError: the model fell over")]
    assert rows[0].seed is not None and rows[0].prompt_tokens == 2


def test_a_run_whose_start_cannot_be_logged_stops_decoding_and_fails(playground, monkeypatch) -> None:
    """A batched run decodes from the moment the engine has it, before its start is logged: when
    that write fails, the run is stopped in the batch, and the failure is logged as an error."""
    import backend.playground

    def refuse(*args, **kwargs):
        raise RuntimeError("the run log refused the write")

    monkeypatch.setattr(backend.playground, "RunRecorder", refuse)
    cancel = threading.Event()
    with pytest.raises(RuntimeError, match="refused the write"):
        list(playground.text_generation("tiny-gpt2", "Return the", {"max_new_tokens": 200, "min_new_tokens": 200}, cancel))
    assert cancel.is_set()
    deadline = time.time() + 10
    while time.time() < deadline and playground.engine.decoding_now():
        time.sleep(0.01)
    assert playground.engine.decoding_now() == 0 and sum(s.tokens for _, s in playground.engine.serving_stats()) < 200
    with playground.runlog.session() as session:
        rows = session.scalars(select(Run)).all()
    assert [(r.status, r.error) for r in rows] == [("error", "RuntimeError: the run log refused the write")]
