"""URL building blocks for the API (and the pages): bounded path converters, both slash spellings.

- `<project:project>`: a project id or slug, ASCII only (`[-a-zA-Z0-9_]+`). `str.isdigit` is true
  for superscripts and Arabic-Indic digits and `int()` reads the latter, and a NUL or any other
  character a slug cannot contain reached PostgreSQL; now they never match: 404.
- `<id:name>`: a row id, ASCII digits, at most 2**63-1 (PostgreSQL's bigint); a larger one is a 404,
  not an overflow in raw SQL.
- `api_path(route, view, name)`: the route with and without its trailing slash (the contract spells
  next-task, submit, ... without; every route accepts both). The schema lists the slashed one only
  (api.schema.drop_slashless_duplicates), and reverse() gives it.
"""
from __future__ import annotations

from collections.abc import Callable

from django.urls import URLPattern, path, register_converter

from annotation.limits import BIGINT_MAX as MAX_ID


class ProjectRefConverter:
    regex = "[-a-zA-Z0-9_]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: object) -> str:
        return str(value)


class IdConverter:
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_ID:
            raise ValueError("id out of range")  # no match: 404
        return number

    def to_url(self, value: object) -> str:
        return str(value)


register_converter(ProjectRefConverter, "project")
register_converter(IdConverter, "id")

# Their schema types: SPECTACULAR_SETTINGS["PATH_CONVERTER_OVERRIDES"] (config/settings.py).


def api_path(route: str, view: Callable, *, name: str) -> list[URLPattern]:
    """`route` (written with its trailing slash) and the same route without it."""
    if not route.endswith("/"):
        raise ValueError(f"write API routes with their trailing slash: {route!r}")
    return [path(route, view, name=name), path(route[:-1], view)]
