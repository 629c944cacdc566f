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
from tests.tiny_models import build_tiny_gpt2  # noqa: E402


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def corrupt_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_gpt2_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("corrupt")
    for f in tiny_gpt2_dir.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    return folder


def write_models_yaml(path: Path, tiny: Path, corrupt: Path) -> Path:
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
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture()
def settings(tmp_path: Path, tiny_gpt2_dir: Path, corrupt_model_dir: Path) -> Settings:
    models = write_models_yaml(tmp_path / "models.yaml", tiny_gpt2_dir, corrupt_model_dir)
    return Settings.from_env(
        {
            "PLAYGROUND_DB_URL": f"sqlite:///{tmp_path / 'runs.sqlite'}",
            "PLAYGROUND_MODELS_FILE": str(models),
            "HF_HUB_OFFLINE": "1",
            "PLAYGROUND_DEVICE": "cpu",
        }
    )


@pytest.fixture()
def playground(settings: Settings) -> Playground:
    pg = Playground(settings)
    yield pg
    pg.close()
