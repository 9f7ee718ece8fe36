"""What "an integer", "a number" and "a string" mean for the services' input checks, defined once.

The services validate their options objects themselves (annotation.services.projects.ProjectOptions,
annotation.services.generation.GenerationOptions, annotation.services.ranking.ranking_validate):
the API's input serializers only check JSON types and the commands only argparse types, so each
rule has one place and the API, the commands and other services give the same answer. Every check
returns its problem as a message ("" when the value is fine), so a caller collects every problem of
an input at once (field -> messages) and raises one ApplicationError naming them all.
"""
from __future__ import annotations

import math
from typing import Any

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def is_int(value: Any) -> bool:
    """An int that is not a bool (True is an int in Python, never a count here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float that is not a bool (no NaN, no infinity)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def int_problem(value: Any, *, low: int, high: int) -> str:
    """'' if `value` is an integer from `low` to `high` (both included), else the message."""
    return "" if is_int(value) and low <= value <= high else f"must be an integer from {low} to {high}"


def int32_problem(value: Any) -> str:
    """'' if `value` is a 32-bit signed integer (a seed), else the message."""
    return "" if is_int(value) and INT32_MIN <= value <= INT32_MAX else "must be a 32-bit integer"


def number_problem(value: Any, *, low: float, high: float) -> str:
    """'' if `value` is a number from `low` to `high` (both included), else the message."""
    return "" if is_number(value) and low <= value <= high else f"must be a number from {low:g} to {high:g}"


def string_problem(value: Any, *, max_length: int | None = None) -> str:
    """'' if `value` is a string of at most `max_length` characters, else the message."""
    if not isinstance(value, str):
        return "must be a string"
    if max_length is not None and len(value) > max_length:
        return f"must be a string of at most {max_length} characters"
    return ""


def integral_floats_as_ints(values: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """`values` with the integral floats of `names` (3.0 from JSON or a form) as ints; others untouched."""
    out = dict(values)
    for name in names:
        if isinstance(out.get(name), float) and out[name].is_integer():
            out[name] = int(out[name])
    return out
