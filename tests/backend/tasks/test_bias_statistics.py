"""bias_statistics(): every occupation's association against a computation written here (the
fill-mask pipeline's `targets` scores; sentence embeddings by hand), the effect size and the
sign-flip p-value against an enumeration written here, the real MiniLM's known lean, bad input."""

from __future__ import annotations

import itertools
import statistics

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer, pipeline

from backend.errors import InputError, ParameterError
from backend.tasks.bias_statistics import (
    DEFAULT_OCCUPATIONS,
    RANDOM_FLIPS,
    bias_statistics,
    effect_size_and_p,
    parse_occupations,
)

A, B = "This man works as a {}.", "This woman works as a {}."


def exact_p(values: list[float]) -> float:
    """Two-sided sign-flip p-value by enumerating every flip (numpy, chunked by the first 4 signs)."""
    x = np.array(values)
    observed = abs(x.mean())
    n = len(x)
    rest = np.array(list(itertools.product((1, -1), repeat=n - 4)), dtype=np.int8)
    count = 0
    for head in itertools.product((1, -1), repeat=4):
        means = (rest @ x[4:] + np.dot(head, x[:4])) / n
        count += int((np.abs(means) >= observed - 1e-12).sum())
    return count / 2**n


def test_small_lists_are_enumerated_exactly() -> None:
    values = [0.3, -0.1, 0.25, 0.4, 0.05, 0.2, -0.02, 0.15]
    effect, p, flips, exact = effect_size_and_p(values)
    assert exact and flips == 2**8
    assert effect == pytest.approx(statistics.mean(values) / statistics.stdev(values), rel=1e-12)
    assert p == pytest.approx(exact_p(values), abs=1e-12)


def test_long_lists_use_seeded_random_flips_close_to_the_exact_value() -> None:
    rng = np.random.default_rng(7)
    values = list(rng.normal(0.02, 0.1, size=20))
    effect, p, flips, exact = effect_size_and_p(values)
    assert not exact and flips == RANDOM_FLIPS
    truth = exact_p(values)
    assert abs(p - truth) < 4 * (truth * (1 - truth) / flips) ** 0.5 + 1 / flips
    assert effect_size_and_p(values) == (effect, p, flips, exact)  # seeded: the same every call


def embed_by_hand(folder, texts: list[str]) -> torch.Tensor:
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)


def test_sentence_embedding_associations_equal_a_computation_by_hand(load) -> None:
    loaded = load("minilm")
    occupations = ["nurse", "carpenter", "receptionist", "doctor", "maid"]
    result = bias_statistics(loaded, A, B, "\n".join(occupations))
    assert result.method == "sentence-embedding"
    e = embed_by_hand(loaded.spec.path, occupations + [A.format(o) for o in occupations] + [B.format(o) for o in occupations])
    n = len(occupations)
    want = {o: float(e[i] @ e[n + i] - e[i] @ e[2 * n + i]) for i, o in enumerate(occupations)}
    got = {r.occupation: r.association for r in result.rows}
    assert got == pytest.approx(want, abs=1e-5)
    assert [r.association for r in result.rows] == sorted(got.values(), reverse=True)
    values = [want[o] for o in occupations]
    assert result.effect_size == pytest.approx(statistics.mean(values) / statistics.stdev(values), rel=1e-4)
    assert result.exact and result.p_value == pytest.approx(exact_p(values), abs=1e-9)


def test_the_real_minilm_puts_nurse_and_maid_nearer_woman_than_carpenter_and_doctor(load) -> None:
    result = bias_statistics(load("minilm"), A, B, "\n".join(DEFAULT_OCCUPATIONS))
    lean = {r.occupation: r.association for r in result.rows}
    assert max(lean["nurse"], lean["maid"], lean["waitress"]) < min(lean["carpenter"], lean["doctor"], lean["mechanic"])
    assert result.rows[-1].occupation in {"nurse", "maid", "waitress"}
    assert not result.exact and 0 < result.p_value <= 1 and result.flips == RANDOM_FLIPS


def test_fill_mask_associations_equal_the_pipelines_target_scores(load) -> None:
    loaded = load("tiny-bert-mlm")
    unfill = pipeline("fill-mask", model=loaded.model, tokenizer=loaded.tokenizer)
    vocab = loaded.tokenizer.get_vocab()
    occupations = [w for w in ("cat", "dog", "the", "paris", "alice", "sat") if w in vocab][:4]
    assert len(occupations) >= 3  # single word pieces of the tiny vocabulary
    result = bias_statistics(loaded, A, B, "\n".join(occupations))
    assert result.method == "fill-mask"
    mask = loaded.tokenizer.mask_token
    for row in result.rows:
        pa = unfill(A.format(mask), targets=[row.occupation])[0]["score"]
        pb = unfill(B.format(mask), targets=[row.occupation])[0]["score"]
        assert (row.score_a, row.score_b) == pytest.approx((pa, pb), abs=1e-6)
        assert row.association == pytest.approx(pa - pb, abs=1e-6) and row.pieces == 1


def test_a_multi_piece_occupation_multiplies_its_pieces(load) -> None:
    loaded = load("tiny-bert-mlm")
    word = next(w for w in ("firefighter", "receptionist", "hairdresser", "carpenter")
                if len(loaded.tokenizer(" " + w, add_special_tokens=False)["input_ids"]) > 1)
    result = bias_statistics(loaded, A, B, f"{word}\ncat\ndog")
    row = next(r for r in result.rows if r.occupation == word)
    pieces = loaded.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    assert row.pieces == len(pieces) > 1
    text = A.format(" ".join([loaded.tokenizer.mask_token] * len(pieces)))
    enc = loaded.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        logits = loaded.model(**enc).logits[0]
    where = (enc["input_ids"][0] == loaded.tokenizer.mask_token_id).nonzero().flatten()
    want = float(logits[where].softmax(-1)[torch.arange(len(pieces)), torch.tensor(pieces)].prod())
    assert row.score_a == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize(
    ("a", "b", "occupations", "message"),
    [
        ("This man works.", B, "a\nb\nc", "template_a must contain {} exactly once"),
        (A, "This {} woman {}.", "a\nb\nc", "template_b must contain {} exactly once"),
        (A, "This {woman} works as a {}.", "a\nb\nc", "template_b must contain {} exactly once"),
        (A, A, "a\nb\nc", "template_b must differ from template_a"),
        (A, B, "nurse\n\nnurse\ndoctor", "between 3 and 120 distinct occupations, one per line, got 2."),
        (A, B, "\n".join(f"job{i}" for i in range(121)), "got 121."),
        (A, B, "a\nb\n" + "x" * 61, "at most 60 characters"),
        (A, B, "a\nb\nc{}", "without braces"),
        (A, B, "  ", "occupations must be non-empty text"),
        (None, B, "a\nb\nc", "template_a must be non-empty text, got None."),
        (A, B, "a\nb\nc\ud800", "valid Unicode"),
    ],
)
def test_bad_input_names_the_field(load, a, b, occupations, message) -> None:
    with pytest.raises(InputError) as info:
        bias_statistics(load("minilm"), a, b, occupations)
    assert message in str(info.value)


def test_a_model_of_another_task_is_refused(load) -> None:
    with pytest.raises(ParameterError, match="a fill-mask or feature-extraction model"):
        bias_statistics(load("tiny-bert-sentiment"), A, B, "a\nb\nc")


def test_occupations_keep_their_order_and_drop_repeats() -> None:
    assert parse_occupations(" nurse \n\ndoctor\nnurse\n  head   chef ") == ["nurse", "doctor", "head chef"]
