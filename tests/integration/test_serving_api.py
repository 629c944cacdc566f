"""The serving figures and the throughput lab through the running app's API."""

from __future__ import annotations

import pytest
from gradio_client import Client

from bench.app_process import steady_state


def test_the_serving_figures_and_the_lab_answer_through_the_api(served_app) -> None:
    url, playground = served_app
    client = Client(url, verbose=False)
    client.predict(model="tiny-gpt2", prompt="Return", max_new_tokens=3, api_name="/text_generation")
    stats = client.predict(api_name="/serving_stats")[-1]
    assert stats["max_batch"] == playground.settings.max_batch
    tiny = next(m for m in stats["models"] if m["model"] == "tiny-gpt2")
    assert tiny["tokens"] >= 3 and tiny["decoding"] == 0 and tiny["largest_batch"] >= 1
    assert steady_state(client, "tiny-gpt2", timeout=120).startswith("worker process")  # started by that first run
    tiny = next(m for m in client.predict(api_name="/serving_stats")[-1]["models"] if m["model"] == "tiny-gpt2")
    result = client.predict(model="tiny-gpt2", prompt="Return", max_new_tokens=3, min_new_tokens=3, api_name="/text_generation")[-1]
    assert result["metrics"]["new_tokens"] == 3 and len(result["tokens"]) == 3 and result["tokens"][0]["alternatives"]
    after = next(m for m in client.predict(api_name="/serving_stats")[-1]["models"] if m["model"] == "tiny-gpt2")
    assert after["tokens"] == tiny["tokens"] + 3  # decoded by that process
    lab = client.predict(model="tiny-gpt2", n_values=[1, 2], max_new_tokens=4, api_name="/throughput_lab")[-1]
    assert [p["n"] for p in lab["points"]] == [1, 2] and [p["tokens"] for p in lab["points"]] == [4, 8]
    mine = {r["id"] for r in client.predict(api_name="/history")[-1]["runs"]}
    assert {i for p in lab["points"] for i in p["run_ids"]} <= mine  # the lab's runs are the client's
    with pytest.raises(Exception, match="n_values must be a list of 1, 2, 4, 8, 16, got"):
        client.predict(model="tiny-gpt2", n_values=[3], max_new_tokens=4, api_name="/throughput_lab")
    with pytest.raises(Exception, match=r"max_new_tokens must be an integer in \[1, 64\], got 100."):
        client.predict(model="tiny-gpt2", n_values=[1], max_new_tokens=100, api_name="/throughput_lab")
