"""kill -9 of the app while it streams: after a restart on the same database the run is
"interrupted", with the tokens that reached the log, and the database is intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gradio_client import Client
from sqlalchemy import create_engine, text

from bench.app_process import free_port, start_app
from tests.conftest import write_models_yaml


def start(models: Path, db: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    return start_app(port, db, threads=1, env={"PLAYGROUND_MODELS_FILE": str(models), "HF_HUB_OFFLINE": "1"}), port


def latest(db: Path) -> tuple[int, str, int]:
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as connection:
        row = connection.execute(text("SELECT id, status FROM runs ORDER BY id DESC LIMIT 1")).first()
        steps = connection.execute(text("SELECT count(*) FROM token_steps WHERE run_id = :id"), {"id": row[0]}).scalar() if row else 0
    engine.dispose()
    return (row[0], row[1], steps) if row else (0, "", 0)


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 is POSIX")
def test_a_run_survives_kill_9_as_interrupted_with_its_tokens(tmp_path: Path, tiny_gpt2_dir: Path, corrupt_model_dir: Path, long_gpt2_dir: Path) -> None:
    models = write_models_yaml(tmp_path / "models.yaml", tiny_gpt2_dir, corrupt_model_dir, long_gpt2_dir)
    db = tmp_path / "runs.sqlite"
    app, port = start(models, db)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        client.submit(model="long-gpt2", prompt="Return the", max_new_tokens=1024, min_new_tokens=1024, api_name="/text_generation")
        deadline = time.time() + 60
        run_id, status, written = 0, "", 0
        while time.time() < deadline:
            run_id, status, written = latest(db)
            if status == "running" and written >= 8:
                break
            time.sleep(0.05)
        assert status == "running" and written >= 8, (status, written)
        os.kill(app.pid, signal.SIGKILL)
        app.wait(timeout=30)
    finally:
        if app.poll() is None:
            app.kill()
    _, after_kill_status, after_kill_steps = latest(db)
    assert after_kill_status == "running" and written <= after_kill_steps < 1024  # what the crash left
    restarted, _ = start(models, db)
    try:
        engine = create_engine(f"sqlite:///{db}")
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            row = connection.execute(text("SELECT status, finish_reason, new_tokens, output, seed FROM runs WHERE id = :id"), {"id": run_id}).first()
            texts = [r[0] for r in connection.execute(text("SELECT text FROM token_steps WHERE run_id = :id ORDER BY position"), {"id": run_id})]
        engine.dispose()
        assert row[0] == "interrupted" and row[1] == "interrupted"
        assert row[2] == after_kill_steps == len(texts) and row[3] == "".join(texts) and row[4] is not None
    finally:
        restarted.terminate()
        restarted.wait(timeout=30)


def test_sigterm_right_after_a_run_keeps_the_whole_run(tmp_path: Path, tiny_gpt2_dir: Path, corrupt_model_dir: Path, long_gpt2_dir: Path) -> None:
    """A run's end is written by the run log's writer thread after its result went out
    (RunLog.write_behind): SIGTERM (docker stop) right after the result still finds it written."""
    models = write_models_yaml(tmp_path / "models.yaml", tiny_gpt2_dir, corrupt_model_dir, long_gpt2_dir)
    db = tmp_path / "runs.sqlite"
    app, port = start(models, db)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        result = client.predict(model="tiny-gpt2", prompt="Return the", max_new_tokens=24, min_new_tokens=24, api_name="/text_generation")
        app.terminate()
        assert app.wait(timeout=30) == -signal.SIGTERM
    finally:
        if app.poll() is None:
            app.kill()
    run_id, status, steps = latest(db)
    assert (run_id, status, steps) == (result[-1]["run_id"], "ok", 24)
