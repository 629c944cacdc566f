"""Who owns a run, and who may read it back."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text

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


def test_only_the_owner_reads_a_run_unless_history_is_shared(tmp_path: Path) -> None:
    runlog = RunLog(f"sqlite:///{tmp_path / 'runs.sqlite'}")
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


def test_a_run_log_from_before_owners_gets_the_column_and_keeps_its_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    old = RunLog(url)
    first = log(old, None)
    with old.engine.begin() as connection:  # the schema of the previous version: no owner column
        connection.execute(text("DROP INDEX ix_runs_owner"))
        connection.execute(text("ALTER TABLE runs DROP COLUMN owner"))
    old.dispose()
    runlog = RunLog(url)
    with runlog.engine.connect() as connection:
        columns = {row[1] for row in connection.execute(text("PRAGMA table_info(runs)"))}
        indexes = {row[1] for row in connection.execute(text("PRAGMA index_list(runs)"))}
    assert "owner" in columns and "ix_runs_owner" in indexes
    second = log(runlog, "session:a")
    with runlog.session() as session:
        assert session.get(Run, first).owner is None and session.get(Run, first).input == {"text": "secret"}
        assert session.get(Run, second).owner == "session:a"
    runlog.dispose()


def test_every_run_records_its_owner(playground: Playground) -> None:
    events = list(playground.text_generation("tiny-gpt2", "Return the", {"max_new_tokens": 3}, threading.Event(), owner="session:g"))
    with pytest.raises(Exception):
        list(playground.text_generation("tiny-gpt2", "x", {"top_p": 7}, threading.Event(), owner="session:e"))
    with playground.runlog.session() as session:
        runs = session.query(Run).order_by(Run.id).all()
    assert [(r.status, r.owner) for r in runs] == [("ok", "session:g"), ("error", "session:e")]
    assert runs[0].id == events[-1].run_id
    assert runs[0].result["input_token_ids"] == list(events[-1].result.input_token_ids)
