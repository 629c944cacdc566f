"""Attention, the logit lens and prompt surprisal, each against what the model computes when the
test asks it directly; and the inspector's answers to bad requests."""

from __future__ import annotations

import math

import pytest
import torch
from sqlalchemy import select
from transformers import OPTConfig, OPTForCausalLM

from backend.errors import InputError, ParameterError, RunAccessError
from backend.inspect.lens import logit_lens
from backend.inspect.records import AttentionView, Unavailable
from backend.playground import Playground
from backend.runlog import Run, RunRecord, RunStatus, add_run
from tests.inspect_runs import MODELS, OWNER, generate

PROMPT = "Return the number of items in the container."


@pytest.mark.parametrize("model", list(MODELS))
def test_attention_weights_sum_to_one_over_the_context(inspect_playground: Playground, model: str) -> None:
    pg = inspect_playground
    run = generate(pg, model, PROMPT, {"max_new_tokens": 6})
    position = len(run.result.steps) - 1
    found = pg.inspector.inspect_token(OWNER, run.run_id, position, layer=0)
    attention = found.attention
    assert isinstance(attention, AttentionView) and attention.layer == 0
    own = attention.self_attention
    encoder_decoder = MODELS[model][1] == "encoder-decoder"
    expected_context = (1 if encoder_decoder else len(run.result.input_token_ids)) + position
    assert len(own.context) == expected_context
    assert len(own.weights) == attention.layers and len(own.head_weights) == attention.heads
    for row in (*own.weights, *own.head_weights):
        assert len(row) == expected_context and sum(row) == pytest.approx(1.0, abs=1e-4)
        assert min(row) >= 0.0
    if encoder_decoder:
        assert attention.cross is not None and len(attention.cross.context) == len(run.result.input_token_ids)
        for row in (*attention.cross.weights, *attention.cross.head_weights):
            assert sum(row) == pytest.approx(1.0, abs=1e-4)
    else:
        assert attention.cross is None
    # the mean of the heads is the per-layer row
    mean = [sum(col) / attention.heads for col in zip(*own.head_weights)]
    assert mean == pytest.approx(list(own.weights[0]), abs=1e-5)
    last = pg.inspector.inspect_token(OWNER, run.run_id, position, layer=-1)
    assert isinstance(last.attention, AttentionView) and last.attention.layer == attention.layers - 1


@pytest.mark.parametrize("model", list(MODELS))
def test_the_logit_lens_at_the_last_layer_is_the_raw_distribution(inspect_playground: Playground, model: str) -> None:
    pg = inspect_playground
    run = generate(pg, model, PROMPT, {"max_new_tokens": 4})
    found = pg.inspector.inspect_token(OWNER, run.run_id, 2)
    lens = found.logit_lens
    assert not isinstance(lens, Unavailable)
    raw = found.stages[0]
    config = pg.registry.get(model).model.config
    if MODELS[model][1] == "decoder":
        layers = config.num_hidden_layers
    else:  # BART and Marian name it decoder_layers, T5 num_decoder_layers
        layers = getattr(config, "decoder_layers", None) or config.num_decoder_layers
    assert [layer.layer for layer in lens] == list(range(layers + 1))
    assert lens[-1].chosen_prob == pytest.approx(raw.chosen_prob, abs=1e-4)
    assert lens[-1].chosen_rank == raw.chosen_rank
    assert lens[-1].top[0].prob == pytest.approx(max(c.prob for c in raw.top), abs=1e-4)
    for layer in lens:
        assert len(layer.top) == 5 and sum(c.prob for c in layer.top) <= 1.0 + 1e-6
        assert [c.prob for c in layer.top] == sorted((c.prob for c in layer.top), reverse=True)


def test_an_architecture_without_a_known_head_says_why(inspect_playground: Playground) -> None:
    model = OPTForCausalLM(OPTConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2, word_embed_proj_dim=16))
    lens = logit_lens(model, [torch.zeros(16), torch.zeros(16)], 3, str)
    assert isinstance(lens, Unavailable) and "'opt'" in lens.reason and "gpt2" in lens.reason


@pytest.mark.parametrize("model", ["stdlib-gpt2", "tiny-llama"])
def test_prompt_perplexity_is_exp_of_the_mean_negative_log_likelihood(inspect_playground: Playground, model: str) -> None:
    pg = inspect_playground
    run = generate(pg, model, PROMPT, {"max_new_tokens": 2})
    ids = list(run.result.input_token_ids)
    with torch.no_grad():
        logits = pg.registry.get(model).model(torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    nll = [-float(logp[i - 1, ids[i]]) for i in range(1, len(ids))]
    found = pg.inspector.inspect_prompt(OWNER, run.run_id)
    assert found.perplexity == pytest.approx(math.exp(sum(nll) / len(nll)), rel=1e-6)
    assert found.tokens[0].logprob is None and [t.token_id for t in found.tokens] == ids
    for i, token in enumerate(found.tokens[1:], start=1):
        assert token.logprob == pytest.approx(-nll[i - 1], abs=1e-6)
        assert token.rank == int((logp[i - 1] > logp[i - 1, ids[i]]).sum()) + 1
        assert token.alternatives[0].prob == pytest.approx(math.exp(float(logp[i - 1].max())), abs=1e-6)
    worst = found.most_surprising[0]
    assert found.tokens[worst].logprob == min(t.logprob for t in found.tokens[1:])


def test_an_encoder_decoder_source_has_no_left_to_right_probability(inspect_playground: Playground) -> None:
    run = generate(inspect_playground, "tiny-bart", PROMPT, {"max_new_tokens": 3})
    found = inspect_playground.inspector.inspect_prompt(OWNER, run.run_id)
    assert isinstance(found, Unavailable) and "both directions" in found.reason


def test_bad_requests_get_the_rule_and_the_value(inspect_playground: Playground) -> None:
    pg = inspect_playground
    run = generate(pg, "tiny-gpt2", PROMPT, {"max_new_tokens": 5})
    inspector = pg.inspector
    cases = [
        ({"run_id": 10**6, "position": 0}, f"run_id must be the id of a logged run, got {10**6}."),
        ({"run_id": "abc", "position": 0}, "run_id must be the id of a logged run (an integer >= 1), got 'abc'."),
        ({"run_id": run.run_id, "position": 5}, f"position must be an integer in [0, 4] (run {run.run_id} has 5 new tokens), got 5."),
        ({"run_id": run.run_id, "position": -1}, "position must be an integer in [0, 4]"),
        ({"run_id": run.run_id, "position": 1.5}, "got 1.5."),
        ({"run_id": run.run_id, "position": 0, "top_n": 0}, "top_n must be an integer in [1, 50], got 0."),
        ({"run_id": run.run_id, "position": 0, "top_n": 51}, "top_n must be an integer in [1, 50], got 51."),
        ({"run_id": run.run_id, "position": 0, "layer": 2}, "layer must be empty or an integer in [-2, 1] (-1 = the last layer), got 2."),
    ]
    for kwargs, message in cases:
        with pytest.raises(ParameterError) as info:
            inspector.inspect_token(OWNER, **kwargs)
        assert message in str(info.value)
    with pytest.raises(RunAccessError, match=f"^run {run.run_id} is not one of yours.$"):
        inspector.inspect_token("session:someone-else", run.run_id, 0)
    with pytest.raises(RunAccessError):
        inspector.inspect_prompt("session:someone-else", run.run_id)
    with pg.runlog.session() as session, session.begin():
        other = add_run(session, RunRecord(task="fill-mask", model="m", status=RunStatus.OK, input={"text": "x"}, params={}, owner=OWNER))
    with pytest.raises(ParameterError, match=f"run_id must be a text generation, summarization or translation run, got 'a fill-mask run \\({other}\\)'."):
        inspector.inspect_token(OWNER, other, 0)
    with pytest.raises(InputError, match="reads at most 128 tokens"):
        generate(pg, "tiny-gpt2", "word " * 300, {})  # too long: logged as an error, without tokens
    with pg.runlog.session() as session:
        failed = session.scalars(select(Run.id).where(Run.status == "error").order_by(Run.id.desc())).first()
    with pytest.raises(ParameterError, match="run_id must be a run that generated at least one token"):
        inspector.inspect_token(OWNER, failed, 0)
