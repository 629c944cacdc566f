"""Typed exceptions the backend raises; the UI turns them into messages a person can act on.

Every message has one form where a value is involved: "<field> must be <rule>, got <value>."
"""

from __future__ import annotations


class PlaygroundError(Exception):
    """Base class: an error whose message is meant for the person using the playground."""


class ParameterError(PlaygroundError, ValueError):
    """A decoding parameter (or another typed field) is out of its range."""

    def __init__(self, field: str, rule: str, value: object) -> None:
        self.field = field
        self.rule = rule
        self.value = value
        super().__init__(f"{field} must be {rule}, got {value!r}.")


class InputError(PlaygroundError, ValueError):
    """The text a person typed cannot be used as it is (empty, too long, missing a mask token...)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class SpecError(PlaygroundError, ValueError):
    """An entry of models.yaml is invalid; the message names the entry and the field."""


class UnknownModelError(PlaygroundError, KeyError):
    """A model name that is not in the registry; the message lists the valid names."""

    def __init__(self, name: str, valid: list[str]) -> None:
        self.name = name
        self.valid = valid
        super().__init__(name)

    def __str__(self) -> str:
        return f"model must be one of {', '.join(repr(v) for v in self.valid)}, got {self.name!r}."


class ModelUnavailableError(PlaygroundError):
    """The model cannot be loaded on this machine (not downloaded and offline, missing folder...)."""


class ModelLoadError(PlaygroundError):
    """Loading the model failed (corrupt weights, bad config...). Other models keep working."""


class RemoteModelError(PlaygroundError):
    """A model served by a remote engine was asked for what needs its weights here (its logits)."""


class TaskMismatchError(PlaygroundError):
    """A model was asked to do a task its registry entry does not declare."""


class RunAccessError(PlaygroundError):
    """A run that exists but belongs to someone else ("run 12 is not one of yours.")."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id} is not one of yours.")
