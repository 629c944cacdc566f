"""Settings of a test's own playground: its models.yaml, an SQLite run log in its folder, offline, CPU."""

from __future__ import annotations

from pathlib import Path

from backend.settings import Settings


def offline_settings(folder: Path, models_file: Path, **env: str) -> Settings:
    """`env`: more environment variables (PLAYGROUND_MAX_LOADED_MODELS, PLAYGROUND_SHARED_HISTORY...)."""
    return Settings.from_env(
        {
            "PLAYGROUND_DB_URL": f"sqlite:///{folder / 'runs.sqlite'}",
            "PLAYGROUND_MODELS_FILE": str(models_file),
            "HF_HUB_OFFLINE": "1",
            "PLAYGROUND_DEVICE": "cpu",
            **env,
        }
    )
