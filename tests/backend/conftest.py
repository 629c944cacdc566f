"""A playground whose registry holds one model of each architecture the inspector knows: the
embedded stdlib GPT-2 (real weights, peaked distributions) and tiny random GPT-2, LLaMA, BART,
Marian and T5 twins, all through the real loading code. The inspector's, the comparison's, the
beam tree's and the KV cache's tests run on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.playground import Playground
from backend.settings import REPO_ROOT
from tests.inspect_runs import MODELS
from tests.offline import offline_settings
from tests.tiny_models import build_tiny_gpt2, build_tiny_llama
from tests.tiny_seq2seq import build_tiny_seq2seq


@pytest.fixture(scope="session")
def inspect_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inspect-models")
    return {
        "stdlib-gpt2": REPO_ROOT / "models" / "stdlib-gpt2",
        "tiny-gpt2": build_tiny_gpt2(root / "gpt2"),
        "tiny-llama": build_tiny_llama(root / "llama"),
        "tiny-bart": build_tiny_seq2seq(root / "bart", "bart"),
        "tiny-marian": build_tiny_seq2seq(root / "marian", "marian"),
        "tiny-t5": build_tiny_seq2seq(root / "t5", "t5"),
    }


@pytest.fixture(scope="module")
def inspect_playground(tmp_path_factory: pytest.TempPathFactory, inspect_model_dirs: dict[str, Path]) -> Playground:
    folder = tmp_path_factory.mktemp("inspect")
    entries = "".join(
        f"""
  - name: {name}
    task: {task}
    family: {family}
    source: {{path: {inspect_model_dirs[name]}}}
    max_context: {context}
    description: {name} for the inspector tests
"""
        for name, (task, family, context) in MODELS.items()
    )
    (folder / "models.yaml").write_text("models:" + entries, encoding="utf-8")
    pg = Playground(
        offline_settings(folder, folder / "models.yaml", PLAYGROUND_MAX_LOADED_MODELS="8")
    )
    yield pg
    pg.close()
