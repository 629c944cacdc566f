"""The running app, driven through its public API with gradio_client, as a script would."""

from __future__ import annotations

import pytest
from gradio_client import Client
from sqlalchemy import select

from backend.params import DecodingParams
from backend.runlog import Run, TokenStepRow


@pytest.fixture(scope="module")
def client(served_app) -> Client:
    url, _ = served_app
    return Client(url, verbose=False)


def test_every_decoding_parameter_is_a_named_api_parameter(client: Client) -> None:
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/text_generation"]
    names = [p["parameter_name"] for p in api["parameters"]]
    assert names == ["model", "prompt", *DecodingParams.field_names()]
    assert all(p["parameter_has_default"] for p in api["parameters"][2:])


def test_streamed_updates_arrive_one_after_another_and_the_run_is_logged(client: Client, served_app) -> None:
    _, playground = served_app
    job = client.submit(model="tiny-gpt2", prompt="Return the", max_new_tokens=100, api_name="/text_generation")
    for _update in job:
        pass
    outputs = job.outputs()
    assert len(outputs) >= 2, "expected streamed partial updates before the result"
    partial = [o[-1] for o in outputs[:-1]]
    assert all(p["status"] == "running" for p in partial)
    counts = [p["new_tokens"] for p in partial]
    assert counts == sorted(set(counts)) and 0 < counts[0] and counts[-1] <= 100  # each update adds tokens
    assert partial[-1]["text"].startswith(partial[0]["text"])
    result = outputs[-1][-1]
    assert {"run_id", "text", "tokens", "metrics"} <= result.keys()
    assert len(result["tokens"]) == 100 and result["metrics"]["new_tokens"] == 100
    assert result["tokens"][0]["alternatives"] and 0 <= result["tokens"][0]["prob"] <= 1
    with playground.runlog.session() as session:
        run = session.get(Run, result["run_id"])
        assert run.status == "ok" and run.output == result["text"]
        count = len(session.scalars(select(TokenStepRow).where(TokenStepRow.run_id == run.id)).all())
        assert count == 100


def test_bad_input_gets_the_message_and_the_app_keeps_serving(client: Client, served_app) -> None:
    _, playground = served_app
    cases = [
        ({"prompt": "x", "top_p": 1.3}, "top_p must be in (0, 1], got 1.3."),
        ({"prompt": "x", "temperature": -1}, "temperature must be in [0, 5], got -1.0."),
        ({"prompt": "   "}, "prompt must be non-empty text"),
        ({"prompt": "x", "max_new_tokens": 5000}, "max_new_tokens must be an integer in [1, 1024], got 5000."),
        ({"prompt": "x", "min_new_tokens": 9, "max_new_tokens": 3}, "min_new_tokens must be at most max_new_tokens (3), got 9."),
        ({"prompt": "word " * 300}, "reads at most 128 tokens"),
    ]
    for kwargs, message in cases:
        with pytest.raises(Exception) as info:
            client.predict(model="tiny-gpt2", api_name="/text_generation", **kwargs)
        assert message in str(info.value)
    with pytest.raises(Exception, match="model must be one of 'tiny-gpt2', 'corrupt-gpt2', 'offline-hub-model', 'long-gpt2', got 'no-such-model'."):
        client.predict(model="no-such-model", prompt="x", api_name="/text_generation")
    with pytest.raises(Exception, match="failed to load"):
        client.predict(model="corrupt-gpt2", prompt="x", api_name="/text_generation")
    ok = client.predict(model="tiny-gpt2", prompt="still serving", max_new_tokens=3, api_name="/text_generation")
    assert ok[-1]["metrics"]["new_tokens"] == 3
    with playground.runlog.session() as session:
        errors = session.scalars(select(Run).where(Run.status == "error")).all()
    assert len(errors) >= len(cases) + 2


def test_beam_search_returns_every_beam_with_its_score(client: Client) -> None:
    out = client.predict(
        model="tiny-gpt2", prompt="Return the", num_beams=3, num_return_sequences=3, max_new_tokens=6,
        api_name="/text_generation",
    )
    sequences = out[-1]["sequences"]
    assert len(sequences) == 3 and all(isinstance(s["score"], float) for s in sequences)
    assert [s["score"] for s in sequences] == sorted((s["score"] for s in sequences), reverse=True)


def test_a_cancelled_api_job_keeps_its_seed_params_and_times(client: Client, served_app) -> None:
    import time

    _, playground = served_app
    job = client.submit(model="long-gpt2", prompt="Return the", max_new_tokens=1024, min_new_tokens=1024, temperature=0.7, api_name="/text_generation")
    deadline = time.time() + 30
    while time.time() < deadline and not any(o[-1] and o[-1].get("new_tokens", 0) > 0 for o in job.outputs()):
        time.sleep(0.05)
    job.cancel()
    deadline = time.time() + 30
    run = None
    while time.time() < deadline:
        with playground.runlog.session() as session:
            run = session.scalars(select(Run).where(Run.model == "long-gpt2").order_by(Run.id.desc())).first()
            if run is not None and run.status != "running":
                break
        time.sleep(0.1)
    assert run is not None and run.status == "cancelled" and run.finish_reason == "cancelled"
    assert run.seed is not None and run.params["seed"] == run.seed and run.params["temperature"] == 0.7
    assert 0 < run.new_tokens < 1024 and run.ttft_s > 0 and run.total_s > 0
    with playground.runlog.session() as session:
        steps = session.scalars(select(TokenStepRow).where(TokenStepRow.run_id == run.id)).all()
    assert len(steps) == run.new_tokens
