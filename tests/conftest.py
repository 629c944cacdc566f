"""Shared fixtures: tiny models, a models.yaml that names them, a Playground on a fresh SQLite."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from backend.playground import Playground  # noqa: E402
from backend.settings import Settings  # noqa: E402
from tests.offline import offline_settings, served
from tests.postgres import PostgresServer, postgres_server
from tests.remote_app import remote_app  # noqa: F401 (a fixture: the app beside a real llama.cpp server)
from tests.tiny_models import build_tiny_gpt2  # noqa: E402


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def long_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Room for the 1024-token cap: long enough a stream to press Stop in the middle of."""
    return build_tiny_gpt2(tmp_path_factory.mktemp("long-gpt2"), n_positions=1100)


@pytest.fixture(scope="session")
def corrupt_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_gpt2_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("corrupt")
    for f in tiny_gpt2_dir.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    return folder


def write_models_yaml(path: Path, tiny: Path, corrupt: Path, long: Path | None = None) -> Path:
    extra = (
        f"""
  - name: long-gpt2
    task: text-generation
    family: decoder
    source: {{path: {long}}}
    max_context: 1100
    description: a tiny random GPT-2 with a long context
    trained: false
"""
        if long is not None
        else ""
    )
    path.write_text(
        f"""
models:
  - name: tiny-gpt2
    task: text-generation
    family: decoder
    source: {{path: {tiny}}}
    max_context: 128
    description: a tiny random GPT-2 built by the tests
    trained: false
  - name: corrupt-gpt2
    task: text-generation
    family: decoder
    source: {{path: {corrupt}}}
    max_context: 128
    description: a folder whose weights are not safetensors
  - name: offline-hub-model
    task: text-generation
    family: decoder
    source: {{hub: HuggingFaceTB/SmolLM2-135M-Instruct}}
    max_context: 8192
    description: a Hub model that is not in the cache
"""
        + extra,
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    """A throwaway PostgreSQL 15 server for this test session (tests/postgres.py)."""
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The run log's URL, once on SQLite in the test's folder and once on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.sqlite'}"
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture()
def settings(tmp_path: Path, tiny_gpt2_dir: Path, corrupt_model_dir: Path) -> Settings:
    models = write_models_yaml(tmp_path / "models.yaml", tiny_gpt2_dir, corrupt_model_dir)
    return offline_settings(tmp_path, models)


@pytest.fixture()
def playground(settings: Settings) -> Playground:
    pg = Playground(settings)
    yield pg
    pg.close()


@pytest.fixture(scope="session")
def served_app(tmp_path_factory: pytest.TempPathFactory, tiny_gpt2_dir: Path, corrupt_model_dir: Path, long_gpt2_dir: Path):
    """The real app (build_demo on a Playground) served on a free loopback port."""
    from tests.app_models import task_models_yaml

    folder = tmp_path_factory.mktemp("app")
    models = write_models_yaml(folder / "models.yaml", tiny_gpt2_dir, corrupt_model_dir, long_gpt2_dir)
    with models.open("a", encoding="utf-8") as f:
        f.write(task_models_yaml(folder / "models"))
    settings = offline_settings(folder, models)
    pg = Playground(settings)
    try:
        with served(pg) as url:
            yield url, pg
    finally:
        pg.close()
