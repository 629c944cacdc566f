"""The token inspector through the running app's API, as a script would use it: each client
reads only its own runs, and inspections are reads (no run is logged for them)."""

from __future__ import annotations

import pytest
from gradio_client import Client
from sqlalchemy import func, select

from backend.runlog import Run


@pytest.fixture(scope="module")
def client(served_app) -> Client:
    url, _ = served_app
    return Client(url, verbose=False)


def run_count(playground) -> int:
    with playground.runlog.session() as session:
        return session.scalar(select(func.count()).select_from(Run))


def test_the_inspector_endpoints_take_named_parameters(client: Client) -> None:
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    names = {name: [p["parameter_name"] for p in api[name]["parameters"]] for name in ("/inspect_token", "/inspect_prompt", "/tokenize")}
    assert names == {"/inspect_token": ["run_id", "position", "top_n", "layer"], "/inspect_prompt": ["run_id"], "/tokenize": ["model", "text"]}


def test_a_run_is_inspected_by_its_owner_and_by_nobody_else(served_app) -> None:
    url, playground = served_app
    owner, stranger = Client(url, verbose=False), Client(url, verbose=False)
    out = owner.predict(
        model="tiny-gpt2", prompt="Return the number", max_new_tokens=6, temperature=0.8, top_k=30, top_p=0.9,
        seed="7", api_name="/text_generation",
    )
    result = out[-1]
    run_id = result["run_id"]
    assert out[4] == run_id  # the inspector's run box is filled in (outputs: tokens, chart, metrics, sequences, run)
    before = run_count(playground)
    found = owner.predict(run_id=run_id, position=2, top_n=5, api_name="/inspect_token")[-1]
    assert found["run_id"] == run_id and found["position"] == 2
    assert [s["name"] for s in found["stages"]] == ["raw", *result["chain"], "final"]
    assert found["token"]["token_id"] == result["tokens"][2]["token_id"]
    assert found["stages"][-1]["chosen_prob"] == pytest.approx(result["tokens"][2]["prob"], abs=1e-4)
    assert found["stages"][0]["chosen_prob"] == pytest.approx(result["tokens"][2]["raw_prob"], abs=1e-4)
    assert found["attention"]["layers"] == 2 and len(found["attention"]["context"]) == result["metrics"]["prompt_tokens"] + 2
    assert [layer["layer"] for layer in found["logit_lens"]] == [0, 1, 2]
    surprisal = owner.predict(run_id=run_id, api_name="/inspect_prompt")[-1]
    assert surprisal["perplexity"] > 1 and len(surprisal["tokens"]) == result["metrics"]["prompt_tokens"]
    for endpoint, kwargs in (("/inspect_token", {"position": 0}), ("/inspect_prompt", {})):
        with pytest.raises(Exception, match=f"run {run_id} is not one of yours."):
            stranger.predict(run_id=run_id, api_name=endpoint, **kwargs)
    assert run_count(playground) == before  # inspections are not runs


def test_a_summarization_run_shows_its_cross_attention(client: Client) -> None:
    result = client.predict(model="tiny-summarizer", text="Return the number of items in the container.", max_new_tokens=4, api_name="/summarization")[-1]
    found = client.predict(run_id=result["run_id"], position=1, api_name="/inspect_token")[-1]
    assert found["attention"]["cross"] is not None and len(found["attention"]["cross"]["weights"]) == found["attention"]["layers"]
    assert "unavailable" in client.predict(run_id=result["run_id"], api_name="/inspect_prompt")[-1]


def test_tokenize_serves_every_registry_model(client: Client) -> None:
    gpt2 = client.predict(model="tiny-gpt2", text="Return <b>x</b>", api_name="/tokenize")[-1]
    assert gpt2["count"] == len(gpt2["tokens"]) and gpt2["max_context"] == 128
    bert = client.predict(model="tiny-bert-mlm", text="Return the [MASK].", api_name="/tokenize")[-1]
    assert bert["tokens"][0]["special"] and bert["tokens"][-1]["special"]
    with pytest.raises(Exception, match="model must be one of"):
        client.predict(model="nope", text="x", api_name="/tokenize")


def test_bad_inspector_requests_get_the_rule_and_the_value(client: Client) -> None:
    run_id = client.predict(model="tiny-gpt2", prompt="Return", max_new_tokens=3, api_name="/text_generation")[-1]["run_id"]
    cases = [
        ({"run_id": run_id, "position": 3}, f"position must be an integer in [0, 2] (run {run_id} has 3 new tokens), got 3."),
        ({"run_id": run_id, "position": 0, "top_n": 0}, "top_n must be an integer in [1, 50], got 0."),
        ({"run_id": 999999, "position": 0}, "run_id must be the id of a logged run, got 999999."),
        ({"run_id": None, "position": 0}, "run_id must be the id of a logged run (an integer >= 1), got None."),
        ({"run_id": run_id, "position": 0, "layer": 9}, "layer must be empty or an integer in [-2, 1] (-1 = the last layer), got 9."),
    ]
    for kwargs, message in cases:
        with pytest.raises(Exception) as info:
            client.predict(api_name="/inspect_token", **kwargs)
        assert message in str(info.value)
    assert client.predict(run_id=run_id, position=2, api_name="/inspect_token")[-1]["position"] == 2  # still serving
