"""Who owns a run, and reading a run back from the log for its owner.

A run belongs to the client that made it. In the browser that is an anonymous random id the page
keeps in the browser's local storage (a reload keeps it; it never leaves that browser except with
its own requests); for an API client (gradio_client, curl) it is the client's session. Owners are
strings: "browser:<id>" or "session:<session hash>". Only the owner may read a run back, unless
the app runs with PLAYGROUND_SHARED_HISTORY=1 (a private deployment): a public Space never shows
one person's prompts to another.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Text, cast, false, or_, select
from sqlalchemy.orm import Session

from backend.errors import ParameterError, RunAccessError
from backend.fields import integer
from backend.registry import Task
from backend.runlog import Run, RunStatus
from backend.tasks.encoding import valid_unicode

#: What a browser id looks like (the page makes one with crypto.randomUUID()).
_BROWSER_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: The owner of requests that carry neither a browser id nor a session (never matches a run's).
NOBODY = "nobody"


def owner_of(browser_id: object, session_hash: object) -> str:
    """The owner of a request: its browser's id when it sent a well-formed one, else its session.
    Anything else a client sends as a browser id is ignored (it cannot name another owner)."""
    if isinstance(browser_id, str) and _BROWSER_ID.match(browser_id):
        return f"browser:{browser_id}"
    if isinstance(session_hash, str) and _SESSION_ID.match(session_hash):
        return f"session:{session_hash}"
    return NOBODY


def run_id_value(value: object) -> int:
    """A run id as a person or a client may send it (an int, an integral float, a digit string)."""
    return integer("run_id", value, 1, rule="the id of a logged run (an integer >= 1)")


def owned_run(session: Session, run_id: object, owner: str, *, shared: bool) -> Run:
    """The run `run_id` if `owner` may read it: "run_id must be ..." for an id that is not a
    logged run, "run 12 is not one of yours." for someone else's."""
    rid = run_id_value(run_id)
    run = session.get(Run, rid)
    if run is None:
        raise ParameterError("run_id", "the id of a logged run", rid)
    if not shared and (run.owner is None or owner == NOBODY or run.owner != owner):
        raise RunAccessError(rid)
    return run


# -- the history: listing, reading, exporting ---------------------------------------------------

#: Runs listed at most per query.
MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
#: Longest text search.
MAX_SEARCH_CHARS = 200
EXPORT_FORMATS = ("jsonl", "csv")
#: The columns of a run, as the history lists and exports them (the CSV's header).
RUN_FIELDS = (
    "id", "created_at", "task", "model", "status", "seed", "finish_reason", "prompt_tokens", "new_tokens",
    "ttft_s", "tpot_s", "tokens_per_s", "total_s", "peak_memory_bytes", "memory_kind", "input", "params",
    "output", "error",
)


@dataclass(frozen=True)
class HistoryQuery:
    """Filters of the history; empty means "all"."""

    task: str | None = None  # a task name (text-generation, fill-mask...)
    model: str | None = None  # a model name, exactly
    status: str | None = None  # running, ok, error, cancelled, interrupted
    search: str | None = None  # text in the input or the output (case-insensitive)
    limit: int = DEFAULT_LIMIT

    @classmethod
    def of(
        cls, task: object = None, model: object = None, status: object = None, search: object = None, limit: object = None
    ) -> HistoryQuery:
        """From loosely typed values (a form, an API call); an invalid one names its rule."""

        def optional_text(name: str, value: object, choices: tuple[str, ...] | None = None, longest: int = 200) -> str | None:
            if value is None or (isinstance(value, str) and value.strip() in ("", "all")):
                return None
            if not isinstance(value, str):
                raise ParameterError(name, "text", value)
            value = value.strip()
            if choices is not None and value not in choices:
                raise ParameterError(name, f"empty or one of {', '.join(choices)}", value)
            if len(value) > longest:
                raise ParameterError(name, f"at most {longest} characters", f"{len(value)} characters")
            return valid_unicode(name, value)

        count = DEFAULT_LIMIT if limit is None or limit == "" else integer("limit", limit, 1, MAX_LIMIT)
        return cls(
            task=optional_text("task", task, tuple(t.value for t in Task)),
            model=optional_text("model", model),
            status=optional_text("status", status, tuple(s.value for s in RunStatus)),
            search=optional_text("search", search, longest=MAX_SEARCH_CHARS),
            limit=count,
        )


def _visible(query: Select, owner: str, shared: bool) -> Select:
    if shared:
        return query
    if owner == NOBODY:
        return query.where(false())
    return query.where(Run.owner == owner)


def list_runs(session: Session, owner: str, query: HistoryQuery, *, shared: bool) -> list[Run]:
    """The owner's runs (everyone's when shared) that match, newest first."""
    select_runs = _visible(select(Run), owner, shared).order_by(Run.id.desc()).limit(query.limit)
    if query.task:
        select_runs = select_runs.where(Run.task == query.task)
    if query.model:
        select_runs = select_runs.where(Run.model == query.model)
    if query.status:
        select_runs = select_runs.where(Run.status == query.status)
    if query.search:
        pattern = "%" + query.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        select_runs = select_runs.where(
            or_(cast(Run.input, Text).ilike(pattern, escape="\\"), Run.output.ilike(pattern, escape="\\"))
        )
    return list(session.scalars(select_runs))


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def run_row(run: Run) -> dict[str, Any]:
    """A run's columns as JSON (the history's list, the CSV export)."""
    return {name: _plain(getattr(run, name)) for name in RUN_FIELDS}


def run_json(run: Run) -> dict[str, Any]:
    """A whole run: its columns, its result and its token steps."""
    return {
        **run_row(run),
        "result": run.result,
        "steps": [step.to_step().to_dict() for step in run.steps],
    }


def export_jsonl(runs: Sequence[Run]) -> str:
    """One JSON object per line: each run with its token steps."""
    return "".join(json.dumps(run_json(run), ensure_ascii=False) + "\n" for run in runs)


def export_csv(runs: Sequence[Run]) -> str:
    """One row per run (input, params and result as JSON text)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(RUN_FIELDS)
    for run in runs:
        row = run_row(run)
        writer.writerow(
            [json.dumps(row[n], ensure_ascii=False) if isinstance(row[n], (dict, list)) else row[n] for n in RUN_FIELDS]
        )
    return out.getvalue()
