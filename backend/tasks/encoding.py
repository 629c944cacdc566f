"""What every encoder task does to the text a person typed before the model reads it.

It checks the text is not empty, finds the model's window (how many tokens it reads at most),
and cuts longer inputs to that window, with a note that says what was cut, instead of crashing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from backend.errors import InputError
from backend.registry import LoadedModel

# Model types whose position ids start after the padding index (RoBERTa and its kin): a
# checkpoint with max_position_embeddings=514 and pad_token_id=1 reads 512 tokens.
OFFSET_POSITION_MODEL_TYPES = frozenset({"roberta", "xlm-roberta", "camembert", "mpnet", "data2vec-text"})

# A tokenizer's model_max_length at or above this is the "no limit" placeholder (int(1e30)).
_NO_LIMIT = 1_000_000


def require_text(field: str, text: object) -> str:
    """The text itself, or InputError when it is not a string with something besides spaces, or
    not valid Unicode (a lone surrogate, which no tokenizer can encode)."""
    if not isinstance(text, str) or not text.strip():
        raise InputError(field, f"{field} must be non-empty text, got {text!r}.")
    return valid_unicode(field, text)


def valid_unicode(field: str, text: str) -> str:
    """The text, or InputError when it holds a lone surrogate (half of a UTF-16 pair: no tokenizer
    can encode it, and it cannot be written as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            field,
            f"{field} must be valid Unicode text, got a lone surrogate (U+{ord(text[exc.start]):04X}) at character "
            f"{exc.start} (text pasted from a broken source?).",
        ) from None
    return text


def window(loaded: LoadedModel) -> int:
    """How many tokens (special tokens included) the model reads at most: the smallest of the
    registry's max_context, the tokenizer's model_max_length and the model's position table."""
    limits = [loaded.spec.max_context]
    tokenizer_max = getattr(loaded.tokenizer, "model_max_length", None)
    if isinstance(tokenizer_max, int) and 0 < tokenizer_max < _NO_LIMIT:
        limits.append(tokenizer_max)
    config = loaded.model.config
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        if getattr(config, "model_type", None) in OFFSET_POSITION_MODEL_TYPES:
            positions -= (getattr(config, "pad_token_id", None) or 0) + 1
        limits.append(positions)
    return min(limits)


def truncation_note(name: str, length: int, limit: int, model: str) -> str:
    """The sentence every task shows when an input was cut to the window."""
    return (
        f"{name} cut from {length} to {limit} tokens: {model} reads at most {limit} tokens "
        f"(special tokens included); the rest was not read."
    )


@dataclass(frozen=True)
class Encoded:
    """A batch ready for the model, and what truncation did to it."""

    inputs: Mapping[str, torch.Tensor]  # on the model's device, only the names the model takes
    full_ids: tuple[tuple[int, ...], ...]  # each input's token ids before truncation
    window: int
    notes: tuple[str, ...]

    @property
    def lengths(self) -> tuple[int, ...]:
        """Tokens of each input before truncation."""
        return tuple(len(ids) for ids in self.full_ids)

    @property
    def truncated(self) -> tuple[bool, ...]:
        return tuple(n > self.window for n in self.lengths)

    @property
    def input_tokens(self) -> int:
        """Tokens the model actually read, over the whole batch (padding not counted)."""
        return int(self.inputs["attention_mask"].sum().item())


def encode(
    loaded: LoadedModel,
    texts: Sequence[str],
    *,
    names: Sequence[str],
    pairs: Sequence[str] | None = None,
) -> Encoded:
    """Tokenize a batch (padded), cut each input to the window, and note every cut by its name.

    With `pairs` (NLI premise + hypothesis) only the first text of each pair is cut, as the
    zero-shot pipeline does, so the hypothesis always stays whole."""
    tokenizer = loaded.tokenizer
    limit = window(loaded)
    pair_args = {} if pairs is None else {"text_pair": list(pairs)}
    # Counted untruncated; verbose=False: the "longer than the maximum" warning is what we handle.
    full_ids = tuple(tuple(ids) for ids in tokenizer(list(texts), **pair_args, verbose=False)["input_ids"])
    batch = tokenizer(
        list(texts),
        **pair_args,
        padding=True,
        truncation="only_first" if pairs is not None else True,
        max_length=limit,
        return_tensors="pt",
    )
    accepted = set(getattr(tokenizer, "model_input_names", ())) | {"input_ids", "attention_mask"}
    inputs = {k: v.to(loaded.device) for k, v in batch.items() if k in accepted}
    notes = tuple(
        truncation_note(name, len(ids), limit, loaded.spec.name)
        for name, ids in zip(names, full_ids, strict=True)
        if len(ids) > limit
    )
    return Encoded(inputs=inputs, full_ids=full_ids, window=limit, notes=notes)
