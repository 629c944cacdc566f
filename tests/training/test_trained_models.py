"""The shipped trained models beat their baselines on held-out samples committed in tests/data
(drawn by training/export_samples.py from the evaluation sets their scripts score), loaded through
the app's own registry; and every training script still runs: a few steps of it write the same
files as the run that built the committed folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from backend.registry import ModelRegistry, load_specs
from backend.tasks.question_answering import answer
from training import qa_data

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"


def sample(name: str) -> tuple[dict, list[dict]]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return json.loads(lines[0]), [json.loads(line) for line in lines[1:]]


@pytest.fixture(scope="module")
def registry() -> ModelRegistry:
    return ModelRegistry(load_specs(REPO / "models.yaml"), max_loaded=8, device="cpu", offline=True)


@torch.no_grad()
def generate(loaded, texts: list[str]) -> list[str]:
    """Greedy output of the model's saved generation config, as the engine starts from it."""
    out = []
    for i in range(0, len(texts), 16):
        enc = loaded.tokenizer(texts[i:i + 16], truncation=True, max_length=loaded.spec.max_context, padding=True,
                               return_tensors="pt")
        ids = loaded.model.generate(**enc)
        out += [t.strip() for t in loaded.tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return out


def test_the_qa_model_beats_the_overlap_baseline_through_the_apps_answer(registry: ModelRegistry) -> None:
    header, rows = sample("heldout_qa.jsonl")
    assert "Python Software Foundation" in header["source"] and len(rows) >= 60
    loaded = registry.get("minilm-qa (embedded)")
    preds = [answer(loaded, r["question"], r["context"], top_n=1).answers[0].text for r in rows]
    golds = [r["answer"] for r in rows]
    model = qa_data.scores(preds, golds)
    base = qa_data.scores([qa_data.overlap_baseline(r["question"], r["context"]) for r in rows], golds)
    assert model["exact_match"] > base["exact_match"] + 20 and model["f1"] > base["f1"] + 20, (model, base)


def test_the_translator_beats_the_word_by_word_dictionary(registry: ModelRegistry) -> None:
    """Held-out BLEU and chrF (sacrebleu) of the translator, greedy through the app's registry,
    against the dictionary column committed with the sample (built by the script from the same
    training pairs): the sample's 80 pairs are whole catalogues and package families never trained on."""
    import sacrebleu

    header, rows = sample("heldout_fr_en.jsonl")
    assert "gettext catalogues" in header["source"] and len(rows) >= 60
    loaded = registry.get("marian-fr-en (embedded)")
    predictions = generate(loaded, [r["french"] for r in rows])
    references = [[r["english"] for r in rows]]
    dictionary = [r["dictionary"] for r in rows]
    bleu, base_bleu = (sacrebleu.corpus_bleu(x, references).score for x in (predictions, dictionary))
    chrf, base_chrf = (sacrebleu.corpus_chrf(x, references).score for x in (predictions, dictionary))
    assert bleu > base_bleu + 5 and chrf > base_chrf, (bleu, base_bleu, chrf, base_chrf)


def test_the_summarizer_beats_the_lead_sentence(registry: ModelRegistry) -> None:
    """Held-out ROUGE-1 and ROUGE-L of the summarizer's synopses, greedy through the app's registry,
    against the lead baseline (the description's first sentence cut to the training synopses' mean
    length): the sample's descriptions are package families never trained on."""
    from training import metrics
    from training.train_debian_summarizer import lead

    header, rows = sample("heldout_synopsis.jsonl")
    assert "Translation-en" in header["source"] and len(rows) >= 60
    loaded = registry.get("bart-debian-summarizer (embedded)")
    predictions = generate(loaded, [r["description"] for r in rows])
    references = [r["synopsis"] for r in rows]
    model = metrics.rouge(predictions, references)
    base = metrics.rouge([lead(r["description"], header["lead_words"]) for r in rows], references)
    assert model["rouge1"] > base["rouge1"] and model["rougeL"] > base["rougeL"], (model, base)


def test_the_hand_written_questions_are_whole_and_reported() -> None:
    data = json.loads((DATA / "qa_handwritten.json").read_text(encoding="utf-8"))
    questions = data["questions"]
    assert len(questions) == 30 and "written by hand" in data["source"]
    for q in questions:
        assert q["context"][q["answer_start"]:q["answer_start"] + len(q["answer"])] == q["answer"]
    report = json.loads((REPO / "models" / "minilm-qa" / "training.json").read_text(encoding="utf-8"))
    assert {"exact_match", "f1"} <= report["handwritten"]["model"].keys()


# ---------------------------------------------------------------------------
# Every training script, a few steps
# ---------------------------------------------------------------------------

SCRIPTS = {
    "stdlib-gpt2": ("train_stdlib_gpt2", ["--steps", "2"]),
    "stdlib-bert-mlm": ("train_stdlib_bert", ["--steps", "2"]),
    "stdlib-topic-classifier": ("train_stdlib_classifier", ["--steps", "2"]),
    "stdlib-ner": ("train_stdlib_ner", ["--steps", "2"]),
    "marian-fr-en": ("train_marian_fr_en", ["--steps", "2", "--eval-pairs", "6"]),
    "bart-debian-summarizer": ("train_debian_summarizer", ["--steps", "2", "--eval-pairs", "6"]),
    "minilm-qa": ("train_minilm_qa", ["--steps", "1", "--eval-examples", "4", "--debian-examples", "40"]),
}


def few_steps(folder: str, tmp: Path) -> tuple[str, Path, subprocess.CompletedProcess]:
    script, args = SCRIPTS[folder]
    out = tmp / folder
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", f"training.{script}", "--out", str(out), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    return folder, out, done


@pytest.fixture(scope="module")
def few_step_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("few-steps")
    with ThreadPoolExecutor(max_workers=2) as pool:  # two cores: two scripts at a time
        return {folder: (out, done) for folder, out, done in pool.map(lambda f: few_steps(f, tmp), SCRIPTS)}


@pytest.mark.parametrize("folder", sorted(SCRIPTS))
def test_a_few_steps_write_the_files_of_the_committed_folder(few_step_runs: dict, folder: str) -> None:
    out, done = few_step_runs[folder]
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "training.json").read_text(encoding="utf-8"))
    assert report["steps"] == int(SCRIPTS[folder][1][1]) and not report["stopped_early"]
    committed = REPO / "models" / folder
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in committed.iterdir())
    assert set(report) - {"first_run"} == set(json.loads((committed / "training.json").read_text(encoding="utf-8"))) - {"first_run"}
