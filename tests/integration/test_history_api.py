"""The history through the running app's API: each client sees, opens, replays and exports only
its own runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gradio_client import Client


def test_the_history_endpoints_take_named_parameters(served_app) -> None:
    url, _ = served_app
    api = Client(url, verbose=False).view_api(return_format="dict", print_info=False)["named_endpoints"]
    names = {name: [p["parameter_name"] for p in api[name]["parameters"]] for name in ("/history", "/run", "/replay", "/export")}
    assert names == {
        "/history": ["task", "model", "status", "search", "limit"],
        "/run": ["run_id"],
        "/replay": ["run_id"],
        "/export": ["task", "model", "status", "search", "format"],
    }


def test_a_client_lists_opens_replays_and_exports_its_own_runs_only(served_app) -> None:
    url, _ = served_app
    alice, bob = Client(url, verbose=False), Client(url, verbose=False)
    generated = alice.predict(model="tiny-gpt2", prompt="Alice's secret plan", max_new_tokens=5, temperature=0.9, seed="3", api_name="/text_generation")[-1]
    classified = alice.predict(model="tiny-classifier", text="Alice's other secret", api_name="/text_classification")[-1]
    mine = alice.predict(api_name="/history")[-1]
    assert [r["id"] for r in mine["runs"][:2]] == [classified["run_id"], generated["run_id"]]
    assert alice.predict(task="text-generation", search="secret plan", api_name="/history")[-1]["runs"][0]["id"] == generated["run_id"]
    whole = alice.predict(run_id=generated["run_id"], api_name="/run")[-1]
    assert [s["token_id"] for s in whole["steps"]] == [t["token_id"] for t in generated["tokens"]]
    assert whole["input"] == {"prompt": "Alice's secret plan"} and whole["seed"] == 3

    replay = alice.predict(run_id=generated["run_id"], api_name="/replay")[-1]
    assert replay["identical"] and replay["replay_of"] == generated["run_id"] and replay["first_difference"] is None
    assert [t["token_id"] for t in replay["run"]["tokens"]] == [t["token_id"] for t in generated["tokens"]]
    again = alice.predict(run_id=classified["run_id"], api_name="/replay")[-1]
    assert again["identical"] and again["run"]["label"] == classified["label"]

    path = alice.predict(format="jsonl", api_name="/export")
    exported = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
    assert {generated["run_id"], classified["run_id"], replay["run_id"]} <= {r["id"] for r in exported}
    assert next(r for r in exported if r["id"] == generated["run_id"]) == whole

    assert bob.predict(api_name="/history")[-1]["runs"] == []
    assert Path(bob.predict(format="csv", api_name="/export")).read_text(encoding="utf-8").count("\n") == 1  # the header only
    for endpoint in ("/run", "/replay"):
        with pytest.raises(Exception, match=f"run {generated['run_id']} is not one of yours."):
            bob.predict(run_id=generated["run_id"], api_name=endpoint)


def test_bad_history_requests_name_the_field(served_app) -> None:
    url, _ = served_app
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="status must be empty or one of running, ok, error, cancelled, interrupted, got 'done'."):
        client.predict(status="done", api_name="/history")
    with pytest.raises(Exception, match="format must be one of jsonl, csv, got 'xml'."):
        client.predict(format="xml", api_name="/export")
    with pytest.raises(Exception, match="run_id must be the id of a logged run"):
        client.predict(run_id=-4, api_name="/run")
