"""The cost view, the beam tree drawing and the compare view's tables, as pure functions of the
API's JSON: numbers computed here, and everything that comes from a person or a model escaped."""

from __future__ import annotations

import json

import pytest

from backend.capture import TokenStep
from ui.render import tokens_html
from ui.views.beam_tree import beam_tree_json
from ui.views.compare import collect_params, metric_rows, stage_rows, summary_html
from ui.views.cost import cost_html, latency_json


def run_json(**overrides) -> dict:
    run = {
        "run_id": 7,
        "params": {"use_cache": True},
        "timeline": {"prefill_s": 0.02, "decode_s": 0.08, "total_s": 0.1, "token_times": [0.02, 0.04, 0.07, 0.1]},
        "kv_cache": {
            "tokens": 9, "formula_bytes": 9216, "formula": "2 × 2 layers × 2 KV heads × 32 dims × 4 bytes × 9 tokens",
            "measured_bytes": 9216, "sequences": 1, "cross_tokens": 0,
        },
        "kv_cache_bytes": 9216,
        "context": {"used": 10, "max": 128, "prompt": 6, "new": 4},
        "metrics": {"ttft_s": 0.02, "tpot_s": 0.027, "tokens_per_s": 40.0, "peak_memory_bytes": 2**30, "new_tokens": 4},
        "finish_reason": "length",
        "seed": 3,
    }
    run.update(overrides)
    return run


def test_cost_html_shows_the_context_the_timeline_and_the_cache() -> None:
    text = cost_html(run_json())
    assert "prompt 6 + new 4 = 10 of 128 tokens (8%)" in text
    assert "prefill (to the first token) 20.0 ms · decode 3 more tokens in 80.0 ms, 26.7 ms per token" in text
    assert "KV cache at the end: 9.0 KiB = 2 × 2 layers × 2 KV heads × 32 dims × 4 bytes × 9 tokens" in text
    assert "the cache tensors themselves: 9.0 KiB" in text
    assert 'width: 4.69%' in text and 'width: 3.12%' in text  # 6 and 4 of 128 tokens


def test_cost_html_of_a_run_without_cache_a_beam_run_and_a_seq2seq_run() -> None:
    no_cache = cost_html(run_json(kv_cache=None, kv_cache_bytes=None, params={"use_cache": False}))
    assert "KV cache: none (use_cache off)" in no_cache
    beams = cost_html(run_json(timeline={"prefill_s": None, "decode_s": None, "total_s": 0.5, "token_times": [0.5] * 4}))
    assert "500.0 ms in all (beam search" in beams
    seq2seq = cost_html(run_json(context={"used": 20, "max": 64, "prompt": 20, "new": 5}))
    assert "the source fills 20 of 64 tokens (31%); the decoder wrote 5 new tokens" in seq2seq
    remote = cost_html(run_json(kv_cache=None, kv_cache_bytes=None, remote={"engine": "<vllm>"}))
    assert "KV cache: kept by the remote engine (&lt;vllm&gt;), which does not report it" in remote
    assert cost_html(None) == ""


def test_cost_html_escapes_what_it_did_not_write() -> None:
    text = cost_html(run_json(kv_cache={**run_json()["kv_cache"], "formula": "<img src=x onerror=alert(1)>"}))
    assert "<img" not in text and "&lt;img" in text


def test_latency_chart_plots_the_gaps_between_tokens() -> None:
    a = run_json()
    b = run_json(params={"use_cache": False}, timeline={**a["timeline"], "token_times": [0.1, 0.3, 0.6]})
    figure = json.loads(latency_json([("A", a), ("B <i>", b)]))
    first, second = figure["data"]
    assert first["x"] == [1, 2, 3] and first["y"] == pytest.approx([20.0, 30.0, 30.0])
    assert second["y"] == pytest.approx([200.0, 300.0]) and second["name"] == "B &lt;i&gt; (no KV cache)"
    assert first["name"] == "A (KV cache)"


def node(id_: int, step: int, parent: int | None, rank: int, **kw) -> dict:
    base = {
        "id": id_, "step": step, "parent": parent, "beam": 0, "rank": rank, "token_id": 10 + id_, "text": f"t{id_}",
        "logprob": -1.0, "score": -1.0 * (step + 1), "kept": False, "finished": False, "final_score": None,
        "winner": False, "returned": None,
    }
    base.update(kw)
    return base


def test_beam_tree_drawing_groups_the_nodes_and_leaves_out_placeholders() -> None:
    tree = {
        "num_beams": 2, "candidates_per_step": 4, "length_penalty": 1.0, "steps": 2,
        "nodes": [
            node(0, 0, None, 0, kept=True, winner=True, returned=0),
            node(1, 0, None, 1, kept=True),
            node(2, 0, None, 2, score=-1e9),  # a placeholder beam at -1e9
            node(3, 0, None, 3, text="<b>x</b>"),
            node(4, 1, 0, 0, finished=True, final_score=-1.0, winner=True, returned=0),
            node(5, 1, 1, 1, finished=True, final_score=-1.5),
            node(6, 1, 0, 2),
            node(7, 1, 1, 3),
        ],
    }
    figure = json.loads(beam_tree_json(tree))
    groups = {trace["name"]: trace for trace in figure["data"] if trace.get("name")}
    assert groups["best sequence"]["x"] == [0, 1] and groups["best sequence"]["text"] == ["t0", "t4"]
    assert groups["kept"]["y"] == [1] and groups["finished"]["y"] == [1] and sorted(groups["pruned"]["y"]) == [2, 3, 3]
    assert "1 placeholders at -1e9 left out" in figure["layout"]["title"]["text"]
    hovers = " ".join(h for trace in groups.values() for h in trace["customdata"])
    assert "&lt;b&gt;x&lt;/b&gt;" in hovers and "<b>x</b>" not in hovers
    assert "finished: score / length^lp = -1.5000" in hovers
    assert beam_tree_json(None) is None


def test_tokens_html_outlines_the_divergence() -> None:
    steps = [TokenStep(i, i, f"<t{i}>", 0.5, 0.5, 1.0, 1.0, (), 0.1) for i in range(3)]
    html = tokens_html("p", steps, "length", marked=1)
    assert html.count("diverge") == 1 and 'data-pos="1"' in html.split("diverge")[1][:200]
    assert html.count("outline: 2px solid #dc2626") == 1
    ended = tokens_html("p", steps, "length", marked=3)
    assert "⟂ ended" in ended and "&lt;t0&gt;" in ended


COMPARISON = {
    "a": run_json(run_id=1),
    "b": run_json(run_id=2, kv_cache_bytes=None, seed=3),
    "differences": ["top_p: 1.0 → 0.3"],
    "summary": "At position 2 B's top-p 0.3 removed '<b>'.",
    "first_divergence": {
        "position": 2,
        "stages": {
            "a": [{"stage": "raw", "label": "raw", "a_token": 0.2, "b_token": 0.1},
                  {"stage": "final", "label": "final", "a_token": 0.2, "b_token": 0.1}],
            "b": [{"stage": "raw", "label": "raw", "a_token": 0.2, "b_token": 0.1},
                  {"stage": "top-p", "label": "top-p 0.3", "a_token": 0.0, "b_token": 0.00004},
                  {"stage": "final", "label": "final", "a_token": 0.0, "b_token": 0.00004}],
        },
    },
}


def test_compare_tables_and_summary() -> None:
    rows = stage_rows(COMPARISON)
    assert rows[0] == ["A", "raw", "0.2000", "0.1000"] and rows[3] == ["B", "top-p 0.3", "0.0000", "4.0e-05"]
    assert stage_rows({**COMPARISON, "first_divergence": None}) == []
    metrics = {row[0]: row[1:] for row in metric_rows(COMPARISON)}
    assert metrics["run id"] == [1, 2] and metrics["KV cache"] == ["9 KiB", "no cache"]
    assert metrics["TTFT"] == ["20.0 ms", "20.0 ms"] and metrics["peak memory"] == ["1024 MiB", "1024 MiB"]
    summary = summary_html(COMPARISON)
    assert "removed &#x27;&lt;b&gt;&#x27;" in summary and "B differs from A in: top_p: 1.0 → 0.3" in summary


def test_collect_params_shares_or_unlocks_the_seed() -> None:
    names = ("temperature", "seed")
    a, b = collect_params(names, (1.0, "7", 0.5, "9"), True)
    assert a == {"temperature": 1.0, "seed": "7"} and b == {"temperature": 0.5}  # B takes A's seed
    _, b = collect_params(names, (1.0, "7", 0.5, "9"), False)
    assert b["seed"] == "9"
    _, b = collect_params(names, (1.0, "7", 0.5, " "), False)
    assert isinstance(b["seed"], int) and 0 <= b["seed"] < 2**31  # unlocked and empty: a seed of its own
