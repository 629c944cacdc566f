"""backend.remote without a server: models.yaml's openai source, the request a run sends, the
fields each engine refuses by name, and both forms of logprobs engines stream. (The runs against a
real llama.cpp server are in tests/integration/test_remote_engine.py.)"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from backend.errors import RemoteModelError, SpecError
from backend.params import DecodingParams
from backend.registry import ModelRegistry, Task, load_specs
from backend.remote import (
    LLAMA_CPP_SAMPLERS,
    RemoteSource,
    UnsupportedFieldError,
    check_fields,
    parse_logprobs,
    parse_source,
    request_body,
    step_of,
)


def source(engine: str = "vllm", **kw) -> RemoteSource:
    return parse_source("e", {"base_url": "http://127.0.0.1:9/v1", "model": "m", "engine": engine, **kw})


def test_models_yaml_openai_source(tmp_path: Path) -> None:
    (tmp_path / "models.yaml").write_text(
        """models:
  - name: remote gpt2
    task: text-generation
    family: decoder
    source: {openai: {base_url: "http://127.0.0.1:8080/v1/", model: gpt2, engine: llama.cpp, api_key_env: LLAMA_KEY}}
    max_context: 512
    description: the embedded GPT-2 on llama.cpp
""",
        encoding="utf-8",
    )
    (spec,) = load_specs(tmp_path / "models.yaml")
    assert spec.remote == RemoteSource("http://127.0.0.1:8080/v1", "gpt2", "llama.cpp", "LLAMA_KEY", "raw", 60.0)
    assert spec.source == "llama.cpp at http://127.0.0.1:8080/v1"
    registry = ModelRegistry((spec,), max_loaded=1, device="cpu", offline=True)
    assert registry.availability(spec).available
    with pytest.raises(RemoteModelError, match="works on local models only"):
        registry.get("remote gpt2", Task.TEXT_GENERATION)
    with pytest.raises(RemoteModelError, match="its tokenizer needs the model's weights"):
        registry.tokenizer("remote gpt2")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"model": "m"}, "source.openai.base_url must be an http(s) URL"),
        ({"base_url": "ftp://x", "model": "m"}, "source.openai.base_url must be"),
        ({"base_url": "http://x/v1"}, "source.openai.model must be"),
        ({"base_url": "http://x/v1", "model": "m", "engine": "tgi"}, "engine must be one of llama.cpp, vllm, sglang, openai, got 'tgi'"),
        ({"base_url": "http://x/v1", "model": "m", "api_key": "sk-1"}, "source.openai.api_key must be one of"),
        ({"base_url": "http://x/v1", "model": "m", "api_key_env": "sk-1 x"}, "api_key_env must be the name of an environment variable"),
        ({"base_url": "http://x/v1", "model": "m", "probabilities": "both"}, "probabilities must be one of raw, processed"),
    ],
)
def test_bad_openai_source_names_the_field(raw: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_source("e", raw)


def test_a_remote_source_serves_text_generation_only(tmp_path: Path) -> None:
    (tmp_path / "models.yaml").write_text(
        "models:\n  - {name: r, task: translation, family: encoder-decoder, max_context: 64, description: d,"
        " source: {openai: {base_url: 'http://x/v1', model: m}}}\n",
        encoding="utf-8",
    )
    with pytest.raises(SpecError, match="task must be text-generation for a remote engine"):
        load_specs(tmp_path / "models.yaml")


def test_llama_cpp_request_sets_every_sampler_to_the_playgrounds_value() -> None:
    params = DecodingParams(temperature=0.7, top_k=20, top_p=0.9, min_p=0.05, typical_p=0.95,
                            repetition_penalty=1.2, max_new_tokens=17, stop_sequences=("\n\n",), seed=5, top_alternatives=7)
    body = request_body(source("llama.cpp", probabilities="processed"), "Hello", params, 512)
    assert body["prompt"] == "Hello" and body["stream"] is True and body["max_tokens"] == 17
    assert (body["temperature"], body["top_k"], body["top_p"], body["min_p"], body["typical_p"]) == (0.7, 20, 0.9, 0.05, 0.95)
    assert body["repeat_penalty"] == 1.2 and body["repeat_last_n"] == 512  # the whole context, as transformers counts it
    assert "repetition_penalty" not in body
    assert body["samplers"] == LLAMA_CPP_SAMPLERS == ["penalties", "temperature", "top_k", "top_p", "min_p", "typ_p"]
    assert body["n_probs"] == 7 and body["post_sampling_probs"] is True
    assert body["stop"] == ["\n\n"] and body["seed"] == 5
    # llama.cpp's other samplers are on by default: every one is switched off
    assert (body["top_n_sigma"], body["xtc_probability"], body["dry_multiplier"], body["mirostat"]) == (-1.0, 0.0, 0.0, 0)


def test_vllm_request_maps_the_penalties_and_min_tokens() -> None:
    params = DecodingParams(temperature=1.0, presence_penalty=0.5, frequency_penalty=-0.3, repetition_penalty=1.1,
                            min_new_tokens=3, max_new_tokens=9, seed=1)
    body = request_body(source("vllm"), "x", params, 512)
    assert (body["presence_penalty"], body["frequency_penalty"], body["repetition_penalty"], body["min_tokens"]) == (0.5, -0.3, 1.1, 3)
    assert body["logprobs"] == 5 and body["stream_options"] == {"include_usage": True}
    assert "samplers" not in body and "n_probs" not in body


@pytest.mark.parametrize(
    ("engine", "field", "value", "message"),
    [
        ("vllm", "typical_p", 0.9, "typical_p is not supported by this engine (vllm), got 0.9."),
        ("sglang", "no_repeat_ngram_size", 3, "no_repeat_ngram_size is not supported by this engine (sglang), got 3."),
        ("llama.cpp", "presence_penalty", 0.5, "presence_penalty is not supported by this engine (llama.cpp: llama.cpp counts it over the prompt too), got 0.5."),
        ("llama.cpp", "min_new_tokens", 2, "min_new_tokens is not supported by this engine (llama.cpp: llama.cpp has no minimum length), got 2."),
        ("openai", "top_k", 40, "top_k is not supported by this engine (openai), got 40."),
        ("openai", "top_alternatives", 6, "top_alternatives is not supported by this engine (openai: at most 5 alternatives), got 6."),
        ("vllm", "num_beams", 4, "num_beams is not supported by this engine (vllm: no beam search over this API), got 4."),
        ("vllm", "use_cache", False, "use_cache is not supported by this engine (vllm: an engine always keeps its KV cache), got False."),
    ],
)
def test_a_field_the_engine_cannot_honour_is_refused_by_name(engine: str, field: str, value: object, message: str) -> None:
    params = DecodingParams(**{field: value, **({"num_return_sequences": 1} if field == "num_beams" else {})})
    with pytest.raises(UnsupportedFieldError) as caught:
        check_fields(source(engine), params)
    assert str(caught.value) == message
    assert caught.value.field == field


def test_defaults_and_beam_only_fields_pass_everywhere() -> None:
    for engine in ("llama.cpp", "vllm", "sglang", "openai"):
        check_fields(source(engine), DecodingParams(length_penalty=2.0, seed=3, temperature=0.8, top_p=0.5))


def test_llama_cpp_logprobs_content_form() -> None:
    raw = {"content": [{"id": 12, "token": " the", "logprob": math.log(0.25), "top_logprobs": [
        {"id": 12, "token": " the", "logprob": math.log(0.25)}, {"id": 40, "token": " a", "logprob": math.log(0.2)}]}]}
    (token,) = parse_logprobs(raw)
    assert token.token_id == 12 and token.text == " the" and token.prob == pytest.approx(0.25)
    assert [(a[0], a[1]) for a in token.alternatives] == [(12, " the"), (40, " a")]
    assert token.alternatives[1][2] == pytest.approx(0.2)
    processed = {"content": [{"id": 3, "token": "x", "prob": 0.9, "top_probs": [{"id": 3, "token": "x", "prob": 0.9}]}]}
    (token,) = parse_logprobs(processed)
    assert token.prob == 0.9 and token.alternatives == ((3, "x", 0.9),)


def test_openai_legacy_logprobs_form() -> None:
    raw = {"tokens": [" a", "token_id:77"], "token_logprobs": [math.log(0.5), None],
           "top_logprobs": [{" b": math.log(0.1), " a": math.log(0.5)}, None], "text_offset": [0, 2]}
    first, second = parse_logprobs(raw)
    assert first.token_id == -1 and first.prob == pytest.approx(0.5)
    assert [a[1] for a in first.alternatives] == [" a", " b"]  # most likely first
    assert second.token_id == 77 and second.prob is None and second.alternatives == ()
    assert parse_logprobs(None) == []


def test_a_remote_step_carries_one_distribution_and_says_which() -> None:
    (token,) = parse_logprobs({"content": [{"id": 1, "token": "a", "logprob": math.log(0.5), "top_logprobs": [
        {"id": 1, "token": "a", "logprob": math.log(0.5)}]}]})
    raw = step_of(token, 0, 0.1, "raw")
    assert (raw.raw_prob, raw.prob, raw.entropy, raw.probabilities) == (pytest.approx(0.5), None, None, "raw")
    assert raw.alternatives[0].raw_prob == pytest.approx(0.5) and raw.alternatives[0].prob is None
    processed = step_of(token, 0, 0.1, "processed")
    assert (processed.prob, processed.raw_prob) == (pytest.approx(0.5), None)
    again = type(raw).from_dict(raw.to_dict())
    assert again == raw and raw.to_dict()["probabilities"] == "raw"


class _VllmShapedEngine:
    """A loopback HTTP server that answers /v1/completions as vLLM streams an echoed completion
    (vllm/entrypoints/openai/serving_completion.py: the first chunk carries the prompt and its
    logprobs, the first of them null, with text offsets into prompt + completion; then one token
    per chunk; then the usage). vLLM itself cannot run on this CPU offline: this replays its
    answer's shape, to check that the client splits the prompt from the completion."""

    def __init__(self, stream: bool = True) -> None:
        import http.server
        import json as json_module
        import threading

        self.requests: list[dict] = []
        engine = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json_module.loads(self.rfile.read(int(self.headers["Content-Length"])))
                engine.requests.append(body)
                prompt = body["prompt"]
                lp = math.log
                chunks = [
                    {"text": prompt + " one", "logprobs": {
                        "tokens": ["The", " cat", " one"], "token_logprobs": [None, lp(0.01), lp(0.5)],
                        "top_logprobs": [None, {" cat": lp(0.01), " dog": lp(0.2)}, {" one": lp(0.5)}],
                        "text_offset": [0, 3, len(prompt)]}},
                    {"text": " two", "logprobs": {"tokens": [" two"], "token_logprobs": [lp(0.25)],
                                                  "top_logprobs": [{" two": lp(0.25)}], "text_offset": [len(prompt) + 4]}},
                ]
                if not stream:  # an engine that ignores stream=true: the whole answer, pretty-printed
                    whole = {"choices": [{"index": 0, "text": " one two", "finish_reason": "length",
                                          "logprobs": None}], "usage": {"prompt_tokens": 2, "completion_tokens": 2}}
                    payload = json_module.dumps(whole, indent=2).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for i, chunk in enumerate(chunks):
                    choice = {"index": 0, **chunk, "finish_reason": "length" if i == 1 else None, "stop_reason": None}
                    self.wfile.write(f"data: {json_module.dumps({'choices': [choice]})}\n\n".encode())
                usage = {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 2}}
                self.wfile.write(f"data: {json_module.dumps(usage)}\n\ndata: [DONE]\n\n".encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_prompt_logprobs_from_an_echoed_stream() -> None:
    import threading

    from backend.generation import GenerationDone
    from backend.remote import run_remote

    engine = _VllmShapedEngine()
    try:
        remote = RemoteSource(engine.base_url, "m", "vllm", None, "raw", 10.0, True)
        events = list(run_remote(remote, "The cat", DecodingParams(max_new_tokens=2, seed=1), threading.Event(), 64))
    finally:
        engine.close()
    assert engine.requests[0]["echo"] is True and engine.requests[0]["logprobs"] == 5
    steps = [e.step for e in events[:-1]]
    assert [s.text for s in steps] == [" one", " two"] and steps[0].raw_prob == pytest.approx(0.5)
    result = events[-1].result
    assert isinstance(events[-1], GenerationDone) and result.text == " one two"
    prompt = result.remote["prompt_logprobs"]
    assert [t["text"] for t in prompt["tokens"]] == ["The", " cat"] and prompt["tokens"][0]["prob"] is None
    assert prompt["mean_surprisal_bits"] == pytest.approx(-math.log2(0.01))
    assert prompt["most_surprising"]["text"] == " cat"
    assert any("mean surprisal 6.64 bits" in note for note in result.notes)
    assert result.metrics.prompt_tokens == 2 and result.finish_reason == "length"


def test_llama_cpp_cannot_echo_the_prompt() -> None:
    with pytest.raises(SpecError, match="prompt_logprobs must be false for llama.cpp"):
        source("llama.cpp", prompt_logprobs=True)


def test_an_engine_that_does_not_stream_still_answers() -> None:
    import threading

    from backend.remote import run_remote

    engine = _VllmShapedEngine(stream=False)
    try:
        remote = RemoteSource(engine.base_url, "m", "openai", None, "raw", 10.0, False)
        events = list(run_remote(remote, "The cat", DecodingParams(max_new_tokens=2, seed=1), threading.Event(), 64))
    finally:
        engine.close()
    result = events[-1].result
    assert result.text == " one two" and result.finish_reason == "length"
    assert [e.step.probabilities for e in events[:-1]] == ["none"]  # no logprobs: the text, labelled so
