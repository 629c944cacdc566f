"""Typed fields as forms and clients send them: one rule for an integer field everywhere (a run
id, a position, top_n, top_k...). A form sends 5.0 for 5 and an API client may send "5"; both are
the integer 5. Anything else, NaN included, is refused with "<field> must be <rule>, got <value>."."""

from __future__ import annotations

from backend.errors import ParameterError


def integer(name: str, value: object, low: int, high: int | None = None, rule: str | None = None) -> int:
    """`value` as an int in [low, high] (high None: no upper bound)."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        if rule is None:
            rule = f"an integer in [{low}, {high}]" if high is not None else f"an integer >= {low}"
        raise ParameterError(name, rule, value)
    return value
