"""/compare and the cost fields of the generation endpoints, through the running app with gradio_client."""

from __future__ import annotations

import pytest
from gradio_client import Client

from backend.runlog import Run


@pytest.fixture(scope="module")
def client(served_app) -> Client:
    url, _ = served_app
    return Client(url, verbose=False)


def first_difference(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def test_compare_streams_both_and_explains_where_they_part(client: Client, served_app) -> None:
    _, playground = served_app
    job = client.submit(
        model="tiny-gpt2", prompt="Return the number of",
        params_a={"temperature": 1.0, "seed": 3, "max_new_tokens": 40},
        params_b={"temperature": 1.0, "top_p": 0.3, "max_new_tokens": 40},
        api_name="/compare",
    )
    out = job.result()[-1]
    assert set(out) >= {"a", "b", "first_divergence", "summary", "differences"}
    for side in ("a", "b"):
        assert {"run_id", "text", "tokens", "metrics", "timeline", "kv_cache_bytes", "context", "seed"} <= out[side].keys()
    assert out["a"]["seed"] == out["b"]["seed"] == 3
    ids_a = [t["token_id"] for t in out["a"]["tokens"]]
    ids_b = [t["token_id"] for t in out["b"]["tokens"]]
    position = first_difference(ids_a, ids_b)
    assert position is not None and out["first_divergence"]["position"] == position
    assert "top-p" in out["first_divergence"]["explanation"]
    assert out["first_divergence"]["a_token"]["token_id"] == ids_a[position]
    with playground.runlog.session() as session:
        runs = session.query(Run).filter(Run.id.in_([out["a"]["run_id"], out["b"]["run_id"]])).all()
    assert len(runs) == 2 and {r.status for r in runs} == {"ok"}


def test_compare_with_and_without_the_cache_gives_the_same_tokens(client: Client) -> None:
    out = client.predict(
        model="tiny-gpt2", prompt="Return the", params_a={"max_new_tokens": 30},
        params_b={"max_new_tokens": 30, "use_cache": False}, api_name="/compare",
    )[-1]
    assert out["first_divergence"] is None and out["summary"].startswith("identical outputs")
    assert out["a"]["kv_cache_bytes"] > 0 and out["b"]["kv_cache_bytes"] is None


def test_compare_serves_encoder_decoder_models(client: Client) -> None:
    out = client.predict(
        model="tiny-summarizer", prompt="The function returns a list of the values in the dictionary.",
        params_a={"max_new_tokens": 8}, params_b={"max_new_tokens": 8, "num_beams": 2}, api_name="/compare",
    )[-1]
    assert out["a"]["model"] == out["b"]["model"] == "tiny-summarizer"
    assert out["b"]["beam_tree"]["num_beams"] == 2 and out["a"]["beam_tree"] is None


def test_generation_results_carry_the_timeline_cache_context_and_beam_tree(client: Client) -> None:
    plain = client.predict(model="tiny-gpt2", prompt="Return the", max_new_tokens=6, api_name="/text_generation")[-1]
    assert len(plain["timeline"]["token_times"]) == 6 and plain["timeline"]["prefill_s"] > 0
    assert plain["context"] == {"used": plain["metrics"]["prompt_tokens"] + 6, "max": 128,
                                "prompt": plain["metrics"]["prompt_tokens"], "new": 6}
    assert plain["kv_cache_bytes"] == plain["kv_cache"]["formula_bytes"] and plain["beam_tree"] is None
    beams = client.predict(model="tiny-gpt2", prompt="Return the", max_new_tokens=6, num_beams=3, api_name="/text_generation")[-1]
    nodes = beams["beam_tree"]["nodes"]
    winner = [n["token_id"] for n in nodes if n["winner"]]
    assert winner == beams["sequences"][0]["token_ids"]
    summary = client.predict(
        model="tiny-summarizer", text="The function returns a list.", max_new_tokens=5, num_beams=2, api_name="/summarization"
    )[-1]
    assert summary["beam_tree"]["steps"] >= 1 and summary["kv_cache"]["cross_tokens"] == summary["metrics"]["prompt_tokens"]
