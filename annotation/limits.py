"""Limits on what comes from outside, in one place, importable without Django's app registry.

BIGINT_MAX: the largest id PostgreSQL's bigint holds; a larger id in a URL or a query parameter is
"not found" or bad input, never an overflow in a raw statement.

JSON from outside (API bodies, import lines): one depth limit, one loader.

Python's json module raises RecursionError (not ValueError) on deeply nested input, and a value
nested a few hundred levels deep that does parse can still exhaust the stack later (json.dumps on
the way to PostgreSQL, a recursive validator). Nothing the platform stores needs more than a few
levels, so anything deeper than MAX_JSON_DEPTH is refused as bad input.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

BIGINT_MAX = 2**63 - 1
MAX_JSON_DEPTH = 32


class JSONTooDeep(ValueError):
    """Valid JSON, nested too deeply. `msg` as json.JSONDecodeError has it, for the same messages."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg


def json_depth_exceeds(value: Any, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether lists/objects nest deeper than `max_depth` levels (a scalar is depth 0). Iterative."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth + 1 > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _brackets(text: str | bytes) -> int:
    if isinstance(text, str):
        return text.count("[") + text.count("{")
    return text.count(b"[") + text.count(b"{")


def json_loads_bounded(text: str | bytes, *, parse_constant: Callable[[str], Any] | None = None,
                       max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads that raises ValueError (JSONTooDeep) instead of RecursionError, for any depth over `max_depth`."""
    try:
        value = json.loads(text, parse_constant=parse_constant)
    except RecursionError as exc:
        raise JSONTooDeep(f"nested deeper than {max_depth} levels") from exc
    # Nesting needs an opening bracket per level: a text with fewer than max_depth + 1 of them
    # (counted in C, those inside strings too, so never an undercount) cannot be too deep, and the
    # walk, a third of an import line's parse time, is skipped.
    if isinstance(value, dict | list) and _brackets(text) > max_depth and json_depth_exceeds(value, max_depth):
        raise JSONTooDeep(f"nested deeper than {max_depth} levels")
    return value
