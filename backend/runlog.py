"""The run log: every run (finished, failed or stopped) written through SQLAlchemy 2.0.

Tables: `runs` (one row per run) and `token_steps` (the per-token evidence of generation runs,
keyed by run_id). The caller keeps its sessions short; one that writes is opened with `writing()`:

    with runlog.writing() as session:
        run_id = add_run(session, record)

A streaming run's later writes (its token steps, how it ended) are handed to the run log's writer
thread instead (`RunLog.write_behind`), which commits all the writes waiting in one transaction;
a session opened to read (`RunLog.session()`) first waits for the writes handed over before it.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import functools
import json
import logging
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON, BigInteger, DateTime, Float, ForeignKey, Integer, String, Text, bindparam, create_engine, event, inspect, select, update,
)
from sqlalchemy import text as sql_text
from sqlalchemy.engine import Engine
from sqlalchemy.engine.url import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.types import TypeDecorator

from backend.capture import TokenStep

log = logging.getLogger(__name__)


class RunStatus(enum.Enum):
    RUNNING = "running"  # started, not ended yet (its token steps arrive in small batches)
    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"  # stopped by the person (Stop, a cancelled API job, a closed browser)
    INTERRUPTED = "interrupted"  # the app ended while it ran (found "running" at the next start)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _without_nul(value: Any, dialect: Any) -> Any:
    """PostgreSQL refuses NUL in text: there it becomes "\u2400" (the visible symbol for NUL)."""
    if isinstance(value, str) and dialect.name == "postgresql" and "\x00" in value:
        return value.replace("\x00", "\u2400")
    return value


class LogText(TypeDecorator):
    """Text as a person or a model wrote it. PostgreSQL refuses the NUL character in text: there
    it is stored as "␀" (the visible symbol for NUL); SQLite keeps it."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return _without_nul(value, dialect)


class LogString(TypeDecorator):
    """A short string column; what does not fit is cut (PostgreSQL enforces the length, SQLite
    does not: a 300-character model name typed into the API must not fail the logging of its
    error), and NUL is stored as on LogText."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return _without_nul(value[: self.impl.length] if isinstance(value, str) else value, dialect)


class Base(DeclarativeBase):
    pass


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow, index=True)
    # who made the run: "browser:<random id kept in the browser>" or "session:<API client session>"
    # (backend.history decides who may read it); None for runs logged before owners were recorded
    owner: Mapped[str | None] = mapped_column(LogString(80), index=True)
    task: Mapped[str] = mapped_column(LogString(64), index=True)
    model: Mapped[str] = mapped_column(LogString(200))
    status: Mapped[str] = mapped_column(LogString(16), index=True)
    input: Mapped[dict[str, Any]] = mapped_column(JSON)  # what the person typed, by field name
    params: Mapped[dict[str, Any]] = mapped_column(JSON)  # decoding or task parameters
    seed: Mapped[int | None] = mapped_column(BigInteger)
    output: Mapped[str | None] = mapped_column(LogText)
    error: Mapped[str | None] = mapped_column(LogText)
    finish_reason: Mapped[str | None] = mapped_column(LogString(32))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # task-specific extras (beams, labels)
    # metrics
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    new_tokens: Mapped[int | None] = mapped_column(Integer)
    ttft_s: Mapped[float | None] = mapped_column(Float)
    tpot_s: Mapped[float | None] = mapped_column(Float)
    tokens_per_s: Mapped[float | None] = mapped_column(Float)
    total_s: Mapped[float | None] = mapped_column(Float)
    peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    memory_kind: Mapped[str | None] = mapped_column(LogString(32))

    steps: Mapped[list[TokenStepRow]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="TokenStepRow.position"
    )


#: The columns of a token step that TokenStep.to_dict names too.
_STEP_FIELDS = (
    "position", "token_id", "text", "prob", "raw_prob", "entropy", "raw_entropy", "alternatives", "elapsed_s", "probabilities",
)


class TokenStepRow(Base):
    __tablename__ = "token_steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    token_id: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(LogText)
    # (empty where a remote engine does not report that distribution: see `probabilities`)
    prob: Mapped[float | None] = mapped_column(Float)  # under the distribution sampled from
    raw_prob: Mapped[float | None] = mapped_column(Float)  # under softmax(raw logits)
    entropy: Mapped[float | None] = mapped_column(Float)  # bits, sampled distribution
    raw_entropy: Mapped[float | None] = mapped_column(Float)  # bits, raw distribution
    alternatives: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    elapsed_s: Mapped[float | None] = mapped_column(Float)  # seconds from the run's start to this token
    # local (both measured here), raw or processed (what a remote engine reported), none; empty = local
    probabilities: Mapped[str | None] = mapped_column(LogString(16))

    def to_step(self) -> TokenStep:
        """The step as the engine streamed it (for views drawn again from the log)."""
        return TokenStep.from_dict({name: getattr(self, name) for name in _STEP_FIELDS})

    run: Mapped[Run] = relationship(back_populates="steps")


@dataclass(frozen=True)
class RunRecord:
    """Everything a run leaves behind; built by the service, written by `add_run`."""

    task: str
    model: str
    status: RunStatus
    input: dict[str, Any]
    params: dict[str, Any]
    owner: str | None = None
    seed: int | None = None
    output: str | None = None
    error: str | None = None
    finish_reason: str | None = None
    result: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    steps: Sequence[TokenStep] = ()


_METRIC_COLUMNS = (
    "prompt_tokens",
    "new_tokens",
    "ttft_s",
    "tpot_s",
    "tokens_per_s",
    "total_s",
    "peak_memory_bytes",
    "memory_kind",
)


def _json_safe(value: Any) -> Any:
    """What a person sent, storable as JSON everywhere: NaN and infinities become text (PostgreSQL's
    JSON refuses them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def add_run(session: Session, record: RunRecord) -> int:
    """Insert the run and its token steps; returns the run id (flushed, not committed)."""
    run = Run(
        owner=record.owner,
        task=record.task,
        model=record.model,
        status=record.status.value,
        input=_json_safe(record.input),
        params=_json_safe(record.params),
        seed=record.seed,
        output=record.output,
        error=record.error,
        finish_reason=record.finish_reason,
        result=record.result,
        **{k: record.metrics.get(k) for k in _METRIC_COLUMNS},
    )
    session.add(run)
    session.flush()
    add_steps(session, run.id, record.steps)
    return run.id


#: Token steps go in statements of at most this many rows (add_steps), a power of two.
STEPS_PER_INSERT = 64


def add_steps(session: Session, run_id: int, steps: Sequence[TokenStep]) -> None:
    """Insert token steps of a run (not committed), many rows to a statement: an executemany
    makes a database call per row, and the sqlite3 and psycopg drivers let go of the interpreter
    lock around each. With sixteen runs streaming in one process, each of those calls waited for
    the lock again (up to 5 ms, the switch interval), and the last rows of a run took up to 190 ms
    to write while the others waited on SQLite's lock. The statements have 1, 2, 4 ... 64 rows
    (40 steps: 32 + 8), so that only seven are ever compiled."""
    first = 0
    while first < len(steps):
        rows = min(STEPS_PER_INSERT, 1 << ((len(steps) - first).bit_length() - 1))
        values: dict[str, Any] = {}
        for i, s in enumerate(steps[first : first + rows]):
            values[f"run_id_{i}"] = run_id
            values.update({f"{name}_{i}": getattr(s, name) for name in _STEP_FIELDS})
            values[f"alternatives_{i}"] = [a.to_dict() for a in s.alternatives]  # (the JSON column)
        session.execute(_insert_steps(rows), values)
        first += rows


@functools.cache
def _insert_steps(rows: int) -> TextClause:
    """INSERT INTO token_steps ... VALUES (...), (...): one statement for `rows` steps, its
    parameters typed as the table's columns (JSON, NUL-safe text)."""
    columns = ("run_id", *_STEP_FIELDS)
    table = TokenStepRow.__table__
    rows_sql = ", ".join("(" + ", ".join(f":{column}_{i}" for column in columns) + ")" for i in range(rows))
    statement = sql_text(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES {rows_sql}")
    return statement.bindparams(*(bindparam(f"{column}_{i}", type_=table.c[column].type) for i in range(rows) for column in columns))


def end_run(
    session: Session,
    run_id: int,
    status: RunStatus,
    *,
    metrics: dict[str, Any] | None = None,
    **fields: Any,
) -> None:
    """Record how a started run ended: its status, and any of output, error, finish_reason,
    result, seed, params and the metrics (not committed). One UPDATE, without reading the run
    first (see add_steps for why the number of database calls matters)."""
    values = {"status": status.value, **fields}
    values.update({name: value for name, value in (metrics or {}).items() if name in _METRIC_COLUMNS})
    done = session.execute(
        update(Run).where(Run.id == run_id).values(**values).execution_options(synchronize_session=False)
    )
    if done.rowcount == 0:
        raise KeyError(run_id)


def interrupt_unfinished(session: Session) -> list[int]:
    """Runs left "running" by an app that ended (a crash, kill -9, a restart) become
    "interrupted", with the tokens that reached the log as their output (not committed)."""
    ended = list(session.scalars(select(Run).where(Run.status == RunStatus.RUNNING.value)))
    for run in ended:
        run.status = RunStatus.INTERRUPTED.value
        run.finish_reason = RunStatus.INTERRUPTED.value
        run.output = "".join(step.text for step in run.steps)
        run.new_tokens = len(run.steps)
    return [run.id for run in ended]


class RunRecorder:
    """One run's rows, written as it goes: the run when it starts (status "running"), its token
    steps in small batches while it streams, and how it ended. A crash loses at most the steps
    of the last FLUSH_SECONDS (or FLUSH_STEPS steps); the next start marks the run "interrupted".
    Used by the thread that consumes the stream, never by the generation thread."""

    #: Steps are written at least this often while a run streams...
    FLUSH_SECONDS = 0.5
    #: ...and whenever this many are waiting.
    FLUSH_STEPS = 64

    def __init__(self, runlog: RunLog, record: RunRecord) -> None:
        self.runlog = runlog
        with runlog.writing() as session:
            self.run_id = add_run(session, replace(record, status=RunStatus.RUNNING, steps=()))
        self._waiting: list[TokenStep] = []
        self._written = 0
        self._last_flush = time.perf_counter()
        self.ended = False

    def add(self, step: TokenStep) -> None:
        self._waiting.append(step)
        if len(self._waiting) >= self.FLUSH_STEPS or time.perf_counter() - self._last_flush >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Hand the waiting steps to the run log's writer (RunLog.write_behind)."""
        if self._waiting:
            run_id, waiting = self.run_id, self._waiting
            self.runlog.write_behind(lambda session: add_steps(session, run_id, waiting), f"steps of run {run_id}")
            self._written += len(self._waiting)
            self._waiting = []
        self._last_flush = time.perf_counter()

    def end(self, status: RunStatus, steps: Sequence[TokenStep] | None = None, **fields: Any) -> int:
        """Hand the steps not written yet and how the run ended to the run log's writer
        (RunLog.write_behind): the run's result goes out without waiting for the database.
        `steps`: all of the run's steps when the caller has them (a beam search streams none);
        else those add() got."""
        run_id = self.run_id
        rest = self._waiting if steps is None else list(steps)[self._written :]

        def write(session: Session) -> None:
            add_steps(session, run_id, rest)
            end_run(session, run_id, status, **fields)

        self.runlog.write_behind(write, f"end of run {run_id}")
        self._written += len(rest)
        self._waiting = []
        self.ended = True
        return run_id


def recent_runs(session: Session, limit: int = 50, task: str | None = None) -> list[Run]:
    query = select(Run).order_by(Run.id.desc()).limit(limit)
    if task is not None:
        query = query.where(Run.task == task)
    return list(session.scalars(query))


class RunLog:
    """The database behind the run log: engine, schema, sessions, and the writer thread that
    commits the writes handed to it (write_behind) in groups."""

    #: The writer thread ends after this many idle seconds (the next write starts it again).
    WRITER_IDLE_SECONDS = 30.0
    #: The writer lets writes gather until none came for this long...
    WRITE_QUIET_SECONDS = 0.05
    #: ...or the oldest has waited this long (or a reader waits for them: settle).
    WRITE_DELAY_SECONDS = 1.0

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        backend = parsed.get_backend_name()
        if backend == "postgresql":
            # several app processes share one server (README "Scaling out"): a connection pool each
            self.engine: Engine = create_engine(url, json_serializer=_json_dumps, pool_pre_ping=True)
        else:
            self.engine = create_engine(url, json_serializer=_json_dumps)
        if backend == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        with self.engine.begin() as connection:
            if backend == "postgresql":  # two processes starting at once: one creates, the other waits
                connection.execute(sql_text("SELECT pg_advisory_xact_lock(7860)"))
            Base.metadata.create_all(connection)
            _add_missing_columns(connection)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite writes one transaction at a time, and a writer that finds the database locked
        # sleeps 1, 2, 5, 10 ... up to 100 ms between tries (its busy handler): sixteen runs that
        # ended together waited up to 180 ms each to write their last rows, while the database was
        # mostly free. This process's writers take turns on a lock instead (another process's
        # still meet the busy handler). PostgreSQL locks rows, not the database: no lock there.
        self._write_turns = threading.Lock() if backend == "sqlite" else contextlib.nullcontext()
        # the writer's queue: (number, write, what it writes); `_handed` writes were handed over,
        # the first `_settled` of them are committed (or failed and logged)
        self._behind = threading.Condition()
        self._queue: deque[tuple[int, Callable[[Session], None], str]] = deque()
        self._handed = 0
        self._settled = 0
        self._handed_at = 0.0  # when the last write was handed over
        self._waiting_since = 0.0  # when the oldest write in the queue was
        self._readers = 0  # threads in settle(): the writer writes at once
        self._writer: threading.Thread | None = None
        # the writer is a daemon: what it holds is written before the interpreter ends (a weak
        # reference: a run log nobody uses any more still goes, with its connections)
        self._at_exit = functools.partial(_settle_at_exit, weakref.ref(self))
        atexit.register(self._at_exit)

    def session(self) -> Session:
        """A session to read in, once the writes handed to the writer before now are settled (a
        run's history shows its end as soon as its result went out)."""
        self.settle()
        return self._sessions()

    @contextlib.contextmanager
    def writing(self) -> Iterator[Session]:
        """A session in a transaction that writes: committed at the end, rolled back on an error."""
        with self._write_turns, self._sessions() as session, session.begin():
            yield session

    def write_behind(self, write: Callable[[Session], None], what: str) -> None:
        """Hand `write` to the writer thread, which commits the writes waiting in one transaction
        (sixteen runs that end together: one commit, not sixteen that take turns; on SQLite, the
        last of them waited up to 160 ms). The caller does not wait. The writer lets writes gather
        while they keep coming (WRITE_QUIET_SECONDS, at most WRITE_DELAY_SECONDS), so that the
        log is written after the results that people wait for, not between them: sixteen runs
        that end together send their results first. Writes run in the order handed over. A group
        that fails is rolled back and its writes run again one by one: the failing write is
        logged ("run log: <what> was not written") and lost alone."""
        with self._behind:
            now = time.perf_counter()
            if not self._queue:
                self._waiting_since = now
            self._handed_at = now
            self._handed += 1
            self._queue.append((self._handed, write, what))
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="run-log-writer", daemon=True)
                self._writer.start()
            self._behind.notify_all()

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until the writes handed over before now are committed (or failed and logged);
        whether they were, within `timeout` seconds."""
        with self._behind:
            target = self._handed
            if self._settled >= target:
                return True
            self._readers += 1
            self._behind.notify_all()
            try:
                return self._behind.wait_for(lambda: self._settled >= target, timeout)
            finally:
                self._readers -= 1

    def _write_loop(self) -> None:
        try:
            self._write_until_idle()
        finally:  # (idle, or ended by anything at all: the next write starts another writer)
            with self._behind:
                self._writer = None

    def _write_until_idle(self) -> None:
        while True:
            with self._behind:
                if not self._queue and not self._behind.wait_for(lambda: bool(self._queue), self.WRITER_IDLE_SECONDS):
                    return
                while not self._readers:
                    now = time.perf_counter()
                    wait = min(self._handed_at + self.WRITE_QUIET_SECONDS, self._waiting_since + self.WRITE_DELAY_SECONDS) - now
                    if wait <= 0:
                        break
                    self._behind.wait(wait)
                group = list(self._queue)
                self._queue.clear()
            try:
                self._write_group(group)
            finally:  # (settled even if the thread dies: a reader never waits forever)
                with self._behind:
                    self._settled = group[-1][0]
                    self._behind.notify_all()

    def _write_group(self, group: list[tuple[int, Callable[[Session], None], str]]) -> None:
        try:
            with self.writing() as session:
                for _, write, _what in group:
                    write(session)
        except Exception:  # noqa: BLE001 - one of them failed: each alone, so that only it is lost
            log.warning("run log: a group of %d writes failed; writing them one by one", len(group), exc_info=True)
            for _, write, what in group:
                try:
                    with self.writing() as session:
                        write(session)
                except Exception:  # noqa: BLE001 - logged; the other writes land
                    log.exception("run log: %s was not written", what)

    def dispose(self) -> None:
        """Write what was handed over, then close the database's connections."""
        self.settle()
        atexit.unregister(self._at_exit)
        self.engine.dispose()


def _settle_at_exit(runlog: weakref.ref[RunLog]) -> None:
    alive = runlog()
    if alive is not None:
        alive.settle()


def _add_missing_columns(connection: Any) -> None:
    """A run log written by an older version lacks the columns added since (create_all only
    creates missing tables): add them, empty. Columns are only ever added, or allowed to be
    empty where they had to be filled (a remote engine reports one distribution of two)."""
    _allow_empty(connection)
    existing = inspect(connection)
    for table in Base.metadata.sorted_tables:
        present = {column["name"] for column in existing.get_columns(table.name)}
        added = {column.name for column in table.columns if column.name not in present}
        for name in sorted(added):
            kind = table.columns[name].type.compile(dialect=connection.dialect)
            connection.execute(sql_text(f'ALTER TABLE {table.name} ADD COLUMN "{name}" {kind}'))
        for index in table.indexes:
            if added & {column.name for column in index.columns}:
                index.create(connection)


def _allow_empty(connection: Any) -> None:
    """Columns that may now be empty but were created NOT NULL: PostgreSQL drops the constraint;
    SQLite, which cannot alter a column, copies the table into one of today's layout."""
    existing = inspect(connection)
    for table in Base.metadata.sorted_tables:
        columns = existing.get_columns(table.name)
        strict = [c["name"] for c in columns if not c["nullable"] and c["name"] in table.columns
                  and table.columns[c["name"]].nullable and not table.columns[c["name"]].primary_key]
        if not strict:
            continue
        if connection.dialect.name == "postgresql":
            for name in strict:
                connection.execute(sql_text(f'ALTER TABLE {table.name} ALTER COLUMN "{name}" DROP NOT NULL'))
            continue
        present = ", ".join(f'"{c["name"]}"' for c in columns if c["name"] in table.columns)
        for index in existing.get_indexes(table.name):
            connection.execute(sql_text(f'DROP INDEX "{index["name"]}"'))
        connection.execute(sql_text(f"ALTER TABLE {table.name} RENAME TO {table.name}_before"))
        table.create(connection)
        connection.execute(sql_text(f"INSERT INTO {table.name} ({present}) SELECT {present} FROM {table.name}_before"))
        connection.execute(sql_text(f"DROP TABLE {table.name}_before"))
        log.info("run log: %s copied into today's layout (%s may be empty now)", table.name, ", ".join(strict))


def _json_dumps(value: Any) -> str:
    """JSON for every database: NaN and infinities become text (PostgreSQL's JSON refuses them)."""
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(_json_safe(value))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
