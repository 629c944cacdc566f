"""The playground service: what the UI (and the API behind it) calls.

It ties the registry, the generation engine and the run log together: validates what a person
typed, runs the task, and writes every run -- finished, failed or stopped -- to the run log.
It never imports gradio.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from backend.capture import TokenStep
from backend.compare import GENERATIVE_TASKS, CompareEvent, Comparison, compare_params, compare_runs, run_both
from backend.errors import ParameterError, PlaygroundError
from backend.generation import FinishReason, GenerationDone, GenerationEngine, GenerationResult, TokenEvent
from backend.history import EXPORT_FORMATS, HistoryQuery, export_csv, export_jsonl, list_runs, owned_run, run_json, run_row
from backend.inspect.service import Inspector
from backend.metrics import RunMetrics
from backend.params import DecodingParams
from backend.processors import build_chain
from backend.registry import LoadedModel, ModelRegistry, ModelSpec, ProgressFn, Task, load_specs, require_local
from backend.remote import check_fields, run_remote
from backend.remote import prepare_params as prepare_remote_params
from backend.replay import Replay, replay_run
from backend.runlog import RunLog, RunRecord, RunRecorder, RunStatus, add_run, interrupt_unfinished
from backend.settings import Settings
from backend.tasks.encoding import require_text
from backend.throughput import LabPoint, ThroughputLab, lab_sizes, lab_tokens

BIAS_TASKS = (Task.FILL_MASK, Task.FEATURE_EXTRACTION)  # the models /bias_statistics can score

log = logging.getLogger(__name__)

#: The seeds' "which architecture for which task" table, one line per task.
ARCHITECTURE_LESSONS: Mapping[Task, str] = {
    Task.TEXT_GENERATION: "Creative writing, dialogue → decoder (GPT, LLaMA): next-token prediction, seeing only past tokens.",
    Task.TEXT_CLASSIFICATION: "Sentiment analysis → encoder (BERT, RoBERTa): bidirectional attention reads the whole sentence.",
    Task.ZERO_SHOT_CLASSIFICATION: "Classification without training labels → encoder (an NLI model, or sentence embeddings).",
    Task.TOKEN_CLASSIFICATION: "NER → encoder (BERT, RoBERTa): every token is labelled with the whole sentence in view.",
    Task.QUESTION_ANSWERING: "Extractive question answering → encoder (BERT): the answer is a span of the context.",
    Task.SUMMARIZATION: "Summarization → encoder-decoder (T5, BART): the encoder reads, the decoder writes.",
    Task.TRANSLATION: "Translation → encoder-decoder (T5, BART, Marian): one sequence transformed into another.",
    Task.FILL_MASK: "Masked language modelling → encoder (BERT): how encoders are pretrained; it shows their biases too.",
    Task.FEATURE_EXTRACTION: "Sentence embeddings → encoder: one vector per text, compared by cosine similarity.",
}


@dataclass(frozen=True)
class ModelChoice:
    """A registry entry as the UI lists it."""

    name: str
    label: str  # "name · decoder · description" (+ why it is unavailable)
    available: bool
    reason: str
    spec: ModelSpec


@dataclass(frozen=True)
class GenerationRun:
    """The last event of a generation: the logged run id and the result."""

    run_id: int
    result: GenerationResult
    model: str

    def to_json(self) -> dict[str, Any]:
        """The API's JSON result: run_id, text, tokens (per-token steps), metrics, and more."""
        result = self.result
        return {
            "run_id": self.run_id,
            "model": self.model,
            "text": result.text,
            "finish_reason": result.finish_reason,
            "seed": result.seed,
            "tokens": [step.to_dict() for step in result.steps],
            "metrics": result.metrics.to_dict(),
            "sequences": [
                {"text": s.text, "score": s.score, "finish_reason": s.finish_reason, "token_ids": list(s.token_ids)}
                for s in result.sequences
            ],
            "chain": result.chain.names,
            "notes": list(result.notes),
            "params": result.params.to_dict(),
            **result.cost_json(),
            "beam_tree": None if result.beam_tree is None else result.beam_tree.to_json(),
            "remote": result.remote,
        }


def _generation_result(chain: Sequence[str], notes: Sequence[str], input_token_ids: Sequence[int]) -> dict[str, Any]:
    """The run log's `result` of a generation: what the inspector and the history need besides
    the columns (the chain's stage names, the notes, the tokens the model read)."""
    return {"chain": list(chain), "notes": list(notes), "input_token_ids": list(input_token_ids)}


@dataclass(frozen=True)
class TaskOutput:
    """What a non-generative task returns: a one-line summary (logged as the run's output), a
    JSON-ready result (logged, and returned by the API), and how long it took."""

    summary: str
    result: dict[str, Any]
    seconds: float
    input_tokens: int | None = None


@dataclass(frozen=True)
class TaskRun:
    run_id: int
    model: str
    output: TaskOutput

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "model": self.model, **self.output.result, "seconds": self.output.seconds}


class Playground:
    """One per app: owns the registry (with its loaded models), the engine and the run log."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = ModelRegistry(
            load_specs(settings.models_file),
            max_loaded=settings.max_loaded_models,
            device=settings.device,
            offline=settings.offline,
        )
        self.engine = GenerationEngine(
            max_batch=settings.max_batch, decode_process=settings.decode_process, threads=settings.torch_threads
        )
        self.runlog = RunLog(settings.db_url)
        with self.runlog.writing() as session:
            interrupted = interrupt_unfinished(session)
        if interrupted:
            log.warning("runs %s were left running by an app that ended: marked interrupted", interrupted)
        self.inspector = Inspector(self.registry, self.engine, self.runlog, shared=settings.shared_history)
        self.lab = ThroughputLab()

    def close(self) -> None:
        self.engine.close()
        self.runlog.dispose()

    def apply_process_settings(self) -> None:
        """What the settings decide for the whole process (app.py calls it once, at start):
        torch's thread count."""
        if self.settings.torch_threads > 0:
            torch.set_num_threads(self.settings.torch_threads)

    # -- models -----------------------------------------------------------------------------

    def model_choices(self, task: Task) -> list[ModelChoice]:
        choices = []
        for spec in self.registry.for_task(task):
            availability = self.registry.availability(spec)
            label = f"{spec.name} · {spec.family.value}"
            if not availability.available:
                label += " · unavailable"
            choices.append(ModelChoice(spec.name, label, availability.available, availability.reason, spec))
        return choices

    def special_token(self, model: str, name: str) -> str | None:
        """A special token of a model's tokenizer (e.g. its mask token) without loading the
        model: from the loaded tokenizer if it is loaded, else from a local tokenizer_config.json."""
        spec = self.registry.specs.get(model)
        if spec is None or spec.remote is not None:
            return None
        if self.registry.is_loaded(model):
            return getattr(self.registry.get(model).tokenizer, name, None)
        config = spec.path / "tokenizer_config.json" if spec.path is not None else None
        if config is None or not config.is_file():
            return None
        value = json.loads(config.read_text(encoding="utf-8")).get(name)
        return value.get("content") if isinstance(value, dict) else value

    # -- text generation --------------------------------------------------------------------

    def text_generation(
        self,
        model: str,
        prompt: str,
        params: Mapping[str, Any],
        cancel: threading.Event,
        progress: ProgressFn | None = None,
        task: Task = Task.TEXT_GENERATION,
        input_name: str = "prompt",
        owner: str | None = None,
    ) -> Iterator[TokenEvent | GenerationRun]:
        """Stream a generation (text generation, and the encoder-decoder tasks with their own
        `task`). Yields TokenEvents, then one GenerationRun. Every outcome is logged, with its
        `owner` (backend.history); errors are re-raised after logging."""
        record: dict[str, Any] = {
            "task": task.value,
            "model": model,
            "input": {input_name: prompt},
            "params": dict(params),
            "owner": owner,
        }
        recorder: RunRecorder | None = None
        steps: list[TokenStep] = []
        prompt_tokens = 0
        started = time.perf_counter()
        try:
            with self._failures_logged(record, lambda: recorder):
                text = require_text(input_name, prompt)
                decoding = DecodingParams.from_mapping(params)
                record["params"] = decoding.to_dict()
                spec = self.registry.spec(model, task)
                if spec.remote is not None:  # a remote engine (backend.remote): no weights here
                    applied = prepare_remote_params(decoding)
                    check_fields(spec.remote, applied)
                    started_json = _generation_result(build_chain(applied, prompt_length=0, eos_token_ids=()).names, (), ())
                    events = run_remote(spec.remote, spec.prefix + text, applied, cancel, spec.max_context)
                else:
                    loaded = self.registry.get(model, task, progress)
                    truncate = task is not Task.TEXT_GENERATION  # summaries and translations cut a long input
                    prepared = self.engine.prepare(loaded, loaded.spec.prefix + text, decoding, truncate_input=truncate)
                    applied, prompt_tokens = prepared.params, prepared.prompt_tokens
                    started_json = _generation_result(prepared.chain.names, prepared.notes, prepared.input_token_ids)
                    events = self.engine.run(loaded, prepared, cancel)  # (a batched run decodes from now on)
                record.update(params=applied.to_dict(), seed=applied.seed)
                try:
                    recorder = RunRecorder(
                        self.runlog,
                        RunRecord(status=RunStatus.RUNNING, result=started_json, metrics={"prompt_tokens": prompt_tokens or None}, **record),
                    )
                except BaseException:
                    cancel.set()  # the run cannot be logged: it stops decoding, and fails as an error
                    raise
                for event in events:
                    if isinstance(event, TokenEvent):
                        steps.append(event.step)
                        recorder.add(event.step)
                        yield event
                        continue
                    assert isinstance(event, GenerationDone)
                    result = event.result
                    status = RunStatus.CANCELLED if result.finish_reason == FinishReason.CANCELLED else RunStatus.OK
                    result_json = _generation_result(result.chain.names, result.notes, result.input_token_ids)
                    result_json["sequences"] = [{"text": s.text, "score": s.score} for s in result.sequences]
                    cost = result.cost_json()
                    result_json.update(kv_cache=cost["kv_cache"], context=cost["context"])
                    if result.beam_tree is not None:
                        result_json["beam_tree"] = result.beam_tree.to_json()
                    if result.remote is not None:
                        result_json["remote"] = result.remote
                    run_id = recorder.end(
                        status,
                        result.steps,
                        output=result.text,
                        finish_reason=result.finish_reason,
                        result=result_json,
                        params=result.params.to_dict(),
                        metrics=result.metrics.to_dict(),
                    )
                    yield GenerationRun(run_id, result, model)
        except GeneratorExit:
            # The consumer left (browser closed, API job cancelled): the engine has stopped the
            # worker; keep what was generated, with the seed, the params and the times. (A
            # consumer that closes the stream after the GenerationRun leaves a finished run alone.)
            if recorder is not None and recorder.ended:
                raise
            metrics = RunMetrics.from_times(
                start=0.0,
                token_times=[s.elapsed_s for s in steps],
                end=time.perf_counter() - started,
                prompt_tokens=prompt_tokens,
                peak_memory_bytes=None,
                memory_kind=None,
            ).to_dict()
            if recorder is not None:
                recorder.end(
                    RunStatus.CANCELLED,
                    output="".join(s.text for s in steps),
                    finish_reason=FinishReason.CANCELLED,
                    metrics=metrics,
                )
            else:
                self._log(RunRecord(status=RunStatus.CANCELLED, finish_reason=FinishReason.CANCELLED, **record))
            raise

    def compare(
        self,
        model: str,
        prompt: str,
        params_a: object,
        params_b: object,
        cancel: threading.Event,
        progress: ProgressFn | None = None,
        owner: str | None = None,
    ) -> Iterator[CompareEvent | Comparison]:
        """Two generations of one model on one prompt, side A and side B with their own decoding
        parameters and one seed (backend.compare): yields both sides' tokens as they stream,
        then the Comparison. Both runs are logged; a bad input is logged and raised before either starts."""
        record: dict[str, Any] = {
            "task": Task.TEXT_GENERATION.value, "model": model, "input": {"prompt": prompt},
            "params": {"a": params_a, "b": params_b}, "owner": owner,
        }
        with self._failures_logged(record):
            spec = self.registry.spec(model) if isinstance(model, str) and model else None
            if spec is None or spec.task not in GENERATIVE_TASKS:
                raise ParameterError("model", "a text generation, summarization or translation model", model)
            require_local(spec, "the comparison (it reads both runs' logits)")
            input_name = "prompt" if spec.task is Task.TEXT_GENERATION else "text"
            record.update(task=spec.task.value, input={input_name: prompt})
            require_text(input_name, prompt)
            sides = compare_params(params_a, params_b)
        runs = None
        for item in run_both(
            self.text_generation, model, prompt, sides, cancel,
            task=spec.task, input_name=input_name, owner=owner, progress=progress,
        ):
            if isinstance(item, CompareEvent):
                yield item
            else:
                runs = item
        assert runs is not None
        yield compare_runs(self.registry, self.engine, *runs)

    @contextmanager
    def _failures_logged(
        self, record: dict[str, Any], started: Callable[[], RunRecorder | None] = lambda: None
    ) -> Iterator[None]:
        """Log a failed run (as `record` stands when it fails) as an error, then re-raise: a
        PlaygroundError is the person's input or a model that cannot serve; anything else is a
        bug or a runtime failure, logged with its traceback. A run already `started` in the log
        is ended as an error (its steps stay); otherwise an error run is logged."""
        try:
            yield
        except Exception as exc:
            if isinstance(exc, PlaygroundError):
                log.warning("%s run on %r failed: %s", record["task"], record["model"], exc)
                error = str(exc)
            else:
                log.exception("%s run on %r failed", record["task"], record["model"])
                error = f"{type(exc).__name__}: {exc}"
            recorder = started()
            if recorder is not None:
                recorder.end(RunStatus.ERROR, error=error)
            else:
                self._log(RunRecord(status=RunStatus.ERROR, error=error, **record))
            raise

    # -- the other tasks --------------------------------------------------------------------

    def run_task(
        self,
        task: Task,
        model: str,
        inputs: Mapping[str, Any],
        params: Mapping[str, Any],
        compute: Callable[[LoadedModel], TaskOutput],
        progress: ProgressFn | None = None,
        owner: str | None = None,
    ) -> TaskRun:
        """Run one non-streaming task and log it (with its `owner`). `compute` gets the loaded
        model (checked to be a `task` model) and returns the output; any PlaygroundError it
        raises is logged as an error run and re-raised, as is anything unexpected."""
        record: dict[str, Any] = {
            "task": task.value, "model": model, "input": dict(inputs), "params": dict(params), "owner": owner,
        }
        with self._failures_logged(record):
            loaded = self.registry.get(model, task, progress)
            output = compute(loaded)
        run_id = self._log(
            RunRecord(
                status=RunStatus.OK,
                output=output.summary,
                result=output.result,
                metrics={"total_s": output.seconds, "prompt_tokens": output.input_tokens},
                **record,
            )
        )
        return TaskRun(run_id, model, output)

    # -- one method per encoder task (each a logged run; see backend/tasks/) ------------------

    def classify(self, model: str, text: str, progress: ProgressFn | None = None, owner: str | None = None) -> TaskRun:
        from backend.tasks import classification, timed

        return self.run_task(
            Task.TEXT_CLASSIFICATION, model, {"text": text}, {},
            lambda loaded: timed(classification.classify, loaded, text), progress, owner,
        )

    def zero_shot(
        self, model: str, text: str, labels: str, hypothesis_template: str, multi_label: bool,
        progress: ProgressFn | None = None,
        owner: str | None = None,
    ) -> TaskRun:
        from backend.tasks import timed, zero_shot

        return self.run_task(
            Task.ZERO_SHOT_CLASSIFICATION, model, {"text": text, "labels": labels},
            {"hypothesis_template": hypothesis_template, "multi_label": multi_label},
            lambda loaded: timed(zero_shot.zero_shot, loaded, text, labels, hypothesis_template, multi_label),
            progress, owner,
        )

    def token_classification(
        self, model: str, text: str, aggregation: str, progress: ProgressFn | None = None, owner: str | None = None
    ) -> TaskRun:
        from backend.tasks import timed, token_classification

        return self.run_task(
            Task.TOKEN_CLASSIFICATION, model, {"text": text}, {"aggregation_strategy": aggregation},
            lambda loaded: timed(token_classification.ner, loaded, text, aggregation), progress, owner,
        )

    def question_answering(
        self, model: str, question: str, context: str, top_n: object, max_answer_len: object, doc_stride: object,
        progress: ProgressFn | None = None,
        owner: str | None = None,
        *,
        align_to_words: object = True,
        handle_impossible_answer: object = False,
    ) -> TaskRun:
        """`doc_stride` None or 0: chosen from the model's window."""
        from backend.tasks import question_answering, timed

        params = {
            "top_n": top_n, "max_answer_len": max_answer_len, "doc_stride": doc_stride or None,
            "align_to_words": align_to_words, "handle_impossible_answer": handle_impossible_answer,
        }
        return self.run_task(
            Task.QUESTION_ANSWERING, model, {"question": question, "context": context}, params,
            lambda loaded: timed(question_answering.answer, loaded, question, context, **params), progress, owner,
        )

    def fill_mask(
        self, model: str, text: str, top_k: int, progress: ProgressFn | None = None, owner: str | None = None
    ) -> TaskRun:
        from backend.tasks import fill_mask, timed

        return self.run_task(
            Task.FILL_MASK, model, {"text": text}, {"top_k": top_k},
            lambda loaded: timed(fill_mask.fill_mask, loaded, text, top_k), progress, owner,
        )

    def bias_probe(
        self, model: str, text_a: str, text_b: str, top_k: int, progress: ProgressFn | None = None,
        owner: str | None = None,
    ) -> TaskRun:
        from backend.tasks import fill_mask, timed

        return self.run_task(
            Task.FILL_MASK, model, {"text_a": text_a, "text_b": text_b}, {"top_k": top_k, "probe": "bias"},
            lambda loaded: timed(fill_mask.bias_probe, loaded, text_a, text_b, top_k), progress, owner,
        )

    def bias_statistics(
        self, model: str, template_a: str, template_b: str, occupations: str, progress: ProgressFn | None = None,
        owner: str | None = None,
    ) -> TaskRun:
        """Every occupation (one per line) in both templates, with an effect size and a p-value
        (backend/tasks/bias_statistics.py); `model` is a fill-mask or a feature-extraction model."""
        from backend.tasks import bias_statistics, timed

        inputs = {"template_a": template_a, "template_b": template_b, "occupations": occupations}
        record = {"task": Task.FILL_MASK.value, "model": model, "input": inputs, "params": {"probe": "statistics"}, "owner": owner}
        with self._failures_logged(record):
            spec = self.registry.spec(model) if isinstance(model, str) and model else None
            if spec is None or spec.task not in BIAS_TASKS:
                names = ", ".join(s.name for task in BIAS_TASKS for s in self.registry.for_task(task))
                raise ParameterError("model", f"a fill-mask or feature-extraction model ({names})", model)
        return self.run_task(
            spec.task, model, inputs, {"probe": "statistics"},
            lambda loaded: timed(bias_statistics.bias_statistics, loaded, template_a, template_b, occupations),
            progress, owner,
        )

    def feature_extraction(
        self, model: str, sentences: str, pooling: str | None, progress: ProgressFn | None = None,
        owner: str | None = None,
    ) -> TaskRun:
        """`sentences`: one per line (blank lines ignored)."""
        from backend.tasks import feature_extraction, timed

        def embed(loaded: LoadedModel) -> TaskOutput:
            lines = [line.strip() for line in require_text("sentences", sentences).splitlines() if line.strip()]
            return timed(feature_extraction.embed, loaded, lines, pooling or None)

        return self.run_task(
            Task.FEATURE_EXTRACTION, model, {"sentences": sentences}, {"pooling": pooling}, embed, progress, owner,
        )

    # -- serving ----------------------------------------------------------------------------

    def serving_stats(self) -> list[dict[str, Any]]:
        """Live figures of every model whose generations decode together (see backend.batching)."""
        return [{"model": name, **stats.to_json()} for name, stats in self.engine.serving_stats()]

    def throughput_lab(self, owner: str, model: object, n_values: object, max_new_tokens: object) -> list[LabPoint]:
        """N generations of `model` at once, for each N of `n_values` (see backend.throughput)."""
        sizes, tokens = lab_sizes(n_values), lab_tokens(max_new_tokens)
        if not isinstance(model, str):
            raise ParameterError("model", "the name of a text-generation model", model)
        self.registry.get(model, Task.TEXT_GENERATION)  # loaded before the clock starts
        return self.lab.run(
            sizes, tokens, lambda prompt, params: self.text_generation(model, prompt, params, threading.Event(), owner=owner)
        )

    # -- the history: a person's own runs -----------------------------------------------------

    def history(self, owner: str, query: HistoryQuery) -> list[dict[str, Any]]:
        """The owner's runs that match, newest first, as rows (everyone's with shared history)."""
        with self.runlog.session() as session:
            return [run_row(run) for run in list_runs(session, owner, query, shared=self.settings.shared_history)]

    def run_detail(self, owner: str, run_id: object) -> dict[str, Any]:
        """One of the owner's runs, whole: columns, result and token steps."""
        with self.runlog.session() as session:
            return run_json(owned_run(session, run_id, owner, shared=self.settings.shared_history))

    def export(self, owner: str, query: HistoryQuery, fmt: object) -> tuple[str, str]:
        """The runs of `query` as (file name, content): JSONL (runs with their token steps) or CSV."""
        if fmt not in EXPORT_FORMATS:
            raise ParameterError("format", f"one of {', '.join(EXPORT_FORMATS)}", fmt)
        with self.runlog.session() as session:
            runs = list_runs(session, owner, query, shared=self.settings.shared_history)
            content = export_jsonl(runs) if fmt == "jsonl" else export_csv(runs)
        return f"playground-runs.{fmt}", content

    def replay(self, owner: str, run_id: object, cancel: threading.Event | None = None) -> Replay:
        """Run one of the owner's runs again (see backend.replay)."""
        return replay_run(self, owner, run_id, cancel)

    # -- run log ----------------------------------------------------------------------------

    def _log(self, record: RunRecord) -> int:
        with self.runlog.writing() as session:
            return add_run(session, record)
