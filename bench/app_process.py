"""`python app.py` in a subprocess, as the README starts it, on a free loopback port: what the
benchmarks and the crash test drive from outside."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int, db: Path, threads: int | None = None, env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """The app on `port` with its run log at `db`; `threads`: OMP_NUM_THREADS, or None to leave
    torch's own choice (as the README's command does); `env`: more variables. Returns once the
    port answers (at most 120 s)."""
    variables = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "PLAYGROUND_DB_URL": f"sqlite:///{db}",
        "GRADIO_ANALYTICS_ENABLED": "False",
        **(env or {}),
    }
    if threads is not None:
        variables["OMP_NUM_THREADS"] = str(threads)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py")], env=variables, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"the app exited at start (code {process.returncode})") from None
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("the app did not start within 120 s")


def steady_state(client, model: str, timeout: float = 60.0) -> str:
    """Wait until `model`'s streaming runs decode where the app serves them in steady state (on a
    CPU, its decoding process, which starts with the model's first run: backend.decode_process;
    with PLAYGROUND_DECODE_PROCESS=0, the app's process); where that is, from /serving_stats. Call
    it after a first run of the model."""
    deadline = time.perf_counter() + timeout
    where = ""
    while time.perf_counter() < deadline:
        stats = client.predict(api_name="/serving_stats")[-1]
        where = next((m["decoded_in"] for m in stats["models"] if m["model"] == model), "")
        if where and "starts" not in where:
            break
        time.sleep(0.5)
    return where
