"""Extractive QA on tiny random BERT, DistilBERT and RoBERTa models, checked against a brute-force
search over every valid (start, end) pair of the raw logits, window by window."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import replace

import pytest
import torch

from backend.errors import InputError, ParameterError, TaskMismatchError
from backend.registry import Family, LoadedModel, ModelRegistry, ModelSpec, Task
from backend.tasks.question_answering import QAResult, answer
from tests.tiny_qa import ARCHITECTURES, WINDOW, build_tiny_qa

QUESTION = "Where does the zebra live?"
LONG_CONTEXT = " ".join(
    [
        "The zebra lives near the giraffe on the wide plain.",
        "The socket module provides access to the BSD socket interface.",
        "Café crème and naïve résumé: accents are characters too.",
        "Return the number of items in the container.",
    ]
    * 4
)
#: The BERT whose tokenizer pads on the left: it reads the context before the question.
CONTEXT_FIRST = "bert-context-first"


@pytest.fixture(scope="session")
def qa_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LoadedModel]:
    specs = []
    for name in (*ARCHITECTURES, CONTEXT_FIRST):
        architecture, padding_side = ("bert", "left") if name == CONTEXT_FIRST else (name, "right")
        folder = build_tiny_qa(tmp_path_factory.mktemp(name), architecture, padding_side=padding_side)
        specs.append(ModelSpec(name, Task.QUESTION_ANSWERING, Family.ENCODER, f"tiny {name}", WINDOW, path=folder))
    registry = ModelRegistry(tuple(specs), max_loaded=len(specs), device="cpu", offline=True)
    return {spec.name: registry.get(spec.name, Task.QUESTION_ANSWERING) for spec in specs}


# -- an independent reference -----------------------------------------------------------------


def brute_force(
    loaded: LoadedModel, question: str, context: str, *, max_answer_len: int, stride: int, question_first: bool = True
) -> list[tuple[tuple[int, int], float]]:
    """Every valid span of every window, scored from the raw logits with plain Python loops:
    p = exp(logit) / sum of exp over the window's context tokens, score = p_start * p_end; a
    character span keeps its best score. Best first."""
    tokenizer = loaded.tokenizer
    pair = (question, context) if question_first else (context, question)
    encoded = tokenizer(
        *pair,
        truncation="only_second" if question_first else "only_first",
        max_length=WINDOW,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    context_id = 1 if question_first else 0
    best: dict[tuple[int, int], float] = {}
    for w in range(len(encoded["input_ids"])):
        # one window at a time, exactly the inputs the tokenizer made for the model
        inputs = {
            k: torch.tensor([encoded[k][w]])
            for k in encoded
            if k not in ("offset_mapping", "overflow_to_sample_mapping")
        }
        with torch.no_grad():
            out = loaded.model(**inputs)
        starts, ends = out.start_logits[0].tolist(), out.end_logits[0].tolist()
        offsets = encoded["offset_mapping"][w]
        tokens = [i for i, s in enumerate(encoded.sequence_ids(w)) if s == context_id]
        z_start = sum(math.exp(starts[i]) for i in tokens)
        z_end = sum(math.exp(ends[i]) for i in tokens)
        for i in tokens:
            for j in tokens:
                if not i <= j < i + max_answer_len:
                    continue
                span = (offsets[i][0], offsets[j][1])
                if span[1] <= span[0]:
                    continue
                score = math.exp(starts[i]) / z_start * math.exp(ends[j]) / z_end
                best[span] = max(best.get(span, 0.0), score)
    return sorted(best.items(), key=lambda item: item[1], reverse=True)


def steer(monkeypatch: pytest.MonkeyPatch, loaded: LoadedModel, *, start: int, end: int, boost: float = 40.0) -> None:
    """Wrap the model's forward so that token id `start` gets a large start logit and `end` a
    large end logit wherever they occur: the best span is then known in advance."""
    original = loaded.model.forward

    @functools.wraps(original)
    def forward(*args, **kwargs):
        out = original(*args, **kwargs)
        ids = kwargs["input_ids"]
        out.start_logits[ids == start] += boost
        out.end_logits[ids == end] += boost
        return out

    monkeypatch.setattr(loaded.model, "forward", forward)


def single_token(loaded: LoadedModel, word: str) -> int:
    ids = loaded.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    assert len(ids) == 1, f"{word!r} must be one token for this test, got {ids}"
    return ids[0]


def edge_context(loaded: LoadedModel, question: str) -> str:
    """A context whose token `zebra` is the last context token of the first window, followed by
    `giraffe`, the first context token the first window does not hold."""
    tokenizer = loaded.tokenizer
    question_tokens = len(tokenizer(question, add_special_tokens=False)["input_ids"])
    room = WINDOW - question_tokens - tokenizer.num_special_tokens_to_add(pair=True)
    zebra = single_token(loaded, "zebra")
    for fillers in range(1, room + 4):  # at least one: a leading word has no space before it
        context = " ".join(["the"] * fillers + ["zebra", "giraffe"] + ["the"] * 40)
        ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        if ids.index(zebra) == room - 1:
            return context
    raise AssertionError("could not place zebra at the window edge")


def check_invariants(result: QAResult, context: str, top_n: int, max_answer_len: int) -> None:
    assert 1 <= len(result.answers) <= top_n
    assert [a.score for a in result.answers] == sorted((a.score for a in result.answers), reverse=True)
    assert len({(a.start, a.end) for a in result.answers}) == len(result.answers)  # each span once
    for a in result.answers:
        assert a.text == context[a.start : a.end] and a.text
        assert 0.0 < a.score <= 1.0
        assert 1 <= a.tokens <= max_answer_len
        assert 0 <= a.window < len(result.windows)
    json.dumps(result.to_json())  # plain JSON values only


# -- answers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_answers_are_ranked_distinct_spans_of_the_context(qa_models, name) -> None:
    context = "The zebra lives near the giraffe on the wide plain."
    result = answer(qa_models[name], QUESTION, context, top_n=5, max_answer_len=4)
    check_invariants(result, context, 5, 4)
    assert len(result.answers) == 5
    assert len(result.windows) == 1 and result.notes[0] == f"context fits in one window of {WINDOW} tokens"
    assert result.best == result.answers[0] and result.no_answer_score is None
    assert result.summary == f"{result.best.text!r} ({result.best.score:.3f})"
    payload = result.to_json()
    assert payload["answer"] == result.best.text and payload["answers"][0]["start"] == result.best.start
    # the evidence is the window's context tokens, with p(start) and p(end) each summing to 1
    assert sum(e.p_start for e in result.evidence) == pytest.approx(1.0, abs=1e-5)
    assert sum(e.p_end for e in result.evidence) == pytest.approx(1.0, abs=1e-5)
    assert all(context[e.start : e.end] == e.text for e in result.evidence)


@pytest.mark.parametrize("name", (*ARCHITECTURES, CONTEXT_FIRST))
def test_top_spans_equal_a_brute_force_search_of_the_raw_logits(qa_models, name) -> None:
    loaded = qa_models[name]
    result = answer(loaded, QUESTION, LONG_CONTEXT, top_n=5, max_answer_len=6, doc_stride=16)
    expected = brute_force(
        loaded, QUESTION, LONG_CONTEXT, max_answer_len=6, stride=16, question_first=name != CONTEXT_FIRST
    )
    assert len(result.windows) > 2  # the search really merged several windows
    assert [(a.start, a.end) for a in result.answers] == [span for span, _ in expected[:5]]
    assert [a.score for a in result.answers] == pytest.approx([score for _, score in expected[:5]], rel=1e-4)
    check_invariants(result, LONG_CONTEXT, 5, 6)
    if name == CONTEXT_FIRST:
        assert "the context comes before the question (the tokenizer pads on the left)" in result.notes


@pytest.mark.parametrize("name", (*ARCHITECTURES, CONTEXT_FIRST))
def test_a_short_context_yields_each_of_its_spans_and_nothing_else(qa_models, name) -> None:
    loaded = qa_models[name]
    context = "The zebra lives near."
    result = answer(loaded, QUESTION, context, top_n=20, max_answer_len=30)
    expected = brute_force(
        loaded, QUESTION, context, max_answer_len=30, stride=0, question_first=name != CONTEXT_FIRST
    )
    assert len(expected) < 20  # fewer spans than asked for: all of them come back, none made up
    assert sorted((a.start, a.end) for a in result.answers) == sorted(span for span, _ in expected)
    assert all(a.score > 0 for a in result.answers)


def test_max_answer_len_bounds_the_spans(qa_models) -> None:
    loaded = qa_models["bert"]
    result = answer(loaded, QUESTION, LONG_CONTEXT, top_n=3, max_answer_len=1, doc_stride=16)
    assert all(a.tokens == 1 for a in result.answers)
    expected = brute_force(loaded, QUESTION, LONG_CONTEXT, max_answer_len=1, stride=16)
    assert [(a.start, a.end) for a in result.answers] == [span for span, _ in expected[:3]]


# -- windows ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stride", [0, 10, 30])
def test_a_long_context_is_read_in_overlapping_windows(qa_models, stride) -> None:
    loaded = qa_models["roberta"]
    tokenizer = loaded.tokenizer
    result = answer(loaded, QUESTION, LONG_CONTEXT, doc_stride=stride)
    n_context = len(tokenizer(LONG_CONTEXT, add_special_tokens=False)["input_ids"])
    room = WINDOW - len(tokenizer(QUESTION, add_special_tokens=False)["input_ids"]) - 4  # <s> Q </s></s> C </s>
    # the first window holds `room` context tokens, every further one `room - stride` new ones
    expected_windows = 1 + math.ceil((n_context - room) / (room - stride))
    assert len(result.windows) == expected_windows > 3
    assert result.context_tokens == n_context and result.doc_stride == stride
    assert result.notes[0] == (
        f"context split into {expected_windows} overlapping windows of {WINDOW} tokens ({room} context tokens "
        f"each next to the {result.question_tokens}-token question; neighbours share {stride})"
    )
    assert all(w.tokens == room for w in result.windows[:-1])
    assert result.windows[0].start == 0 and result.windows[-1].end == len(LONG_CONTEXT)
    for before, after in zip(result.windows, result.windows[1:]):
        assert (after.start < before.end) if stride else (after.start >= before.end)
    assert result.input_tokens == sum(WINDOW for _ in result.windows[:-1]) + (
        result.windows[-1].tokens + result.question_tokens + 4
    )


def test_default_doc_stride_is_fitted_to_a_small_window_with_a_note(qa_models) -> None:
    result = answer(qa_models["bert"], QUESTION, LONG_CONTEXT)
    room = result.windows[0].tokens
    assert result.doc_stride == room // 2
    assert result.notes[0] == (
        f"doc_stride set to {room // 2}: half of the {room} context tokens a window holds "
        "(the default 128 does not fit)"
    )


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_an_answer_cut_by_a_window_edge_is_found_whole_in_the_next_window(qa_models, monkeypatch, name) -> None:
    loaded = qa_models[name]
    context = edge_context(loaded, QUESTION)
    zebra_at = context.index("zebra")
    steer(monkeypatch, loaded, start=single_token(loaded, "zebra"), end=single_token(loaded, "giraffe"))

    overlapping = answer(loaded, QUESTION, context, top_n=3, doc_stride=8)
    assert overlapping.windows[0].end == zebra_at + len("zebra")  # zebra closes the first window
    best = overlapping.best
    assert (best.text, best.start, best.window) == ("zebra giraffe", zebra_at, 1)
    assert best.score > 0.9

    # with no overlap no window holds both words: the span cannot be found
    disjoint = answer(loaded, QUESTION, context, top_n=3, doc_stride=0)
    assert all(a.text != "zebra giraffe" for a in disjoint.answers)
    assert disjoint.best.score < 0.9


def test_an_answer_on_a_window_edge_seen_by_two_windows_is_listed_once(qa_models, monkeypatch) -> None:
    loaded = qa_models["bert"]
    context = edge_context(loaded, QUESTION)
    zebra = single_token(loaded, "zebra")
    steer(monkeypatch, loaded, start=zebra, end=zebra)
    result = answer(loaded, QUESTION, context, top_n=5, doc_stride=8)
    zebra_span = (context.index("zebra"), context.index("zebra") + len("zebra"))
    assert [(a.start, a.end) for a in result.answers].count(zebra_span) == 1
    assert (result.best.start, result.best.end) == zebra_span and result.best.window in (0, 1)
    assert len(result.windows) >= 2


# -- "no answer" -------------------------------------------------------------------------------


def test_no_answer_wins_when_the_cls_token_scores_highest(qa_models, monkeypatch) -> None:
    loaded = qa_models["bert"]
    context = "The zebra lives near the giraffe on the wide plain."
    plain = answer(loaded, QUESTION, context, handle_impossible_answer=True)
    assert plain.no_answer_score is not None and 0.0 < plain.no_answer_score < 1.0
    assert (
        "scores: softmax over the context tokens and [CLS] ('no answer') of each window, score = p(start) × p(end)"
        in plain.notes
    )

    cls = loaded.tokenizer.cls_token_id
    steer(monkeypatch, loaded, start=cls, end=cls)
    result = answer(loaded, QUESTION, context, handle_impossible_answer=True)
    assert result.no_answer_score > 0.99 and result.best is None
    assert result.answers  # the spans are still listed, below "no answer"
    assert result.summary == f"no answer ({result.no_answer_score:.3f})"
    assert result.to_json()["answer"] == ""
    # without handle_impossible_answer the [CLS] token is not a candidate at all
    forced = answer(loaded, QUESTION, context)
    assert forced.best is not None and forced.no_answer_score is None


def test_no_answer_over_several_windows_is_the_lowest_window_score(qa_models) -> None:
    result = answer(qa_models["distilbert"], QUESTION, LONG_CONTEXT, doc_stride=16, handle_impossible_answer=True)
    scores = [w.no_answer_score for w in result.windows]
    assert len(scores) > 2 and result.no_answer_score == min(scores)


# -- refusals ---------------------------------------------------------------------------------


def test_a_question_that_fills_the_window_leaves_no_room_for_the_context(qa_models) -> None:
    with pytest.raises(InputError) as caught:
        answer(qa_models["bert"], "zebra " * WINDOW, "The zebra lives near the giraffe.")
    assert caught.value.field == "question"
    assert f"reads {WINDOW} tokens at once, so no room is left for the context" in str(caught.value)


def test_a_context_with_no_readable_token_is_refused(qa_models) -> None:
    with pytest.raises(InputError) as caught:  # BERT's normaliser drops control characters
        answer(qa_models["bert"], QUESTION, "\x00\x01")
    assert caught.value.field == "context"


@pytest.mark.parametrize(
    ("question", "context", "field"), [("", "text", "question"), ("  ", "text", "question"), ("q?", "", "context")]
)
def test_empty_text_is_refused(qa_models, question, context, field) -> None:
    with pytest.raises(InputError) as caught:
        answer(qa_models["bert"], question, context)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"top_n": 0}, "top_n must be an integer in [1, 20], got 0."),
        ({"top_n": True}, "top_n must be an integer in [1, 20], got True."),
        ({"max_answer_len": 0}, "max_answer_len must be an integer in [1, 512], got 0."),
        ({"max_answer_len": 2.5}, "max_answer_len must be an integer in [1, 512], got 2.5."),
        ({"doc_stride": -1}, "doc_stride must be an integer >= 0, got -1."),
        ({"handle_impossible_answer": "yes"}, "handle_impossible_answer must be true or false, got 'yes'."),
    ],
)
def test_bad_numbers_are_refused_with_the_rule(qa_models, kwargs, message) -> None:
    with pytest.raises(ParameterError) as caught:
        answer(qa_models["bert"], QUESTION, "The zebra lives.", **kwargs)
    assert str(caught.value) == message and caught.value.field == next(iter(kwargs))


def test_doc_stride_must_be_below_the_context_tokens_of_a_window(qa_models) -> None:
    loaded = qa_models["bert"]
    room = answer(loaded, QUESTION, LONG_CONTEXT, doc_stride=0).windows[0].tokens
    answer(loaded, QUESTION, LONG_CONTEXT, doc_stride=room - 1)  # the largest overlap that fits
    with pytest.raises(ParameterError) as caught:
        answer(loaded, QUESTION, LONG_CONTEXT, doc_stride=room)
    assert str(caught.value).startswith(f"doc_stride must be < {room} (the context tokens a {WINDOW}-token window")


def test_a_model_of_another_task_is_refused(qa_models) -> None:
    loaded = qa_models["bert"]
    other = replace(loaded, spec=replace(loaded.spec, task=Task.FILL_MASK))
    with pytest.raises(TaskMismatchError):
        answer(other, QUESTION, "The zebra lives.")


# -- whole words ------------------------------------------------------------------------------


def pieces(loaded: LoadedModel, context: str, word: str) -> list[int]:
    """The token ids the tokenizer cuts `word` into, where it stands in `context`."""
    encoded = loaded.tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
    start = context.index(word)
    return [i for i, (s, e) in zip(encoded["input_ids"], encoded["offset_mapping"]) if start <= s < start + len(word)]


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_answers_are_aligned_to_whole_words_unless_asked_not_to(qa_models, monkeypatch, name) -> None:
    loaded = qa_models[name]
    context = "The zebra lives in socketmodule with friends."
    cut = pieces(loaded, context, "socketmodule")
    assert len(cut) >= 3, "the test needs a word the tokenizer cuts into pieces"
    steer(monkeypatch, loaded, start=single_token(loaded, "zebra"), end=cut[1])  # the best span ends inside the word
    raw = answer(loaded, QUESTION, context, top_n=3, align_to_words=False)
    assert raw.answers[0].text.startswith("zebra lives in socket") and raw.answers[0].text != "zebra lives in socketmodule"
    aligned = answer(loaded, QUESTION, context, top_n=3)
    assert aligned.answers[0].text == "zebra lives in socketmodule"
    assert aligned.answers[0].score == pytest.approx(raw.answers[0].score)
    assert len({(a.start, a.end) for a in aligned.answers}) == len(aligned.answers)
    with pytest.raises(ParameterError, match="align_to_words must be true or false, got 'yes'."):
        answer(loaded, QUESTION, context, align_to_words="yes")
