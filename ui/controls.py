"""Stop buttons: one cancel event per browser session and task, owned by the app."""

from __future__ import annotations

import threading


class RunControls:
    """Maps (session, task) to the cancel event of its running generation. A Stop click sets
    the event; the engine's stopping criterion sees it at the next decoding step."""

    def __init__(self) -> None:
        self._events: dict[tuple[str, str], threading.Event] = {}
        self._lock = threading.Lock()

    def start(self, session: str, task: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            previous = self._events.get((session, task))
            if previous is not None:
                previous.set()  # a new run from the same session replaces the old one
            self._events[(session, task)] = event
        return event

    def stop(self, session: str, task: str) -> bool:
        with self._lock:
            event = self._events.get((session, task))
        if event is None:
            return False
        event.set()
        return True

    def finish(self, session: str, task: str, event: threading.Event) -> None:
        with self._lock:
            if self._events.get((session, task)) is event:
                del self._events[(session, task)]
