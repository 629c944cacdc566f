"""The encoder tasks through Playground.run_task: the result and the errors land in the run log."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.errors import InputError
from backend.playground import Playground
from backend.registry import ModelRegistry, Task
from backend.runlog import RunStatus, recent_runs
from backend.tasks import timed
from backend.tasks.classification import classify
from backend.tasks.fill_mask import fill_mask
from tests.offline import offline_settings


@pytest.fixture()
def playground(tmp_path: Path, encoder_registry: ModelRegistry) -> Playground:
    entries = []
    for name in ("tiny-bert-sentiment", "tiny-roberta-mlm"):
        spec = encoder_registry.spec(name)
        entries.append(
            f"  - name: {name}\n    task: {spec.task.value}\n    family: encoder\n"
            f"    source: {{path: {spec.path}}}\n    max_context: {spec.max_context}\n"
            f"    description: {spec.description}\n    trained: false\n"
        )
    models = tmp_path / "models.yaml"
    models.write_text("models:\n" + "".join(entries), encoding="utf-8")
    settings = offline_settings(tmp_path, models)
    pg = Playground(settings)
    yield pg
    pg.close()


def test_a_classification_run_is_logged_with_its_json_result(playground: Playground) -> None:
    text = "The movie was wonderful."
    run = playground.run_task(
        Task.TEXT_CLASSIFICATION, "tiny-bert-sentiment", {"text": text}, {},
        lambda loaded: timed(classify, loaded, text),
    )
    with playground.runlog.session() as session:
        row = recent_runs(session, limit=1)[0]
    assert row.id == run.run_id and row.status == RunStatus.OK.value
    assert row.result == run.output.result and row.output == run.output.summary
    assert row.prompt_tokens == run.output.input_tokens > 0 and row.total_s == run.output.seconds > 0
    assert run.to_json()["scores"][0]["label"] == row.result["label"]


def test_an_input_error_is_logged_as_an_error_run(playground: Playground) -> None:
    text = "This man works as a [MASK]."
    with pytest.raises(InputError, match="this model's is <mask>"):
        playground.run_task(
            Task.FILL_MASK, "tiny-roberta-mlm", {"text": text}, {"top_k": 5},
            lambda loaded: timed(fill_mask, loaded, text, top_k=5),
        )
    with playground.runlog.session() as session:
        row = recent_runs(session, limit=1)[0]
    assert row.status == RunStatus.ERROR.value and row.params == {"top_k": 5}
    assert row.error.startswith("text must contain the mask token <mask> exactly once, got none.")
