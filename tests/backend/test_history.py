"""Who owns a run, and who may read it back."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from backend.errors import ParameterError, RunAccessError
from backend.history import NOBODY, owned_run, owner_of
from backend.playground import Playground
from backend.runlog import Run, RunLog, RunRecord, RunStatus, add_run

BROWSER = "0f8e7c2a-1b3d-4e5f-8a9b-0c1d2e3f4a5b"


def test_the_owner_is_the_browser_id_when_well_formed_else_the_session() -> None:
    assert owner_of(BROWSER, "abc123") == f"browser:{BROWSER}"
    for forged in ("session:abc123", "browser:" + BROWSER, "<script>", BROWSER.upper() + "0", 42, "", None):
        assert owner_of(forged, "abc123") == "session:abc123"
    assert owner_of(None, None) == NOBODY
    assert owner_of(None, "has spaces") == NOBODY


def log(runlog: RunLog, owner: str | None) -> int:
    with runlog.session() as session, session.begin():
        return add_run(session, RunRecord(task="fill-mask", model="m", status=RunStatus.OK, input={"text": "secret"}, params={}, owner=owner))


@pytest.fixture()
def playground(tmp_path: Path, tiny_gpt2_dir: Path, corrupt_model_dir: Path, db_url: str) -> Playground:
    """The history tests run on SQLite and on PostgreSQL."""
    from tests.conftest import write_models_yaml
    from tests.offline import offline_settings

    pg = Playground(offline_settings(tmp_path, write_models_yaml(tmp_path / "models.yaml", tiny_gpt2_dir, corrupt_model_dir),
                                     PLAYGROUND_DB_URL=db_url))
    yield pg
    pg.close()


def test_only_the_owner_reads_a_run_unless_history_is_shared(db_url: str) -> None:
    runlog = RunLog(db_url)
    mine, ownerless = log(runlog, "session:a"), log(runlog, None)
    with runlog.session() as session:
        assert owned_run(session, mine, "session:a", shared=False).input == {"text": "secret"}
        for other in ("session:b", f"browser:{BROWSER}", NOBODY):
            with pytest.raises(RunAccessError, match=f"^run {mine} is not one of yours.$"):
                owned_run(session, mine, other, shared=False)
        with pytest.raises(RunAccessError):
            owned_run(session, ownerless, "session:a", shared=False)  # logged before owners were recorded
        assert owned_run(session, mine, "session:b", shared=True).id == mine
        assert owned_run(session, str(mine), "session:a", shared=False).id == mine  # as a form sends it
        assert owned_run(session, float(mine), "session:a", shared=False).id == mine
        for bad in (0, -3, 1.5, "x", None, True):
            with pytest.raises(ParameterError, match="run_id must be the id of a logged run"):
                owned_run(session, bad, "session:a", shared=False)
    runlog.dispose()


def test_a_run_log_from_before_owners_gets_the_column_and_keeps_its_runs(db_url: str) -> None:
    url = db_url
    old = RunLog(url)
    first = log(old, None)
    with old.engine.begin() as connection:  # the schema of the previous version: no owner column
        connection.execute(text("DROP INDEX ix_runs_owner"))
        connection.execute(text("ALTER TABLE runs DROP COLUMN owner"))
    old.dispose()
    runlog = RunLog(url)
    schema = inspect(runlog.engine)
    columns = {column["name"] for column in schema.get_columns("runs")}
    indexes = {index["name"] for index in schema.get_indexes("runs")}
    assert "owner" in columns and "ix_runs_owner" in indexes
    second = log(runlog, "session:a")
    with runlog.session() as session:
        assert session.get(Run, first).owner is None and session.get(Run, first).input == {"text": "secret"}
        assert session.get(Run, second).owner == "session:a"
    runlog.dispose()


def test_every_run_records_its_owner(playground: Playground) -> None:
    events = list(playground.text_generation("tiny-gpt2", "Return the", {"max_new_tokens": 3}, threading.Event(), owner="session:g"))
    with pytest.raises(ParameterError, match="top_p must be"):
        list(playground.text_generation("tiny-gpt2", "x", {"top_p": 7}, threading.Event(), owner="session:e"))
    with playground.runlog.session() as session:
        runs = session.query(Run).order_by(Run.id).all()
    assert [(r.status, r.owner) for r in runs] == [("ok", "session:g"), ("error", "session:e")]
    assert runs[0].id == events[-1].run_id
    assert runs[0].result["input_token_ids"] == list(events[-1].result.input_token_ids)


# -- the history ---------------------------------------------------------------------------------

from backend.history import HistoryQuery  # noqa: E402


def generate(pg: Playground, prompt: str, owner: str, **params) -> int:
    events = list(pg.text_generation("tiny-gpt2", prompt, params, threading.Event(), owner=owner))
    return events[-1].run_id


def test_the_history_lists_the_owners_runs_newest_first_with_filters(playground: Playground) -> None:
    a1 = generate(playground, "Return the list", "session:a", max_new_tokens=3)
    generate(playground, "Secret of b", "session:b", max_new_tokens=3)
    with pytest.raises(ParameterError, match="top_p must be"):
        list(playground.text_generation("tiny-gpt2", "Return 100% of_it", {"top_p": 5}, threading.Event(), owner="session:a"))
    a_runs = playground.history("session:a", HistoryQuery.of())
    assert [r["status"] for r in a_runs] == ["error", "ok"] and a_runs[1]["id"] == a1
    assert all("Secret" not in str(r["input"]) for r in a_runs)  # b's prompt is never listed to a
    assert [r["id"] for r in playground.history("session:a", HistoryQuery.of(status="ok"))] == [a1]
    assert [r["status"] for r in playground.history("session:a", HistoryQuery.of(search="100%"))] == ["error"]  # % is a character
    assert playground.history("session:a", HistoryQuery.of(search="of_")) != []
    assert playground.history("session:a", HistoryQuery.of(search="o_it")) == []  # _ is not a wildcard
    assert playground.history("session:a", HistoryQuery.of(search="RETURN THE")) != []  # case-insensitive
    assert playground.history("session:a", HistoryQuery.of(task="fill-mask")) == []
    assert playground.history("session:a", HistoryQuery.of(model="tiny-gpt2", limit=1))[0]["status"] == "error"
    assert playground.history("nobody", HistoryQuery.of()) == []
    assert len(playground.history("session:c", HistoryQuery.of())) == 0


def test_history_filters_are_checked(playground: Playground) -> None:
    cases = [
        ({"task": "poetry"}, "task must be empty or one of text-generation,"),
        ({"status": "done"}, "status must be empty or one of running, ok, error, cancelled, interrupted, got 'done'."),
        ({"limit": 0}, "limit must be an integer in [1, 1000], got 0."),
        ({"limit": 2.5}, "limit must be an integer in [1, 1000], got 2.5."),
        ({"search": "x" * 201}, "search must be at most 200 characters, got '201 characters'."),
        ({"search": "a\ud800"}, "search must be valid Unicode text"),
        ({"model": 3}, "model must be text, got 3."),
    ]
    for kwargs, message in cases:
        with pytest.raises(Exception) as info:
            HistoryQuery.of(**kwargs)
        assert message in str(info.value)
    assert HistoryQuery.of(task="all", status="", limit="7") == HistoryQuery(limit=7)


def test_export_round_trips_runs_and_steps(playground: Playground) -> None:
    import csv
    import io
    import json

    ids = [generate(playground, "Return the", "session:a", max_new_tokens=4, seed=s) for s in (1, 2)]
    name, content = playground.export("session:a", HistoryQuery.of(), "jsonl")
    assert name == "playground-runs.jsonl"
    runs = [json.loads(line) for line in content.splitlines()]
    assert [r["id"] for r in runs] == ids[::-1]
    for run in runs:
        assert run == playground.run_detail("session:a", run["id"])  # the same run, steps and all
        assert len(run["steps"]) == 4 and {"token_id", "prob", "alternatives", "elapsed_s"} <= run["steps"][0].keys()
    name, content = playground.export("session:a", HistoryQuery.of(), "csv")
    rows = list(csv.DictReader(io.StringIO(content)))
    assert [int(r["id"]) for r in rows] == ids[::-1] and json.loads(rows[0]["params"])["seed"] == 2
    assert playground.export("session:b", HistoryQuery.of(), "jsonl")[1] == ""  # nothing of a's
    with pytest.raises(ParameterError, match="format must be one of jsonl, csv, got 'xml'."):
        playground.export("session:a", HistoryQuery.of(), "xml")


@pytest.mark.parametrize("params", [{"max_new_tokens": 12}, {"max_new_tokens": 12, "temperature": 1.2, "top_k": 50, "seed": 9}])
def test_a_replay_is_identical_for_greedy_and_seeded_sampling(playground: Playground, params: dict) -> None:
    original = generate(playground, "Return the number", "session:a", **params)
    replay = playground.replay("session:a", original)
    assert replay.identical and replay.first_difference is None and replay.run_id != original
    first, again = (playground.run_detail("session:a", i) for i in (original, replay.run_id))
    assert [s["token_id"] for s in first["steps"]] == [s["token_id"] for s in again["steps"]]
    assert again["seed"] == first["seed"] and again["params"] == first["params"]
    with pytest.raises(RunAccessError):
        playground.replay("session:b", original)


def test_a_replay_says_where_it_first_differs(playground: Playground) -> None:
    cancel = threading.Event()
    events = []
    for event in playground.text_generation("tiny-gpt2", "Return the", {"max_new_tokens": 100, "seed": 4}, cancel, owner="session:a"):
        events.append(event)
        cancel.set()  # the original is stopped at its first token
    original = events[-1]
    n = len(original.result.steps)
    assert original.result.finish_reason == "cancelled" and n < 100
    replay = playground.replay("session:a", original.run_id)
    assert not replay.identical and replay.first_difference == n  # the replay goes on where the original stopped
