"""Files the app hands to a person (the vectors of a feature extraction, a history export). They
hold what people typed, so none is left behind: each is written in one private folder of the app,
deleted once it is MAX_AGE_SECONDS old (swept at every new file) and with the folder when the app
ends. Gradio serves its own copy from its cache, which Blocks(delete_cache=DELETE_CACHE) sweeps on
the same schedule."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
import weakref
from pathlib import Path

#: A file is deleted once it is this old (enough to download it).
MAX_AGE_SECONDS = 600
#: Gradio's (frequency, age) for its cached copies, in seconds.
DELETE_CACHE = (MAX_AGE_SECONDS, MAX_AGE_SECONDS)


class Downloads:
    def __init__(self, max_age_seconds: float = MAX_AGE_SECONDS) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="playground-downloads-"))
        self.max_age_seconds = max_age_seconds
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.folder, True)

    def write(self, name: str, content: str) -> str:
        """A new file `name` (in a folder of its own, so that the name stays what people see)."""
        self.sweep()
        folder = self.folder / uuid.uuid4().hex
        folder.mkdir()
        path = folder / name
        path.write_text(content, encoding="utf-8", newline="")
        return str(path)

    def sweep(self) -> None:
        """Delete the files older than max_age_seconds."""
        cutoff = time.time() - self.max_age_seconds
        for folder in self.folder.iterdir():
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        self._finalizer()

    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.rglob("*") if p.is_file())
