"""Table and column names for raw SQL, taken from the models (`Model._meta`) and quoted by the backend.

The raw statements of the hot paths (annotation/sql/*.py) are written as templates and rendered
once per database vendor:

    t, a = Names(RankingTask, "t"), Names(Assignment, "a")
    render("SELECT {t.id} FROM {t} t WHERE NOT EXISTS (SELECT 1 FROM {a} a WHERE {a.task} = {t.id})", t=t, a=a)
    -> 'SELECT t."id" FROM "annotation_rankingtask" t WHERE NOT EXISTS (SELECT 1 FROM "annotation_assignment" a
        WHERE a."task_id" = t."id")'

`{t}` is the quoted table, `{t.field}` a column (a field name or its attname; an unknown one raises
FieldDoesNotExist when the statement is built, so a renamed or removed field fails loudly),
`{t.all}` every concrete column in the model's order (what `models_from_sql` needs for full
instances: no column is ever left deferred). `render` accepts only such quoted names and fixed SQL
fragments (`Sql`), never a plain string, so no value can reach the text: values always travel as
parameters (`%s`, `%(name)s`).

Column lists that must name every concrete field (an INSERT's, for instance) are declared with
`column_list(...)`, which records them; tests/platform/test_raw_sql.py compares each with the
model's concrete fields, so a new model field cannot silently become a deferred column or break a
raw INSERT. The export readers can use the same helpers.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Model


class Sql(str):
    """SQL text made only of quoted identifiers and fixed text from the code (never user data)."""


def quote(name: str) -> Sql:
    """One identifier, quoted by the current database backend."""
    return Sql(connection.ops.quote_name(name))


def table(model: type[Model]) -> Sql:
    return quote(model._meta.db_table)


def m2m_table(model: type[Model], field_name: str) -> Sql:
    """The table of a many-to-many field's automatic join model."""
    return table(model._meta.get_field(field_name).remote_field.through)


def column(model: type[Model], field_name: str, *, alias: str = "") -> Sql:
    """The quoted column of a field (given by name or attname), qualified by `alias` if given."""
    name = quote(model._meta.get_field(_field_name(model, field_name)).column)
    return Sql(f"{alias}.{name}" if alias else name)


def columns(model: type[Model], field_names: tuple[str, ...] | list[str], *, alias: str = "") -> Sql:
    return Sql(", ".join(column(model, name, alias=alias) for name in field_names))


def concrete_field_names(model: type[Model], *, pk: bool = True) -> tuple[str, ...]:
    """The names of the model's concrete fields (those with a column), in the model's order."""
    return tuple(f.name for f in model._meta.concrete_fields if pk or not f.primary_key)


def placeholders(count: int) -> Sql:
    """`%s, %s, ...` for `count` positional parameters."""
    return Sql(", ".join(["%s"] * count))


def named_placeholders(names: tuple[str, ...] | list[str]) -> Sql:
    """`%(a)s, %(b)s, ...`: one named parameter per name (names from the code, never from input)."""
    return Sql(", ".join(f"%({name})s" for name in names))


def _field_name(model: type[Model], name: str) -> str:
    for field in model._meta.concrete_fields:
        if name in (field.name, field.attname):
            return field.name
    return name  # not concrete (or unknown): get_field says why


class Names:
    """A model's quoted names for `render`: `{n}` the table, `{n.field}` a column, `{n.all}` every column."""

    def __init__(self, model: type[Model], alias: str = "") -> None:
        self._model = model
        self._alias = alias

    def __format__(self, spec: str) -> str:
        return table(self._model)

    def __getattr__(self, field_name: str) -> Sql:
        if field_name.startswith("_"):
            raise AttributeError(field_name)
        if field_name == "all":
            return columns(self._model, concrete_field_names(self._model), alias=self._alias)
        return column(self._model, field_name, alias=self._alias)


def render(template: str, /, **parts: Names | Sql) -> str:
    """`template` with its {placeholders} filled by quoted names only (TypeError for anything else)."""
    for key, value in parts.items():
        if not isinstance(value, Names | Sql):
            raise TypeError(f"{key}: only Names or Sql go into a statement's text; values are parameters")
    return template.format(**parts)


@dataclass(frozen=True)
class ColumnList:
    """A raw statement's list of a model's columns that must name every concrete field."""

    statement: str  # where it is used, for the test's message
    model: type[Model]
    fields: tuple[str, ...]
    pk: bool  # True: the primary key is in the list (a SELECT); False: it is not (an INSERT)

    def sql(self, *, alias: str = "") -> Sql:
        return columns(self.model, self.fields, alias=alias)


COLUMN_LISTS: list[ColumnList] = []


def column_list(statement: str, model: type[Model], fields: tuple[str, ...], *, pk: bool) -> ColumnList:
    """Declare (and record, for the test) a column list that must name every concrete field of `model`."""
    declared = ColumnList(statement, model, tuple(fields), pk)
    COLUMN_LISTS.append(declared)
    return declared


def per_vendor(build: Callable[..., str]) -> Callable[..., str]:
    """Cache a statement builder's text per database vendor (the quoting is the backend's), so each
    statement is rendered once per process and costs nothing per call. Positional arguments only."""
    cached = functools.cache(lambda vendor, *args: build(*args))

    @functools.wraps(build)
    def get(*args: Any) -> str:
        return cached(connection.vendor, *args)

    return get
