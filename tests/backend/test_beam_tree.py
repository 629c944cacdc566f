"""The beam tree against transformers' own beam search on the same model: the winning path is the
returned best sequence, its length-penalised score is generate()'s sequences_scores[0], every
step keeps num_beams live hypotheses, and the beams the winner came through are generate()'s
beam_indices."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

from backend.beams import ABSENT, BeamTree
from backend.playground import Playground
from backend.registry import LoadedModel
from tests.inspect_runs import MODELS, generate

PROMPTS = {
    "stdlib-gpt2": "Return the number of items in",
    "tiny-gpt2": "Return the number of",
    "tiny-llama": "Return the number of",
    "tiny-bart": "The function returns a list of the values in the dictionary, sorted by key.",
    "tiny-marian": "La fonction renvoie une liste.",
}


def reference(loaded: LoadedModel, prompt: str, **kwargs):
    """transformers' own beam search, with the checkpoint's rules as generate() applies them."""
    inputs = loaded.tokenizer(loaded.spec.prefix + prompt, return_tensors="pt")
    pad = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else loaded.tokenizer.eos_token_id
    with torch.inference_mode():
        return loaded.model.generate(
            **inputs, do_sample=False, return_dict_in_generate=True, output_scores=True, output_logits=True,
            pad_token_id=pad, **kwargs,
        )


def check_tree(tree: BeamTree, num_beams: int) -> None:
    """What holds for any beam search: ranks per step, num_beams kept per step (but the last),
    each kept hypothesis extends one kept at the step before, cumulative scores add up."""
    by_id = {node.id: node for node in tree.nodes}
    kept = tree.kept_per_step()
    assert kept[:-1] == [num_beams] * (tree.steps - 1)
    assert kept[-1] == 0  # the search ended: nothing goes on
    for node in tree.nodes:
        if node.parent is None:  # every beam starts from the prompt, all but the first at -1e9 (transformers)
            assert node.step == 0
            assert node.score == pytest.approx(node.logprob + (0.0 if node.beam == 0 else ABSENT), rel=1e-6, abs=1e-5)
        else:
            parent = by_id[node.parent]
            assert parent.step == node.step - 1 and parent.kept
            assert node.score == pytest.approx(parent.score + node.logprob, rel=1e-6, abs=1e-4)
    for step in range(tree.steps):
        ranks = sorted(n.rank for n in tree.nodes if n.step == step and n.rank >= 0)
        assert ranks == list(range(tree.candidates_per_step))
        scores = [n.score for n in sorted((n for n in tree.nodes if n.step == step and n.rank >= 0), key=lambda n: n.rank)]
        assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("model", ["stdlib-gpt2", "tiny-llama", "tiny-bart", "tiny-marian"])
@pytest.mark.parametrize("length_penalty", [1.0, 0.6, 2.0])
def test_winning_path_and_score_equal_generate(inspect_playground: Playground, model: str, length_penalty: float) -> None:
    params = {"num_beams": 4, "num_return_sequences": 2, "max_new_tokens": 12, "length_penalty": length_penalty}
    run = generate(inspect_playground, model, PROMPTS[model], params)
    tree = run.result.beam_tree
    assert tree is not None and tree.num_beams == 4 and tree.candidates_per_step >= 8
    loaded = inspect_playground.registry.get(model)
    ref = reference(loaded, PROMPTS[model], num_beams=4, num_return_sequences=2, max_new_tokens=12, length_penalty=length_penalty)
    start = 1 if MODELS[model][1] == "encoder-decoder" else ref.sequences.shape[1] - len(ref.scores)
    best = ref.sequences[0, start:].tolist()[: len(run.result.sequences[0].token_ids)]

    path = tree.winning_path()
    assert [n.token_id for n in path] == list(run.result.sequences[0].token_ids) == best
    assert path[-1].finished and path[-1].final_score == pytest.approx(ref.sequences_scores[0].item(), abs=1e-5)
    assert path[-1].final_score == pytest.approx(run.result.sequences[0].score, abs=1e-5)
    assert [n.beam for n in path] == ref.beam_indices[0, : len(path)].tolist()  # the rows generate() took them from
    second = [n for n in tree.nodes if n.returned == 1]
    assert second and second[-1].final_score == pytest.approx(ref.sequences_scores[1].item(), abs=1e-5)
    check_tree(tree, 4)


@contextmanager
def end_of_sequence(loaded: LoadedModel, token_id: int) -> Iterator[None]:
    """Make `token_id` the model's end of sequence for a while (beams then finish early)."""
    config = loaded.model.generation_config
    previous = config.eos_token_id
    config.eos_token_id = token_id
    try:
        yield
    finally:
        config.eos_token_id = previous


def test_hypotheses_that_end_early_are_finished_with_their_length_penalised_score(inspect_playground: Playground) -> None:
    prompt = PROMPTS["stdlib-gpt2"]
    greedy = generate(inspect_playground, "stdlib-gpt2", prompt, {"max_new_tokens": 6})
    loaded = inspect_playground.registry.get("stdlib-gpt2")
    frequent = greedy.result.sequences[0].token_ids[2]  # a token the beams meet early
    with end_of_sequence(loaded, frequent):
        run = generate(inspect_playground, "stdlib-gpt2", prompt, {"num_beams": 3, "max_new_tokens": 16, "length_penalty": 0.5})
        ref = reference(loaded, prompt, num_beams=3, max_new_tokens=16, length_penalty=0.5, eos_token_id=frequent)
    tree = run.result.beam_tree
    assert tree is not None
    early = [n for n in tree.nodes if n.finished and n.step < tree.steps - 1]
    assert early and all(n.token_id == frequent and n.rank < 3 for n in early)
    for node in early:
        assert node.final_score == pytest.approx(node.score / (node.step + 1) ** 0.5, rel=1e-5)
    path = tree.winning_path()
    assert [n.token_id for n in path] == list(run.result.sequences[0].token_ids)
    assert path[-1].finished and path[-1].final_score == pytest.approx(ref.sequences_scores[0].item(), abs=1e-5)
    check_tree(tree, 3)


def test_beam_sampling_tree_holds_the_beams_it_drew(inspect_playground: Playground) -> None:
    params = {"num_beams": 3, "temperature": 1.0, "max_new_tokens": 10, "seed": 4}
    run = generate(inspect_playground, "stdlib-gpt2", PROMPTS["stdlib-gpt2"], params)
    tree = run.result.beam_tree
    assert tree is not None
    path = tree.winning_path()
    assert [n.token_id for n in path] == list(run.result.sequences[0].token_ids)
    assert path[-1].final_score == pytest.approx(run.result.sequences[0].score, abs=1e-5)
    kept = tree.kept_per_step()
    assert kept[:-1] == [3] * (tree.steps - 1)


def test_runs_without_beams_have_no_tree_and_the_api_json_carries_it(inspect_playground: Playground) -> None:
    plain = generate(inspect_playground, "tiny-gpt2", "Return the number of", {"max_new_tokens": 4})
    assert plain.result.beam_tree is None and plain.to_json()["beam_tree"] is None
    beams = generate(inspect_playground, "tiny-gpt2", "Return the number of", {"max_new_tokens": 4, "num_beams": 2})
    nodes = beams.to_json()["beam_tree"]["nodes"]
    assert {"step", "parent", "token_id", "text", "logprob", "score", "kept", "finished"} <= set(nodes[0])
    assert sum(n["winner"] for n in nodes) == 4
