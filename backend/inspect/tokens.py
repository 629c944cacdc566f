"""The tokenizer view: a text cut into the model's tokens, with ids, the characters each covers,
and the special tokens the tokenizer adds; only the tokenizer is needed."""

from __future__ import annotations

from typing import Any

from backend.errors import InputError
from backend.inspect.records import Tokenization, TokenPiece
from backend.tasks.encoding import valid_unicode

#: Longest text the tokenizer view takes (a page of text is a few thousand characters).
MAX_TEXT_CHARS = 100_000


def tokenize(model: str, tokenizer: Any, text: object, max_context: int, prefix: str = "") -> Tokenization:
    if not isinstance(text, str):
        raise InputError("text", f"text must be a string, got {type(text).__name__}.")
    if len(text) > MAX_TEXT_CHARS:
        raise InputError("text", f"text must be at most {MAX_TEXT_CHARS} characters, got {len(text)}.")
    valid_unicode("text", text)
    fast = bool(getattr(tokenizer, "is_fast", False))
    encoded = tokenizer(text, return_special_tokens_mask=True, return_offsets_mapping=fast)
    ids = list(encoded["input_ids"])
    special = list(encoded["special_tokens_mask"])
    offsets = list(encoded["offset_mapping"]) if fast else [None] * len(ids)
    names = tokenizer.convert_ids_to_tokens(ids)
    special_ids = set(tokenizer.all_special_ids)
    pieces = []
    for token_id, name, added, span in zip(ids, names, special, offsets):
        # special: added by the tokenizer ([CLS], </s>) or a special token typed in the text ([MASK])
        start = end = None
        if span is not None and span[1] > span[0]:  # added tokens cover no characters
            start, end = int(span[0]), int(span[1])
        pieces.append(TokenPiece(int(token_id), str(name), start, end, bool(added) or token_id in special_ids))
    content = len(ids) - sum(1 for added in special if added)  # tokens of the text itself
    notes = []
    if prefix:
        extra = len(tokenizer(prefix, add_special_tokens=False)["input_ids"])
        notes.append(f"this model also reads {prefix!r} before the text (its task prefix): {extra} more tokens")
    if len(pieces) > max_context:
        notes.append(f"{len(pieces)} tokens: the model reads at most {max_context}")
    if not fast:
        notes.append("a slow (Python) tokenizer: no character offsets")
    return Tokenization(model, tuple(pieces), max_context, len(text) / content if content else None, tuple(notes))
