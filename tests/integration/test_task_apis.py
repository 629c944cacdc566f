"""Every task tab through its public API: a JSON result with a logged run_id, and bad input
answered with a clear message, logged as an error, the app still serving."""

from __future__ import annotations

import html
import json

import httpx
import pytest
from gradio_client import Client

from backend.runlog import Run


@pytest.fixture(scope="module")
def client(served_app) -> Client:
    url, _ = served_app
    return Client(url, verbose=False)


def logged(served_app, run_id: int) -> Run:
    from sqlalchemy.orm import selectinload

    _, playground = served_app
    with playground.runlog.session() as session:
        return session.get(Run, run_id, options=[selectinload(Run.steps)])


def last_run(served_app) -> Run:
    from sqlalchemy import select

    _, playground = served_app
    with playground.runlog.session() as session:
        return session.scalars(select(Run).order_by(Run.id.desc())).first()


CALLS = {
    "/text_classification": dict(model="tiny-classifier", text="A fine day."),
    "/zero_shot_classification": dict(
        model="tiny-nli", text="The striker scored.", candidate_labels="sports, politics",
        hypothesis_template="This example is {}.", multi_label=False,
    ),
    "/token_classification": dict(model="tiny-ner", text="Alice lives in Paris.", aggregation_strategy="simple"),
    "/question_answering": dict(
        model="tiny-qa", question="Where does Alice live?", context="Alice lives in Paris with her cat.",
        top_n=3, max_answer_len=10, doc_stride=16,
    ),
    "/fill_mask": dict(model="tiny-bert-mlm", text="Alice lives in [MASK].", top_k=4),
    "/bias_probe": dict(model="tiny-bert-mlm", text_a="This man works as a [MASK].", text_b="This woman works as a [MASK].", top_k=4),
    "/feature_extraction": dict(model="minilm", sentences="A cat sits.\nA kitten rests.", pooling="mean"),
    "/bias_statistics": dict(
        model="minilm", template_a="This man works as a {}.", template_b="This woman works as a {}.",
        occupations="nurse\nmaid\ncarpenter\ndoctor\nmechanic",
    ),
}


@pytest.mark.parametrize("api_name", list(CALLS))
def test_each_task_returns_a_logged_json_result(client: Client, served_app, api_name: str) -> None:
    out = client.predict(api_name=api_name, **CALLS[api_name])
    result = out[-1]
    assert isinstance(result["run_id"], int)
    run = logged(served_app, result["run_id"])
    assert run.status == "ok" and run.model == CALLS[api_name]["model"]
    assert run.result is not None and run.total_s > 0


def test_task_specific_results(client: Client) -> None:
    classes = client.predict(api_name="/text_classification", **CALLS["/text_classification"])[-1]
    assert {s["label"] for s in classes["scores"]} == {"NEGATIVE", "POSITIVE"}
    assert abs(sum(s["score"] for s in classes["scores"]) - 1) < 1e-5
    fills = client.predict(api_name="/fill_mask", **CALLS["/fill_mask"])[-1]
    assert fills["mask_token"] == "[MASK]" and len(fills["fills"]) == 4
    probe = client.predict(api_name="/bias_probe", **CALLS["/bias_probe"])[-1]
    assert probe["rows"] and {"score_a", "score_b"} <= probe["rows"][0].keys()
    qa = client.predict(api_name="/question_answering", **CALLS["/question_answering"])[-1]
    context = CALLS["/question_answering"]["context"]
    best = qa["answers"][0]
    assert context[best["start"] : best["end"]] == best["text"] and len(qa["answers"]) <= 3
    out = client.predict(api_name="/feature_extraction", **CALLS["/feature_extraction"])
    embeddings = out[-1]
    assert embeddings["dimension"] == 384 and len(embeddings["vectors"]) == 2
    assert out[3].endswith(".csv")  # the vectors as a download
    stats = client.predict(api_name="/bias_statistics", **CALLS["/bias_statistics"])[-1]
    assert [r["occupation"] for r in stats["rows"]][-1] in {"nurse", "maid"}  # the real MiniLM's lean
    assert {"effect_size", "p_value"} <= stats.keys() and stats["exact"] and stats["flips"] == 32
    on_mlm = client.predict(api_name="/bias_statistics", **{**CALLS["/bias_statistics"], "model": "tiny-bert-mlm"})[-1]
    assert on_mlm["method"] == "fill-mask" and len(on_mlm["rows"]) == 5
    ner = client.predict(api_name="/token_classification", **CALLS["/token_classification"])[-1]
    assert "".join(segment for segment, _ in ner["highlighted"]) == CALLS["/token_classification"]["text"]


@pytest.mark.parametrize("api_name", ["/summarization", "/translation"])
def test_encoder_decoder_tabs_stream_through_the_shared_engine(client: Client, served_app, api_name: str) -> None:
    model = "tiny-summarizer" if api_name == "/summarization" else "tiny-translator"
    job = client.submit(model=model, text="Le chat dort sur le canapé.", max_new_tokens=12, api_name=api_name)
    for _ in job:
        pass
    result = job.outputs()[-1][-1]
    assert result["tokens"] and len(result["tokens"]) <= 12
    run = logged(served_app, result["run_id"])
    assert run.task == api_name.strip("/").replace("_", "-") and run.input == {"text": "Le chat dort sur le canapé."}
    assert len(run.steps) == len(result["tokens"])


BAD = [
    ("/text_classification", dict(model="tiny-classifier", text="  "), "text"),
    ("/zero_shot_classification", {**CALLS["/zero_shot_classification"], "candidate_labels": " , "}, "label"),
    ("/zero_shot_classification", {**CALLS["/zero_shot_classification"], "candidate_labels": "sports, Sports"}, "labels must all be different"),
    ("/fill_mask", dict(model="tiny-bert-mlm", text="No blank here.", top_k=3), "[MASK]"),
    ("/fill_mask", dict(model="tiny-bert-mlm", text="[MASK] and [MASK].", top_k=3), "got 2"),
    ("/fill_mask", dict(model="tiny-roberta-mlm", text="Alice lives in [MASK].", top_k=3), "<mask>"),
    ("/question_answering", {**CALLS["/question_answering"], "question": ""}, "question"),
    ("/question_answering", {**CALLS["/question_answering"], "context": " "}, "context"),
    ("/text_classification", dict(model="tiny-ner", text="Alice"), "this tab needs a text-classification model"),
    ("/feature_extraction", dict(model="minilm", sentences="\n \n", pooling="mean"), "sentences"),
    # inputs outside the decoding panel: the app's own rule, naming the field (not Gradio's)
    ("/question_answering", {**CALLS["/question_answering"], "top_n": 0}, "top_n must be an integer in [1, 20], got 0."),
    ("/question_answering", {**CALLS["/question_answering"], "doc_stride": -1}, "doc_stride must be an integer >= 0, got -1."),
    ("/question_answering", {**CALLS["/question_answering"], "top_n": 2.5}, "top_n must be an integer in [1, 20], got 2.5."),
    ("/fill_mask", dict(model="tiny-bert-mlm", text="Alice lives in [MASK].", top_k=0), "top_k must be an integer in [1, "),
    ("/token_classification", {**CALLS["/token_classification"], "aggregation_strategy": "bogus"},
     "aggregation_strategy must be one of none, simple, first, average, max, got 'bogus'."),
    ("/feature_extraction", {**CALLS["/feature_extraction"], "pooling": "max"}, "pooling must be one of mean, cls, got 'max'."),
    # a missing text
    ("/text_classification", dict(model="tiny-classifier", text=None), "text must be non-empty text, got None."),
    ("/feature_extraction", dict(model="minilm", sentences=None, pooling="mean"), "sentences must be non-empty text, got None."),
    ("/zero_shot_classification", {**CALLS["/zero_shot_classification"], "candidate_labels": None}, "labels must be"),
    ("/question_answering", {**CALLS["/question_answering"], "question": None}, "question must be non-empty text, got None."),
    ("/fill_mask", dict(model="tiny-bert-mlm", text=None, top_k=3), "text must be non-empty text, got None."),
    ("/bias_statistics", {**CALLS["/bias_statistics"], "template_a": "This man works."}, "template_a must contain {} exactly once"),
    ("/bias_statistics", {**CALLS["/bias_statistics"], "occupations": "nurse\ndoctor"}, "between 3 and 120 distinct occupations"),
    ("/bias_statistics", {**CALLS["/bias_statistics"], "occupations": None}, "occupations must be non-empty text, got None."),
    ("/bias_statistics", {**CALLS["/bias_statistics"], "model": "tiny-classifier"},
     "model must be a fill-mask or feature-extraction model (tiny-bert-mlm, tiny-roberta-mlm, minilm), got 'tiny-classifier'."),
    # the generative tabs name their own field
    ("/summarization", dict(model="tiny-summarizer", text=" "), "text must be non-empty text, got ' '."),
    ("/translation", dict(model="tiny-translator", text=None), "text must be non-empty text, got None."),
    ("/text_generation", dict(model="tiny-gpt2", prompt=None), "prompt must be non-empty text, got None."),
    ("/compare", dict(model="tiny-gpt2", prompt="Return the", params_a={}, params_b={"top_p": 1.3}),
     "params_b.top_p must be in (0, 1], got 1.3."),
    ("/compare", dict(model="tiny-gpt2", prompt="Return the", params_a={"use_cache": "no"}, params_b={}),
     "params_a.use_cache must be true or false"),
    ("/compare", dict(model="tiny-gpt2", prompt=" ", params_a={}, params_b={}), "prompt must be non-empty text, got ' '."),
    ("/compare", dict(model="tiny-classifier", prompt="x", params_a={}, params_b={}),
     "model must be a text generation, summarization or translation model, got 'tiny-classifier'."),
]


@pytest.mark.parametrize(("api_name", "kwargs", "fragment"), BAD, ids=[f"{a}-{i}" for i, (a, _, _) in enumerate(BAD)])
def test_bad_input_is_refused_clearly_and_logged(client: Client, served_app, api_name: str, kwargs: dict, fragment: str) -> None:
    with pytest.raises(Exception) as info:
        client.predict(api_name=api_name, **kwargs)
    assert fragment in html.unescape(str(info.value))  # "<" comes escaped: Gradio shows messages as HTML
    run = last_run(served_app)
    assert run.status == "error" and fragment in run.error
    ok = client.predict(api_name="/text_classification", **CALLS["/text_classification"])[-1]
    assert ok["run_id"] > run.id  # still serving


# What gradio_client cannot send (it refuses NaN and lone surrogates) but a raw HTTP client can.
RAW = [
    ("/question_answering", {**CALLS["/question_answering"], "max_answer_len": float("nan")}, "max_answer_len must be an integer in [1, 512], got nan."),
    ("/bias_probe", {**CALLS["/bias_probe"], "top_k": float("nan")}, "top_k must be an integer in [1, "),
    ("/fill_mask", dict(model="tiny-bert-mlm", text="Alice lives in [MASK].", top_k=float("inf")), "top_k must be an integer in [1, "),
    ("/compare", dict(model="tiny-gpt2", prompt="abc", params_a={"temperature": float("nan")}, params_b={}),
     "params_a.temperature must be"),
    ("/compare", dict(model="tiny-gpt2", prompt="abc\ud800def", params_a={}, params_b={}),
     "prompt must be valid Unicode text, got a lone surrogate (U+D800) at character 3"),
    ("/bias_statistics", {**CALLS["/bias_statistics"], "template_b": "She {} \udfff"}, "template_b must be valid Unicode text"),
    ("/text_generation", dict(model="tiny-gpt2", prompt="abc\ud800def"), "prompt must be valid Unicode text, got a lone surrogate (U+D800) at character 3"),
    ("/text_classification", dict(model="tiny-classifier", text="\udfff"), "text must be valid Unicode text, got a lone surrogate (U+DFFF) at character 0"),
    ("/summarization", dict(model="tiny-summarizer", text="x\ud83d"), "text must be valid Unicode text, got a lone surrogate (U+D83D) at character 1"),
]


def raw_call(client: Client, url: str, api_name: str, kwargs: dict) -> tuple[str, dict]:
    """POST /gradio_api/call/<api> with JSON as Python writes it (NaN allowed, \\u escapes), then read
    the event stream: (event, data) of its last event."""
    parameters = client.view_api(return_format="dict", print_info=False)["named_endpoints"][api_name]["parameters"]
    data = [kwargs.get(p["parameter_name"], p.get("parameter_default")) for p in parameters]
    body = json.dumps({"data": data}, ensure_ascii=True, allow_nan=True)
    started = httpx.post(f"{url}/gradio_api/call{api_name}", content=body, headers={"content-type": "application/json"})
    started.raise_for_status()
    with httpx.stream("GET", f"{url}/gradio_api/call{api_name}/{started.json()['event_id']}", timeout=60) as stream:
        lines = [line for line in stream.iter_lines() if line]
    event = [line for line in lines if line.startswith("event:")][-1].split(":", 1)[1].strip()
    return event, json.loads([line for line in lines if line.startswith("data:")][-1].split(":", 1)[1])


@pytest.mark.parametrize(("api_name", "kwargs", "fragment"), RAW, ids=[f"{a}-{i}" for i, (a, _, _) in enumerate(RAW)])
def test_what_only_a_raw_client_sends_is_refused_clearly_and_logged(client: Client, served_app, api_name: str, kwargs: dict, fragment: str) -> None:
    url, _ = served_app
    event, data = raw_call(client, url, api_name, kwargs)
    assert event == "error" and fragment in html.unescape(data["error"]), data
    run = last_run(served_app)
    assert run.status == "error" and fragment in run.error


def test_long_input_is_cut_and_the_result_says_so(client: Client) -> None:
    out = client.predict(api_name="/text_classification", model="tiny-classifier", text="word " * 500)[-1]
    assert out["truncated"] and any("64" in note for note in out["notes"])


def test_question_answering_offers_whole_words_and_no_answer(client: Client) -> None:
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/question_answering"]
    assert [p["parameter_name"] for p in api["parameters"]] == [
        "model", "question", "context", "top_n", "max_answer_len", "doc_stride", "align_to_words", "handle_impossible_answer",
    ]
    call = CALLS["/question_answering"]
    aligned = client.predict(api_name="/question_answering", **call)[-1]
    assert aligned["no_answer_score"] is None
    # the tokenizer's words: runs of letters and digits, and each punctuation mark alone (BERT's pre-tokenizer)
    words = {(m.start(), m.end()) for m in __import__("re").finditer(r"\w+|[^\w\s]", call["context"])}
    starts, ends = {s for s, _ in words}, {e for _, e in words}
    for a in aligned["answers"]:  # every answer starts and ends at a word's edge ("with her cat." may end at the dot)
        assert a["start"] in starts | {e for e in ends} and a["end"] in ends | starts
    with_null = client.predict(api_name="/question_answering", handle_impossible_answer=True, **call)[-1]
    assert isinstance(with_null["no_answer_score"], float)
    with pytest.raises(Exception, match="align_to_words must be true or false, got 'maybe'."):
        client.predict(api_name="/question_answering", align_to_words="maybe", **call)
