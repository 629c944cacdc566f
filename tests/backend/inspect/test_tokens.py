"""The tokenizer view against each tokenizer's own output, for every model of the real registry
that is available offline; only the tokenizer is loaded."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from backend.errors import InputError, UnknownModelError
from backend.inspect.service import Inspector
from backend.playground import Playground
from backend.settings import REPO_ROOT
from tests.offline import offline_settings

TEXT = "Return the <b>number</b> of items: naïve café, 3.14 — done.\nNext line [MASK] <mask>"


@pytest.fixture(scope="module")
def real_playground(tmp_path_factory: pytest.TempPathFactory) -> Playground:
    folder = tmp_path_factory.mktemp("tokens")
    pg = Playground(
        offline_settings(folder, REPO_ROOT / "models.yaml")
    )
    yield pg
    pg.close()


def offline_models(pg: Playground) -> list[str]:
    return [name for name, spec in pg.registry.specs.items() if pg.registry.availability(spec).available]


def test_every_offline_registry_model_tokenizes_as_its_tokenizer_does(real_playground: Playground) -> None:
    pg = real_playground
    names = offline_models(pg)
    assert len(names) >= 9  # every tab has an embedded (or packaged) model
    for name in names:
        spec = pg.registry.specs[name]
        found = pg.inspector.tokenize(name, TEXT)
        reference = AutoTokenizer.from_pretrained(spec.load_id, local_files_only=True)
        encoded = reference(TEXT, return_offsets_mapping=True, return_special_tokens_mask=True)
        assert [t.token_id for t in found.tokens] == encoded["input_ids"], name
        assert [t.text for t in found.tokens] == reference.convert_ids_to_tokens(encoded["input_ids"]), name
        special = [bool(m) or i in reference.all_special_ids for m, i in zip(encoded["special_tokens_mask"], encoded["input_ids"])]
        assert [t.special for t in found.tokens] == special, name
        for token, (start, end) in zip(found.tokens, encoded["offset_mapping"]):
            assert (token.start, token.end) == ((start, end) if end > start else (None, None)), name
        assert found.count == len(encoded["input_ids"]) and found.max_context == spec.max_context
        added = sum(1 for m in encoded["special_tokens_mask"] if m)
        assert found.chars_per_token == pytest.approx(len(TEXT) / (len(encoded["input_ids"]) - added))
        assert not pg.registry.is_loaded(name)  # the weights were never read


def test_tokenize_refuses_what_it_cannot_read(real_playground: Playground) -> None:
    inspector: Inspector = real_playground.inspector
    with pytest.raises(UnknownModelError, match="model must be one of"):
        inspector.tokenize("no-such-model", "x")
    with pytest.raises(InputError, match="text must be a string, got NoneType."):
        inspector.tokenize("stdlib-gpt2 (embedded)", None)
    with pytest.raises(InputError, match="text must be at most 100000 characters, got 100001."):
        inspector.tokenize("stdlib-gpt2 (embedded)", "x" * 100_001)
    long = inspector.tokenize("stdlib-gpt2 (embedded)", "word " * 600)
    assert long.count > 512 and any("reads at most 512" in note for note in long.notes)
