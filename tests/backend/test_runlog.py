"""The run log on SQLite and on PostgreSQL: what a person or a model wrote is stored whatever it
holds, and two app processes writing to one PostgreSQL database at once lose nothing."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

from sqlalchemy import func, select

from backend.capture import TokenStep
from backend.runlog import Run, RunLog, RunRecord, RunRecorder, RunStatus, TokenStepRow, add_run, interrupt_unfinished

REPO = Path(__file__).resolve().parents[2]


def step(position: int, text: str = "tok") -> TokenStep:
    return TokenStep(position=position, token_id=position, text=text, prob=0.5, raw_prob=0.4, entropy=1.0,
                     raw_entropy=1.2, alternatives=(), elapsed_s=0.01 * position)


def test_odd_text_long_names_and_non_finite_numbers_are_stored(db_url: str) -> None:
    runlog = RunLog(db_url)
    record = RunRecord(
        task="text-generation", model="m" * 300, status=RunStatus.ERROR, input={"prompt": "a\x00b ✓ 🙂", "t": math.nan},
        params={"temperature": math.inf}, output="out\x00put", error="model must be ...", result={"score": -math.inf},
        steps=(step(0, "\x00"), step(1, "é")), owner="session:x",
    )
    with runlog.session() as session, session.begin():
        run_id = add_run(session, record)
    with runlog.session() as session:
        run = session.get(Run, run_id)
        nul = "\x00" if db_url.startswith("sqlite") else "\u2400"  # PostgreSQL refuses NUL in text
        assert run.input == {"prompt": "a\x00b ✓ 🙂", "t": "nan"}  # JSON keeps NUL on both
        assert run.params == {"temperature": "inf"} and run.result == {"score": "-inf"}
        assert run.model == "m" * 200 and run.output == f"out{nul}put"
        assert [s.text for s in run.steps] == [nul, "é"]
    runlog.dispose()


def test_steps_written_many_to_a_statement_read_back_as_they_were(db_url: str) -> None:
    """add_steps writes up to STEPS_PER_INSERT rows in one statement: 150 steps (three statements)
    with alternatives, a missing distribution and odd text come back whole, in order."""
    from backend.capture import Alternative

    steps = tuple(
        replace(step(i, f"t{i}\x00" if i == 70 else f"t{i}"), alternatives=(Alternative(i, "a", 0.25, None), Alternative(7, "b", None, 0.1)),
                prob=None if i == 3 else 0.5, probabilities="raw" if i == 3 else "local")
        for i in range(150)
    )
    runlog = RunLog(db_url)
    recorder = RunRecorder(runlog, RunRecord(task="text-generation", model="m", status=RunStatus.RUNNING, input={}, params={}))
    recorder.end(RunStatus.OK, steps, output="out", finish_reason="length", metrics={"new_tokens": 150, "bogus": 1})
    with runlog.session() as session:
        run = session.get(Run, recorder.run_id)
        nul = "\x00" if db_url.startswith("sqlite") else "\u2400"
        expected = [replace(s, text=s.text.replace("\x00", nul)) for s in steps]
        assert [row.to_step() for row in run.steps] == expected
        assert (run.status, run.output, run.finish_reason, run.new_tokens) == ("ok", "out", "length", 150)
    runlog.dispose()


def test_a_recorded_run_streams_its_steps_and_an_unfinished_one_is_interrupted_at_the_next_start(db_url: str) -> None:
    runlog = RunLog(db_url)
    recorder = RunRecorder(runlog, RunRecord(task="text-generation", model="m", status=RunStatus.RUNNING, input={}, params={}))
    for i in range(3):
        recorder.add(step(i))
    recorder.flush()
    runlog.dispose()
    restarted = RunLog(db_url)
    with restarted.session() as session, session.begin():
        assert interrupt_unfinished(session) == [recorder.run_id]
    with restarted.session() as session:
        run = session.get(Run, recorder.run_id)
        assert run.status == "interrupted" and run.output == "toktoktok" and run.new_tokens == 3
    restarted.dispose()


WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    from backend.capture import TokenStep
    from backend.runlog import RunLog, RunRecord, RunRecorder, RunStatus
    runlog = RunLog({url!r})
    print("ready", flush=True)
    sys.stdin.readline()  # both processes start writing together
    for i in range({runs}):
        rec = RunRecorder(runlog, RunRecord(task="text-generation", model="m", status=RunStatus.RUNNING,
                                            input={{"prompt": "{name} %d" % i}}, params={{}}, owner="session:{name}"))
        steps = [TokenStep(position=p, token_id=p, text="t", prob=0.5, raw_prob=0.5, entropy=1.0, raw_entropy=1.0,
                           alternatives=(), elapsed_s=0.0) for p in range({steps})]
        for s in steps:
            rec.add(s)
        rec.end(RunStatus.OK, output="t" * {steps})
    print("done", flush=True)
    """
)


def test_two_app_processes_writing_to_one_postgresql_database_lose_nothing(postgres) -> None:
    url = postgres.new_database()
    runs, steps = 60, 20
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER.format(repo=str(REPO), url=url, runs=runs, steps=steps, name=name)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for name in ("a", "b")
    ]
    for w in writers:  # each created (or found) the schema, under the advisory lock
        assert w.stdout.readline().strip() == "ready"
    for w in writers:
        w.stdin.write("go\n")
        w.stdin.flush()
    for w in writers:
        assert w.stdout.readline().strip() == "done"
        assert w.wait(timeout=120) == 0
    runlog = RunLog(url)
    with runlog.session() as session:
        for name in ("a", "b"):
            ids = session.scalars(select(Run.id).where(Run.owner == f"session:{name}", Run.status == "ok")).all()
            assert len(ids) == runs
            counts = session.execute(
                select(TokenStepRow.run_id, func.count()).where(TokenStepRow.run_id.in_(ids)).group_by(TokenStepRow.run_id)
            ).all()
            assert sorted(c for _, c in counts) == [steps] * runs
    runlog.dispose()


def test_a_run_log_of_an_older_layout_takes_steps_with_one_distribution(db_url: str) -> None:
    """Run logs written before remote engines have NOT NULL probability columns and no
    `probabilities` column: opening one relaxes and adds them, and keeps every row."""
    from sqlalchemy import create_engine, text

    old = create_engine(db_url)
    key = "SERIAL PRIMARY KEY" if db_url.startswith("postgresql") else "INTEGER PRIMARY KEY"
    with old.begin() as connection:
        connection.execute(text(
            f"CREATE TABLE runs (id {key}, owner VARCHAR(80), task VARCHAR(64) NOT NULL, model VARCHAR(200) NOT NULL,"
            " status VARCHAR(16) NOT NULL, created_at TIMESTAMP, input JSON, params JSON)"
        ))
        connection.execute(text(
            f"CREATE TABLE token_steps (id {key}, run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
            " position INTEGER NOT NULL, token_id INTEGER NOT NULL, text TEXT NOT NULL, prob FLOAT NOT NULL,"
            " raw_prob FLOAT NOT NULL, entropy FLOAT NOT NULL, raw_entropy FLOAT NOT NULL, alternatives JSON NOT NULL)"
        ))
        connection.execute(text("CREATE INDEX ix_token_steps_run_id ON token_steps (run_id)"))
        connection.execute(text("INSERT INTO runs (id, task, model, status) VALUES (100, 'text-generation', 'm', 'ok')"))
        connection.execute(text(
            "INSERT INTO token_steps (id, run_id, position, token_id, text, prob, raw_prob, entropy, raw_entropy, alternatives)"
            " VALUES (100, 100, 0, 7, 'old', 0.5, 0.4, 1.0, 1.2, '[]')"
        ))
    old.dispose()
    runlog = RunLog(db_url)
    remote = TokenStep(position=0, token_id=3, text="new", prob=None, raw_prob=0.25, entropy=None, raw_entropy=None,
                       alternatives=(), elapsed_s=0.1, probabilities="raw")
    with runlog.session() as session, session.begin():
        run_id = add_run(session, RunRecord(task="text-generation", model="r", status=RunStatus.OK, input={}, params={},
                                            steps=(remote,)))
    with runlog.session() as session:
        assert session.get(Run, run_id).steps[0].to_step() == remote
        kept = session.get(Run, 100).steps[0].to_step()
        assert (kept.text, kept.prob, kept.raw_prob, kept.probabilities) == ("old", 0.5, 0.4, "local")
    runlog.dispose()


def test_sixteen_runs_written_at_once_beside_busy_threads_all_land(tmp_path: Path) -> None:
    """Sixteen runs start, stream and end at once while four threads keep the interpreter busy (a
    busy app): every write lands. (Written a row per database call and left to SQLite's busy
    handler, such writes waited for the interpreter lock at every row while holding SQLite's, and
    others failed with "database is locked" after SQLite's 5 s.)"""
    import threading

    runlog = RunLog(f"sqlite:///{tmp_path / 'busy.sqlite'}")
    steps = tuple(step(i) for i in range(64))
    errors: list[BaseException] = []
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            sum(range(1000))

    def run() -> None:
        try:
            recorder = RunRecorder(runlog, RunRecord(task="text-generation", model="m", status=RunStatus.RUNNING, input={}, params={}))
            for s in steps[:40]:
                recorder.add(s)
            recorder.flush()
            recorder.end(RunStatus.OK, steps, output="x")
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            errors.append(exc)

    spinners = [threading.Thread(target=busy) for _ in range(4)]
    writers = [threading.Thread(target=run) for _ in range(16)]
    for thread in spinners + writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=60)
    stop.set()
    for thread in spinners:
        thread.join()
    assert errors == []
    with runlog.session() as session:
        counts = session.execute(select(TokenStepRow.run_id, func.count()).group_by(TokenStepRow.run_id)).all()
        assert sorted(n for _, n in counts) == [64] * 16
        assert session.scalar(select(func.count()).where(Run.status == "ok")) == 16
    runlog.dispose()


def test_writes_handed_to_the_writer_land_in_order_and_one_that_fails_is_lost_alone(tmp_path: Path, caplog) -> None:
    """RunLog.write_behind: the caller does not wait; a session opened to read afterwards sees
    every write handed over before it; in a group that fails, only the failing write is lost
    (logged), the others land."""
    import logging
    import threading

    runlog = RunLog(f"sqlite:///{tmp_path / 'behind.sqlite'}")
    recorders = [RunRecorder(runlog, RunRecord(task="text-generation", model="m", status=RunStatus.RUNNING, input={}, params={}))
                 for _ in range(3)]
    release = threading.Event()
    runlog.write_behind(lambda session: release.wait(10), "a slow write")  # holds the writer: the next ones form one group
    for i, recorder in enumerate(recorders):
        for p in range(5):
            recorder.add(step(p))
        if i == 1:
            runlog.write_behind(lambda session: end_a_run_that_does_not_exist(session), "the end of a run that does not exist")
        recorder.end(RunStatus.OK, output=f"run {i}")
    assert all(recorder.ended for recorder in recorders)  # (the callers did not wait for the database)
    with caplog.at_level(logging.ERROR, logger="backend.runlog"):
        release.set()
        with runlog.session() as session:  # waits for the writes handed over before it
            runs = session.scalars(select(Run).order_by(Run.id)).all()
            assert [(r.status, r.output, [s.position for s in r.steps]) for r in runs] == [
                ("ok", f"run {i}", [0, 1, 2, 3, 4]) for i in range(3)
            ]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "run log: the end of a run that does not exist was not written"
    ]
    runlog.dispose()


def end_a_run_that_does_not_exist(session) -> None:
    from backend.runlog import end_run

    end_run(session, 10_000, RunStatus.OK)  # no such run: KeyError


def test_the_writer_lets_writes_gather_but_a_reader_does_not_wait_for_that(tmp_path: Path) -> None:
    """While writes keep coming the writer waits (here: a minute); a reader (settle, session)
    makes it write at once."""
    runlog = RunLog(f"sqlite:///{tmp_path / 'gather.sqlite'}")
    runlog.WRITE_QUIET_SECONDS = runlog.WRITE_DELAY_SECONDS = 60.0
    recorder = RunRecorder(runlog, RunRecord(task="text-generation", model="m", status=RunStatus.RUNNING, input={}, params={}))
    recorder.add(step(0))
    recorder.end(RunStatus.OK, output="tok")
    with runlog._sessions() as session:  # (a session that does not settle: nothing written yet)
        assert session.get(Run, recorder.run_id).status == "running"
    assert runlog.settle(timeout=10)  # the writer was told to write now, not in a minute
    with runlog.session() as session:
        run = session.get(Run, recorder.run_id)
        assert (run.status, [s.position for s in run.steps]) == ("ok", [0])
    runlog.dispose()


def test_a_run_log_nobody_uses_goes_with_its_connections(tmp_path: Path) -> None:
    """What settles the writer's work at the interpreter's end holds the run log weakly: a run log
    dropped without dispose(), its writer idle, is freed (a test suite or a process that opens many
    keeps no connections open)."""
    import gc
    import weakref

    runlog = RunLog(f"sqlite:///{tmp_path / 'dropped.sqlite'}")
    RunRecorder(runlog, RunRecord(task="text-generation", model="m", status=RunStatus.RUNNING, input={}, params={})).flush()
    gone = weakref.ref(runlog)
    del runlog
    gc.collect()
    assert gone() is None
