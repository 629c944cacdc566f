"""Settings read from the environment, once, into a frozen object (the README lists them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from backend.errors import ParameterError

REPO_ROOT = Path(__file__).resolve().parent.parent


def _int_setting(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ParameterError(name, f"an integer in [{low}, {high}]", raw)
    return value


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    # SQLAlchemy URL of the run log. Default: an SQLite file in <repo>/data/.
    db_url: str
    # models.yaml to read.
    models_file: Path
    # How many models stay loaded at once (least recently used is dropped first).
    max_loaded_models: int
    # "auto" (CUDA when present, else CPU), "cpu" or "cuda".
    device: str
    # HF_HUB_OFFLINE: no downloads; Hub models that are not cached show as unavailable.
    offline: bool
    # PLAYGROUND_SHARED_HISTORY=1: every run is readable by everyone (a private deployment).
    # Default: a run is readable only by the browser or API session that made it.
    shared_history: bool = False
    # PLAYGROUND_MAX_BATCH: at most this many streaming generations of one decoder model decode
    # together (one forward pass per step); 1 = every run alone, one at a time. Range [1, 64].
    max_batch: int = 16
    # PLAYGROUND_TORCH_THREADS: torch's intra-op threads (torch.set_num_threads), set by app.py at
    # start; 0 = torch's own choice (one per core). Default 1: on a shared 2-core machine two
    # OpenMP threads swing tenfold when anything else runs, and were slower even when nothing did
    # (README, "Serving a room").
    torch_threads: int = 1
    # PLAYGROUND_DECODE_PROCESS: 1 (default) = a CPU model's batched decoding runs in a worker
    # process of its own, beside the web server (backend.decode_process); 0 = in a thread of the
    # app's process.
    decode_process: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        default_db = REPO_ROOT / "data" / "playground.sqlite"
        max_loaded_raw = env.get("PLAYGROUND_MAX_LOADED_MODELS", "3")
        try:
            max_loaded = int(max_loaded_raw)
        except ValueError:
            max_loaded = -1
        if max_loaded < 1:
            raise ParameterError("PLAYGROUND_MAX_LOADED_MODELS", "an integer >= 1", max_loaded_raw)
        device = env.get("PLAYGROUND_DEVICE", "auto")
        if device not in {"auto", "cpu", "cuda"}:
            raise ParameterError("PLAYGROUND_DEVICE", "one of auto, cpu, cuda", device)
        return cls(
            db_url=env.get("PLAYGROUND_DB_URL") or f"sqlite:///{default_db}",
            models_file=Path(env.get("PLAYGROUND_MODELS_FILE") or REPO_ROOT / "models.yaml"),
            max_loaded_models=max_loaded,
            device=device,
            offline=_truthy(env.get("HF_HUB_OFFLINE")),
            shared_history=_truthy(env.get("PLAYGROUND_SHARED_HISTORY")),
            max_batch=_int_setting(env, "PLAYGROUND_MAX_BATCH", 16, 1, 64),
            torch_threads=_int_setting(env, "PLAYGROUND_TORCH_THREADS", 1, 0, 256),
            decode_process=bool(_int_setting(env, "PLAYGROUND_DECODE_PROCESS", 1, 0, 1)),
        )
