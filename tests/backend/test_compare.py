"""Compare: two decoding settings on one seed. Where the runs part is checked against the token ids
themselves; the stage probabilities against a softmax computed here from the model's own logits;
the KV cache lesson (same tokens, growing time per token without it) as ratios inside one run."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch

from backend.compare import CompareEvent, Comparison, first_difference
from backend.errors import InputError, ParameterError, UnknownModelError
from backend.playground import Playground
from backend.runlog import Run

OWNER = "session:compare-tests"
PROMPT = "Return the number of items in"


def compare(pg: Playground, a: dict[str, Any], b: dict[str, Any], model: str = "stdlib-gpt2", prompt: str = PROMPT,
            cancel: threading.Event | None = None) -> tuple[list[CompareEvent], Comparison]:
    items = list(pg.compare(model, prompt, a, b, cancel or threading.Event(), owner=OWNER))
    assert isinstance(items[-1], Comparison)
    return items[:-1], items[-1]


def ids(comparison: Comparison, side: str) -> list[int]:
    return list(getattr(comparison, side).result.sequences[0].token_ids)


@pytest.mark.parametrize("params", [{"max_new_tokens": 48}, {"max_new_tokens": 48, "temperature": 1.0, "seed": 3}],
                         ids=["greedy", "seeded sampling"])
def test_with_and_without_the_kv_cache_the_tokens_are_the_same(inspect_playground: Playground, params: dict) -> None:
    events, c = compare(inspect_playground, params, {**params, "use_cache": False})
    assert ids(c, "a") == ids(c, "b") and len(ids(c, "a")) == 48
    assert c.first_divergence is None and c.to_json()["first_divergence"] is None
    assert c.summary.startswith("identical outputs: the same 48 token ids")
    assert 0 <= c.max_prob_difference < 1e-4  # float rounding, shown
    assert {e.side for e in events} == {"a", "b"}  # both streamed
    assert c.a.result.kv_cache is not None and c.b.result.kv_cache is None  # no cache, no cache size
    assert c.a.result.seed == c.b.result.seed == (params.get("seed") or c.a.result.seed)


def test_without_the_cache_each_token_costs_more_as_the_text_grows(inspect_playground: Playground) -> None:
    params = {"max_new_tokens": 256, "min_new_tokens": 256}
    _, c = compare(inspect_playground, params, {**params, "use_cache": False})
    times = c.b.to_json()["timeline"]["token_times"]
    assert len(times) == 256 and times == sorted(times)
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    quarter = len(gaps) // 4
    first, last = sum(gaps[:quarter]) / quarter, sum(gaps[-quarter:]) / quarter
    assert last > first  # recomputing the whole prefix at every step: the time per token grows with it
    assert ids(c, "a") == ids(c, "b")


def test_top_p_divergence_is_found_and_explained(inspect_playground: Playground) -> None:
    a = {"temperature": 1.0, "top_p": 1.0, "seed": 5, "max_new_tokens": 40}
    _, c = compare(inspect_playground, a, {"temperature": 1.0, "top_p": 0.3, "max_new_tokens": 40})
    ta, tb = ids(c, "a"), ids(c, "b")
    expected = next(i for i, (x, y) in enumerate(zip(ta, tb)) if x != y)  # computed here
    d = c.first_divergence
    assert d is not None and d.position == expected
    assert d.a_token[0] == ta[expected] and d.b_token[0] == tb[expected]
    assert "top-p" in d.explanation and d.explanation == c.summary
    assert c.b.result.seed == 5  # B shares A's seed
    assert c.differences == ("top_p: 1.0 → 0.3",)
    # the stage probabilities, against a softmax of the model's own logits at that position
    loaded = inspect_playground.registry.get("stdlib-gpt2")
    prefix = torch.tensor([[*c.a.result.input_token_ids, *ta[:expected]]])
    with torch.inference_mode():
        logits = loaded.model(input_ids=prefix).logits[0, -1].double()
    raw = torch.softmax(logits, -1)
    stages = c.to_json()["first_divergence"]["stages"]
    assert [s["stage"] for s in stages["a"]] == ["raw", "final"]  # A's chain: nothing at temperature 1, top-p 1
    assert [s["stage"] for s in stages["b"]] == ["raw", "top-p", "final"]
    for side in "ab":
        assert stages[side][0]["a_token"] == pytest.approx(raw[ta[expected]].item(), abs=1e-5)
        assert stages[side][0]["b_token"] == pytest.approx(raw[tb[expected]].item(), abs=1e-5)
    kept = raw >= 0  # top-p 0.3 by its definition: the most probable tokens until their mass reaches 0.3
    order = torch.argsort(raw, descending=True)
    mass = torch.cumsum(raw[order], 0)
    kept = torch.zeros_like(raw, dtype=torch.bool)
    kept[order[: int((mass < 0.3).sum()) + 1]] = True
    top_p = torch.where(kept, raw, torch.zeros_like(raw)) / raw[kept].sum()
    assert stages["b"][1]["b_token"] == pytest.approx(top_p[tb[expected]].item(), abs=1e-5)
    assert stages["b"][1]["a_token"] == pytest.approx(top_p[ta[expected]].item(), abs=1e-5)


def test_a_run_that_ends_first_is_a_divergence_too(inspect_playground: Playground) -> None:
    _, c = compare(inspect_playground, {"max_new_tokens": 12}, {"max_new_tokens": 7})
    d = c.first_divergence
    assert d is not None and d.position == 7 == first_difference(ids(c, "a"), ids(c, "b"))
    assert d.b_token is None and d.a_token[0] == ids(c, "a")[7]
    assert "B had ended (length)" in d.explanation and "max_new_tokens: 12 → 7" in d.explanation


def test_a_greedy_penalty_divergence_names_the_penalty(inspect_playground: Playground) -> None:
    _, c = compare(inspect_playground, {"max_new_tokens": 40}, {"max_new_tokens": 40, "repetition_penalty": 1.5})
    d = c.first_divergence
    assert d is not None and d.position == first_difference(ids(c, "a"), ids(c, "b"))
    assert "repetition penalty 1.5" in d.explanation
    final_b = d.stages["b"][-1]
    assert final_b.b_token > final_b.a_token  # greedy: B took what its chain made the most probable


def test_both_runs_are_logged_for_their_owner(inspect_playground: Playground) -> None:
    _, c = compare(inspect_playground, {"max_new_tokens": 5}, {"max_new_tokens": 5, "temperature": 0.8})
    assert c.a.run_id != c.b.run_id
    with inspect_playground.runlog.session() as session:
        runs = {r.id: r for r in session.query(Run).filter(Run.id.in_([c.a.run_id, c.b.run_id]))}
    assert {r.owner for r in runs.values()} == {OWNER} and {r.status for r in runs.values()} == {"ok"}
    assert runs[c.b.run_id].params["temperature"] == 0.8 and runs[c.b.run_id].seed == runs[c.a.run_id].seed
    out = c.to_json()
    assert out["a"]["run_id"] == c.a.run_id and out["b"]["run_id"] == c.b.run_id


def test_an_unlocked_seed_is_b_own(inspect_playground: Playground) -> None:
    _, c = compare(inspect_playground, {"max_new_tokens": 5, "temperature": 1.0, "seed": 1},
                   {"max_new_tokens": 5, "temperature": 1.0, "seed": 2})
    assert (c.a.result.seed, c.b.result.seed) == (1, 2)
    if c.first_divergence is not None:
        assert "different seeds (1 and 2)" in c.first_divergence.explanation


def test_encoder_decoder_models_compare_too(inspect_playground: Playground) -> None:
    text = "The function returns a list of the values in the dictionary, sorted by key."
    _, c = compare(inspect_playground, {"max_new_tokens": 10}, {"max_new_tokens": 10, "no_repeat_ngram_size": 1},
                   model="tiny-bart", prompt=text)
    assert c.a.to_json()["model"] == "tiny-bart"
    position = first_difference(ids(c, "a"), ids(c, "b"))
    assert (c.first_divergence is None) == (position is None)
    if position is not None:
        assert c.first_divergence.position == position and "no-repeat n-gram 1" in c.first_divergence.explanation


@pytest.mark.parametrize(
    ("model", "prompt", "a", "b", "error", "message"),
    [
        ("stdlib-gpt2", PROMPT, {}, {"top_p": 1.3}, ParameterError, "params_b.top_p must be in (0, 1], got 1.3."),
        ("stdlib-gpt2", PROMPT, [1], {}, ParameterError, "params_a must be a JSON object of decoding-panel fields, got [1]."),
        ("stdlib-gpt2", PROMPT, {"beams": 2}, {}, ParameterError, "params_a.parameter must be one of"),
        ("stdlib-gpt2", "   ", {}, {}, InputError, "prompt must be non-empty text, got '   '."),
        ("nope", PROMPT, {}, {}, UnknownModelError, "model must be one of"),
    ],
)
def test_bad_input_is_refused_before_either_run_and_logged(
    inspect_playground: Playground, model: str, prompt: str, a: Any, b: Any, error: type, message: str
) -> None:
    with inspect_playground.runlog.session() as session:
        before = session.query(Run).count()
    with pytest.raises(error) as raised:
        list(inspect_playground.compare(model, prompt, a, b, threading.Event(), owner=OWNER))
    assert str(raised.value).startswith(message)
    with inspect_playground.runlog.session() as session:
        added = session.query(Run).order_by(Run.id.desc()).limit(session.query(Run).count() - before).all()
    assert [r.status for r in added] == ["error"] and added[0].error.startswith(message)


def test_stop_stops_both_and_both_are_logged_cancelled(inspect_playground: Playground) -> None:
    cancel = threading.Event()
    params = {"max_new_tokens": 400, "min_new_tokens": 400}
    items = []
    for item in inspect_playground.compare("stdlib-gpt2", PROMPT, params, {**params, "use_cache": False}, cancel, owner=OWNER):
        items.append(item)
        if len(items) == 6:
            cancel.set()
    c = items[-1]
    assert isinstance(c, Comparison)
    assert c.a.result.finish_reason == c.b.result.finish_reason == "cancelled"
    assert len(ids(c, "a")) < 400 and len(ids(c, "b")) < 400
