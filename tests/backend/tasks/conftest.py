"""Fixtures of the encoder-task tests: the tiny twins, built once per session, behind a registry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from backend.registry import LoadedModel, ModelRegistry
from tests.tiny_encoders import encoder_specs


@pytest.fixture(scope="session")
def encoder_registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    root: Path = tmp_path_factory.mktemp("tiny-encoders")
    return ModelRegistry(encoder_specs(root), max_loaded=64, device="cpu", offline=True)


@pytest.fixture(scope="session")
def load(encoder_registry: ModelRegistry) -> Callable[[str], LoadedModel]:
    """load("tiny-bert-sentiment") -> the LoadedModel, through the real loading code."""
    return encoder_registry.get
