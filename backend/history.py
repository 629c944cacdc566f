"""Who owns a run, and reading a run back from the log for its owner.

A run belongs to the client that made it. In the browser that is an anonymous random id the page
keeps in the browser's local storage (a reload keeps it; it never leaves that browser except with
its own requests); for an API client (gradio_client, curl) it is the client's session. Owners are
strings: "browser:<id>" or "session:<session hash>". Only the owner may read a run back, unless
the app runs with PLAYGROUND_SHARED_HISTORY=1 (a private deployment): a public Space never shows
one person's prompts to another.
"""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from backend.errors import ParameterError, RunAccessError
from backend.runlog import Run

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
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ParameterError("run_id", "the id of a logged run (an integer >= 1)", value)
    return value


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
