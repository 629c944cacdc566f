"""Files handed to a person hold what they typed: none is left behind."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from gradio_client import Client

from ui.downloads import DELETE_CACHE, MAX_AGE_SECONDS, Downloads


def test_files_are_swept_when_old_and_all_go_at_close() -> None:
    downloads = Downloads()
    first = Path(downloads.write("a.csv", "secret,1\n"))
    assert first.read_text(encoding="utf-8") == "secret,1\n" and first.name == "a.csv"
    old = time.time() - MAX_AGE_SECONDS - 1
    os.utime(first.parent, (old, old))
    second = Path(downloads.write("a.csv", "other\n"))  # a new file sweeps the old ones
    assert not first.exists() and second.exists() and downloads.files() == [second]
    downloads.close()
    assert not downloads.folder.exists()


def test_gradio_deletes_its_copies_on_the_same_schedule() -> None:
    from backend.playground import Playground
    from backend.settings import Settings
    from ui.interface import build_demo

    with tempfile.TemporaryDirectory() as folder:
        pg = Playground(Settings.from_env({"PLAYGROUND_DB_URL": f"sqlite:///{folder}/r.sqlite", "HF_HUB_OFFLINE": "1"}))
        assert build_demo(pg).delete_cache == DELETE_CACHE == (MAX_AGE_SECONDS, MAX_AGE_SECONDS)
        pg.close()


def test_feature_extraction_leaves_no_temporary_csv_behind(served_app) -> None:
    url, _ = served_app
    temp = Path(tempfile.gettempdir())
    before = set(temp.glob("embeddings-*.csv"))
    out = Client(url, verbose=False).predict(model="minilm", sentences="A cat.\nA dog.", pooling="mean", api_name="/feature_extraction")
    assert Path(out[3]).read_text(encoding="utf-8").startswith("sentence,d0,")
    assert set(temp.glob("embeddings-*.csv")) == before  # the former code left one per call here
