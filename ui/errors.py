"""The one adapter that turns backend errors into messages in the browser.

Gradio renders a toast's message as HTML, and messages quote what a person typed, so every
"<" is escaped here: a typed `<b>` shows as text. (Only "<" can open a tag; leaving ">" and "&"
alone keeps the messages that API clients read plain. The backend words its rules without "<".)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import gradio as gr

from backend.errors import PlaygroundError

log = logging.getLogger(__name__)


def error_message(exc: BaseException) -> str:
    if isinstance(exc, PlaygroundError):
        return str(exc)
    return f"Something went wrong ({type(exc).__name__}: {exc}). The run was logged; the app keeps serving."


def _escape(message: str) -> str:
    return message.replace("<", "&lt;")


@contextmanager
def user_facing_errors() -> Iterator[None]:
    """Re-raise any failure as gr.Error with an escaped, actionable message. The backend has
    already logged the run; unexpected failures are logged here too."""
    try:
        yield
    except gr.Error:
        raise
    except PlaygroundError as exc:
        log.warning("refused: %s", exc)  # (a failed run is also in the run log)
        raise gr.Error(_escape(error_message(exc)), print_exception=False) from exc
    except Exception as exc:  # unexpected: keep serving, say what happened
        log.exception("handler failed")
        raise gr.Error(_escape(error_message(exc))) from exc
