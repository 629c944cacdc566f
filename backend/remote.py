"""Remote inference engines behind an OpenAI-compatible API (llama.cpp's llama-server, vLLM,
SGLang, or any OpenAI-style completions endpoint) as a registry source:

    source: {openai: {base_url: http://127.0.0.1:8080/v1, model: gpt2, engine: llama.cpp,
                      api_key_env: MY_KEY, probabilities: raw}}

A run is one streamed `POST {base_url}/completions`. The decoding panel's fields map to the
request; a field the engine cannot honour, or honours with another definition, is refused by
name ("typical_p is not supported by this engine (vllm), got 0.9."), never dropped. Each streamed
token keeps what the engine says about it: the chosen token's probability and up to 20
alternatives (logprobs / top_logprobs), labelled `raw` (the model's softmax) or `processed`
(after the engine's sampling chain): vLLM decides it per server (--logprobs-mode), llama.cpp per
request (post_sampling_probs), as models.yaml's `probabilities` says. The other distribution is
not reported: its fields stay empty (None). Times are measured here, at the client, network
included; the engine's own timings are kept beside them where it reports them (llama.cpp).

What needs the model's logits (the stage waterfall, attention, the logit lens, beams, the KV
cache) works on local models only: the registry refuses a remote model there by name.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import httpx

from backend.capture import Alternative, TokenStep
from backend.errors import ModelUnavailableError, PlaygroundError, SpecError
from backend.metrics import RunMetrics
from backend.params import DecodingParams
from backend.processors import build_chain

log = logging.getLogger(__name__)

ENGINES = ("llama.cpp", "vllm", "sglang", "openai")
PROBABILITIES = ("raw", "processed")
#: top_logprobs an engine gives at most (vLLM's default --max-logprobs is 20; OpenAI's legacy 5).
MAX_LOGPROBS = {"llama.cpp": 20, "vllm": 20, "sglang": 20, "openai": 5}
_DEFAULTS = DecodingParams()


class RemoteEngineError(PlaygroundError):
    """The engine answered with an error (its message is kept), or an answer that is not OpenAI's."""


class UnsupportedFieldError(PlaygroundError, ValueError):
    """A decoding field the engine cannot honour as the playground defines it."""

    def __init__(self, field: str, engine: str, value: object, why: str = "") -> None:
        self.field = field
        super().__init__(f"{field} is not supported by this engine ({engine}{': ' + why if why else ''}), got {value!r}.")


@dataclass(frozen=True)
class RemoteSource:
    base_url: str  # the OpenAI API root, e.g. http://127.0.0.1:8080/v1
    model: str  # the model name the engine serves
    engine: str = "openai"
    api_key_env: str | None = None  # the environment variable that holds the key (never the key)
    probabilities: str = "raw"  # what the engine's logprobs are
    timeout_s: float = 60.0
    prompt_logprobs: bool = False  # ask for the prompt's own logprobs too (OpenAI's echo; not llama.cpp)

    @property
    def label(self) -> str:
        return f"{self.engine} at {self.base_url}"

    def headers(self) -> dict[str, str]:
        if not self.api_key_env:
            return {}
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ModelUnavailableError(f"the environment variable {self.api_key_env} (the API key of {self.label}) is not set.")
        return {"Authorization": f"Bearer {key}"}


def parse_source(entry: str, raw: object) -> RemoteSource:
    """models.yaml's `source: {openai: {...}}` -> RemoteSource; errors name the entry and field."""

    def bad(name: str, rule: str, value: object) -> SpecError:
        return SpecError(f"models.yaml entry {entry!r}: source.openai.{name} must be {rule}, got {value!r}.")

    if not isinstance(raw, dict):
        raise SpecError(f"models.yaml entry {entry!r}: source.openai must be a mapping, got {raw!r}.")
    known = {f.name for f in fields(RemoteSource)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise bad(unknown[0], f"one of {', '.join(sorted(known))}", unknown[0])
    base_url = raw.get("base_url")
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise bad("base_url", "an http(s) URL such as http://127.0.0.1:8000/v1", base_url)
    model = raw.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad("model", "the model name the engine serves", model)
    engine = raw.get("engine", "openai")
    if engine not in ENGINES:
        raise bad("engine", f"one of {', '.join(ENGINES)}", engine)
    key = raw.get("api_key_env")
    if key is not None and (not isinstance(key, str) or not key.replace("_", "").isalnum()):
        raise bad("api_key_env", "the name of an environment variable (the key itself never goes in models.yaml)", key)
    probabilities = raw.get("probabilities", "raw")
    if probabilities not in PROBABILITIES:
        raise bad("probabilities", f"one of {', '.join(PROBABILITIES)}", probabilities)
    timeout = raw.get("timeout_s", 60.0)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 1 <= timeout <= 3600:
        raise bad("timeout_s", "seconds in [1, 3600]", timeout)
    prompt_logprobs = raw.get("prompt_logprobs", False)
    if not isinstance(prompt_logprobs, bool):
        raise bad("prompt_logprobs", "true or false", prompt_logprobs)
    if prompt_logprobs and engine == "llama.cpp":
        raise bad("prompt_logprobs", "false for llama.cpp (its server refuses echo)", prompt_logprobs)
    return RemoteSource(base_url.rstrip("/"), model.strip(), engine, key, probabilities, float(timeout), prompt_logprobs)


# -- the request ------------------------------------------------------------------------------

#: Fields every engine maps the same way (OpenAI's completions API).
_COMMON = {"temperature", "top_p", "max_new_tokens", "stop_sequences", "seed", "top_alternatives"}
#: Fields each engine honours besides, as the playground defines them.
_EXTRA = {
    "llama.cpp": {"top_k", "min_p", "typical_p", "repetition_penalty"},
    "vllm": {"top_k", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty", "min_new_tokens"},
    "sglang": {"top_k", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty", "min_new_tokens"},
    "openai": {"presence_penalty", "frequency_penalty"},
}
#: Why a field is refused where the reason is not plain absence.
_WHY = {
    ("llama.cpp", "presence_penalty"): "llama.cpp counts it over the prompt too",
    ("llama.cpp", "frequency_penalty"): "llama.cpp counts it over the prompt too",
    ("llama.cpp", "min_new_tokens"): "llama.cpp has no minimum length",
    ("*", "num_beams"): "no beam search over this API",
    ("*", "num_return_sequences"): "one streamed sequence per run",
    ("*", "use_cache"): "an engine always keeps its KV cache",
    ("*", "no_repeat_ngram_size"): "",
}
#: Fields that only matter with beams (refused above): their values change nothing without them.
_BEAM_ONLY = {"length_penalty", "early_stopping"}
#: llama.cpp's sampler order made the playground's (backend.processors): penalties, temperature,
#: then the truncations (llama.cpp's default puts temperature last, after top-k/top-p/min-p).
LLAMA_CPP_SAMPLERS = ["penalties", "temperature", "top_k", "top_p", "min_p", "typ_p"]


def check_fields(source: RemoteSource, params: DecodingParams) -> None:
    """Refuse, by name, a field set away from its default that the engine cannot honour."""
    supported = _COMMON | _EXTRA[source.engine]
    for f in fields(DecodingParams):
        value = getattr(params, f.name)
        if f.name in supported or f.name in _BEAM_ONLY or value == getattr(_DEFAULTS, f.name):
            continue
        why = _WHY.get((source.engine, f.name), _WHY.get(("*", f.name), ""))
        raise UnsupportedFieldError(f.name, source.engine, value, why)
    cap = MAX_LOGPROBS[source.engine]
    if params.top_alternatives > cap:
        raise UnsupportedFieldError("top_alternatives", source.engine, params.top_alternatives, f"at most {cap} alternatives")


def request_body(source: RemoteSource, prompt: str, params: DecodingParams, max_context: int) -> dict[str, Any]:
    """The streamed completions request of a run (params checked, seed filled in); `max_context`:
    the model's context (llama.cpp counts the repetition penalty over that many tokens)."""
    check_fields(source, params)
    body: dict[str, Any] = {
        "model": source.model,
        "prompt": prompt,
        "stream": True,
        "max_tokens": params.max_new_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "logprobs": params.top_alternatives,
        "seed": params.seed,
    }
    if params.stop_sequences:
        body["stop"] = list(params.stop_sequences)
    if source.prompt_logprobs:  # the prompt comes back first, with its tokens' logprobs
        body["echo"] = True
    engine = source.engine
    if engine != "openai":
        body.update(top_k=params.top_k, min_p=params.min_p, repetition_penalty=params.repetition_penalty)
    if engine in ("vllm", "sglang", "openai"):
        body.update(presence_penalty=params.presence_penalty, frequency_penalty=params.frequency_penalty)
        body["stream_options"] = {"include_usage": True}
    if engine in ("vllm", "sglang") and params.min_new_tokens:
        body["min_tokens"] = params.min_new_tokens
    if engine == "llama.cpp":
        del body["repetition_penalty"]
        body.update(
            # every sampler of llama.cpp's default chain, set to the playground's value or off
            repeat_penalty=params.repetition_penalty,
            repeat_last_n=max_context,  # the whole context: prompt and output, as transformers counts it
            presence_penalty=0.0,
            frequency_penalty=0.0,
            typical_p=params.typical_p,
            top_n_sigma=-1.0,
            xtc_probability=0.0,
            dry_multiplier=0.0,
            dynatemp_range=0.0,
            mirostat=0,
            samplers=LLAMA_CPP_SAMPLERS,
            n_probs=params.top_alternatives,
            post_sampling_probs=source.probabilities == "processed",
            stream_options={"include_usage": True},
        )
    return body


# -- the answer -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteToken:
    token_id: int  # -1 when the engine names tokens by text only
    text: str
    prob: float | None
    alternatives: tuple[tuple[int, str, float], ...]
    text_offset: int | None = None  # OpenAI's legacy form: where the token starts in prompt + completion


def _p(entry: Mapping[str, Any], log_key: str, prob_key: str) -> float | None:
    if entry.get(prob_key) is not None:
        return float(entry[prob_key])
    value = entry.get(log_key)
    if value is None:
        return None
    return math.exp(float(value)) if float(value) > -1e30 else 0.0


def _token_id(entry: Mapping[str, Any]) -> int:
    if isinstance(entry.get("id"), int):
        return entry["id"]
    token = str(entry.get("token", ""))
    if token.startswith("token_id:") and token[9:].isdigit():  # vLLM's return_tokens_as_token_ids
        return int(token[9:])
    return -1


def parse_logprobs(logprobs: object) -> list[RemoteToken]:
    """A chunk's logprobs, in either of the two forms engines send on /completions: OpenAI's
    legacy one (tokens, token_logprobs, top_logprobs as {token: logprob}; vLLM, SGLang) or the
    chat-style list under `content` (llama.cpp; `prob`/`top_probs` with post_sampling_probs)."""
    if not isinstance(logprobs, dict):
        return []
    if isinstance(logprobs.get("content"), list):
        out = []
        for entry in logprobs["content"]:
            tops = entry.get("top_probs") if entry.get("top_probs") is not None else entry.get("top_logprobs") or []
            alternatives = tuple((_token_id(t), str(t.get("token", "")), _p(t, "logprob", "prob") or 0.0) for t in tops)
            out.append(RemoteToken(_token_id(entry), str(entry.get("token", "")), _p(entry, "logprob", "prob"), alternatives))
        return out
    tokens = logprobs.get("tokens") or []
    values = logprobs.get("token_logprobs") or [None] * len(tokens)
    tops = logprobs.get("top_logprobs") or [None] * len(tokens)
    offsets = logprobs.get("text_offset") or [None] * len(tokens)
    out = []
    for token, value, top, offset in zip(tokens, values, tops, offsets):
        alternatives = tuple(
            (_token_id({"token": t}), t, math.exp(v)) for t, v in sorted((top or {}).items(), key=lambda kv: -kv[1])
        )
        prob = None if value is None else math.exp(float(value))
        out.append(RemoteToken(_token_id({"token": token}), str(token), prob, alternatives, offset))
    return out


def split_echo(prompt: str, delta: str, tokens: list[RemoteToken]) -> tuple[str, list[RemoteToken], list[RemoteToken]]:
    """The first chunk of an echoed completion: (its completion text, the prompt's tokens, the
    completion's tokens). Tokens that start inside the prompt (text_offset) are the prompt's."""
    if not delta.startswith(prompt):
        raise RemoteEngineError("the engine was asked to echo the prompt (prompt_logprobs) and did not.")
    inside = [t for t in tokens if t.text_offset is not None and t.text_offset < len(prompt)]
    return delta[len(prompt):], inside, tokens[len(inside):]


def prompt_summary(tokens: list[RemoteToken]) -> dict[str, Any]:
    """The prompt's logprobs as the API and the run log keep them, with the mean surprisal (bits)
    of the tokens that have one (the first has none: nothing comes before it)."""
    rows = [{"text": t.text, "token_id": t.token_id, "prob": t.prob} for t in tokens]
    bits = [-math.log2(max(t.prob, 1e-45)) for t in tokens if t.prob is not None]
    worst = max((t for t in tokens if t.prob is not None), key=lambda t: -math.log2(max(t.prob or 0, 1e-45)), default=None)
    return {
        "tokens": rows,
        "mean_surprisal_bits": sum(bits) / len(bits) if bits else None,
        "most_surprising": None if worst is None else {"text": worst.text, "prob": worst.prob},
    }


def step_of(token: RemoteToken, position: int, elapsed: float, probabilities: str) -> TokenStep:
    """A TokenStep whose one known distribution is `probabilities` (the other stays None)."""
    raw = probabilities == "raw"
    alternatives = tuple(
        Alternative(token_id, text, None if raw else p, p if raw else None) for token_id, text, p in token.alternatives
    )
    return TokenStep(
        position=position, token_id=token.token_id, text=token.text,
        prob=None if raw else token.prob, raw_prob=token.prob if raw else None,
        entropy=None, raw_entropy=None, alternatives=alternatives, elapsed_s=elapsed, probabilities=probabilities,
    )


@dataclass(frozen=True)
class RemoteAnswer:
    """What the stream ended with (its text is what the deltas add up to)."""

    finish_reason: str | None  # the engine's: "stop", "length", or None (cut off)
    stop_reason: object  # vLLM: the stop string (str) or token id (int) that ended it
    usage: Mapping[str, Any]
    timings: Mapping[str, Any]  # llama.cpp's own: prompt_ms, predicted_per_token_ms, ...


class RemoteStream:
    """One streamed completion: iterate for (text delta, tokens) pairs; `answer` when it ends."""

    def __init__(self, source: RemoteSource, body: Mapping[str, Any], cancel: threading.Event) -> None:
        self.source, self.body, self.cancel = source, body, cancel
        self.answer: RemoteAnswer | None = None
        self.cancelled = False

    def __iter__(self) -> Iterator[tuple[str, list[RemoteToken]]]:
        source = self.source
        finish, stop_reason, usage, timings = None, None, {}, {}
        url = f"{source.base_url}/completions"
        timeout = httpx.Timeout(source.timeout_s, connect=5.0)
        try:
            with httpx.Client(timeout=timeout) as client, client.stream(
                "POST", url, json=dict(self.body), headers=source.headers()
            ) as response:
                if response.status_code != 200:
                    raise RemoteEngineError(
                        f"the engine ({source.label}) refused the request: HTTP {response.status_code}: "
                        f"{_error_message(response.read())}"
                    )
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    # an engine that ignored stream=true answers with one JSON body: one chunk
                    lines: Iterator[str] = iter(["data: " + " ".join(response.read().decode("utf-8").split())])
                else:
                    lines = response.iter_lines()
                for line in lines:
                    if self.cancel.is_set():  # Stop: closing the connection ends the engine's generation
                        self.cancelled = True
                        break
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if not isinstance(chunk, dict):
                        raise RemoteEngineError(f"the engine ({source.label}) sent {data[:80]!r}, not an OpenAI completion.")
                    if "error" in chunk:
                        raise RemoteEngineError(f"the engine ({source.label}) failed: {_error_message(data.encode())}")
                    usage = chunk.get("usage") or usage
                    timings = chunk.get("timings") or timings
                    for choice in chunk.get("choices") or []:
                        delta = str(choice.get("text") or "")
                        finish = choice.get("finish_reason") or finish
                        stop_reason = choice.get("stop_reason", stop_reason)
                        yield delta, parse_logprobs(choice.get("logprobs"))
        except httpx.TransportError as exc:
            raise ModelUnavailableError(
                f"the engine ({source.label}) is not answering ({type(exc).__name__}: {exc}). The other models keep working."
            ) from exc
        except json.JSONDecodeError as exc:
            raise RemoteEngineError(f"the engine ({source.label}) sent something that is not JSON ({exc}).") from exc
        self.answer = RemoteAnswer(finish, stop_reason, usage, timings)


def _error_message(content: bytes) -> str:
    try:
        data = json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace")[:300]
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        return str(error.get("message", error))[:300]
    return str(error)[:300]


# -- a run ------------------------------------------------------------------------------------


def prepare_params(params: DecodingParams) -> DecodingParams:
    """The parameters as a remote run applies them: the seed filled in when none was given (so
    that a sampled run can be repeated on an engine that honours seeds)."""
    return params if params.seed is not None else replace(params, seed=secrets.randbelow(2**31))


def run_remote(source: RemoteSource, prompt: str, params: DecodingParams, cancel: threading.Event, max_context: int) -> Iterator[Any]:
    """Stream a remote run: TokenEvents, then GenerationDone (the events of backend.generation)."""
    from backend.generation import FinishReason, GeneratedSequence, GenerationDone, GenerationResult, TokenEvent

    body = request_body(source, prompt, params, max_context)
    stream = RemoteStream(source, body, cancel)
    start = time.perf_counter()
    steps: list[TokenStep] = []
    times: list[float] = []
    prompt_tokens_seen: list[RemoteToken] | None = None
    completion: list[str] = []
    for delta, tokens in stream:
        now = time.perf_counter()
        if source.prompt_logprobs and prompt_tokens_seen is None:
            delta, prompt_tokens_seen, tokens = split_echo(prompt, delta, tokens)
            if not delta and not tokens:
                continue
        completion.append(delta)
        if not tokens and delta:  # an engine that sent no logprobs: the text, without evidence
            tokens = [RemoteToken(-1, delta, None, ())]
        for token in tokens:
            step = step_of(token, len(steps), now - start, source.probabilities if token.prob is not None else "none")
            steps.append(step)
            times.append(now)
            yield TokenEvent(step)
    end = time.perf_counter()
    answer = stream.answer or RemoteAnswer(None, None, {}, {})
    text = "".join(completion)
    if stream.cancelled:
        reason = FinishReason.CANCELLED
    elif answer.finish_reason == "length":
        reason = FinishReason.LENGTH
    elif isinstance(answer.stop_reason, str):
        reason = FinishReason.STOP_SEQUENCE
    elif answer.finish_reason == "stop" and params.stop_sequences and not isinstance(answer.stop_reason, int):
        reason = FinishReason.STOP  # llama.cpp says "stop" for both an end token and a stop sequence
    elif answer.finish_reason == "stop":
        reason = FinishReason.EOS
    else:
        reason = FinishReason.CANCELLED if cancel.is_set() else FinishReason.LENGTH
    prompt_tokens = int(answer.usage.get("prompt_tokens") or answer.timings.get("prompt_n") or 0)
    metrics = RunMetrics.from_times(
        start=start, token_times=times, end=end, prompt_tokens=prompt_tokens, peak_memory_bytes=None, memory_kind=None
    )
    notes = [
        f"served by the remote engine {source.engine}; its per-token probabilities are the engine's {source.probabilities} ones "
        f"({'the model softmax' if source.probabilities == 'raw' else 'after its sampling chain'}), the other distribution is not reported",
        "times measured at this app (the client), network included",
    ]
    if answer.timings:
        t = answer.timings
        notes.append(
            f"the engine's own timings: prompt {t.get('prompt_n', '?')} tokens in {float(t.get('prompt_ms', 0)):.1f} ms, "
            f"{float(t.get('predicted_per_token_ms', 0)):.1f} ms per output token"
        )
    prompt_json = None if prompt_tokens_seen is None else prompt_summary(prompt_tokens_seen)
    if prompt_json is not None and prompt_json["mean_surprisal_bits"] is not None:
        worst = prompt_json["most_surprising"]
        notes.append(
            f"the prompt's own logprobs (echo): mean surprisal {prompt_json['mean_surprisal_bits']:.2f} bits per token; "
            f"the most surprising token {worst['text']!r} (p {worst['prob']:.4f})"
        )
    sequence = GeneratedSequence(text, tuple(s.token_id for s in steps), None, reason, tuple(steps))
    chain = build_chain(params, prompt_length=0, eos_token_ids=())
    result = GenerationResult(
        (sequence,), metrics, int(params.seed or 0), params, chain, tuple(notes), (), None,
        max_context, prompt_tokens + len(steps), None, remote={"engine": source.engine, "base_url": source.base_url,
                                                             "model": source.model, "probabilities": source.probabilities,
                                                             "timings": dict(answer.timings), "prompt_logprobs": prompt_json},
    )
    yield GenerationDone(result)
