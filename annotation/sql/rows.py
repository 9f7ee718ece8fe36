"""Raw rows as model instances, for the few raw statements of the hot paths (annotation/sql)."""
from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import DEFERRED, Model

from annotation.sql import cursor as hot_cursor

_converters: dict[tuple[type[Model], str], dict[str, list]] = {}


def _column_converters(model: type[Model]) -> dict[str, list]:
    """column -> [(converter, expression)], as the ORM's compiler applies them; derived once per model."""
    key = (model, connection.vendor)
    if key not in _converters:
        table = model._meta.db_table
        found = {}
        for field in model._meta.concrete_fields:
            col = field.get_col(table)
            funcs = connection.ops.get_db_converters(col) + field.get_db_converters(connection)
            if funcs:
                found[field.column] = [(func, col) for func in funcs]
        _converters[key] = found
    return _converters[key]


def models_from_sql(*, model: type[Model], sql: str, params: Any) -> list:
    """Instances of `model` from one raw statement; columns that are not the model's become attributes.

    What Model.objects.raw() does, at a fraction of its per-call cost (it re-derives the column
    mapping and converters on every query), for the few statements on the annotators' hot path.
    """
    with hot_cursor() as cursor:
        cursor.execute(sql, params)
        names = [column[0] for column in cursor.description]
        rows = cursor.fetchall()
    if not rows:
        return []
    fields = model._meta.concrete_fields
    position = {name: i for i, name in enumerate(names)}
    order = [position.get(field.column) for field in fields]
    attnames = [field.attname for field in fields]
    # JSON (and, on SQLite, date) columns need the ORM's converters.
    converters = [(position[column], funcs) for column, funcs in _column_converters(model).items() if column in position]
    known = {field.column for field in fields}
    extras = [(i, name) for i, name in enumerate(names) if name not in known]
    out = []
    for row in rows:
        values = list(row)
        for i, funcs in converters:
            for func, col in funcs:
                values[i] = func(values[i], col, connection)
        instance = model.from_db(connection.alias, attnames, [DEFERRED if i is None else values[i] for i in order])
        for i, name in extras:
            setattr(instance, name, values[i])
        out.append(instance)
    return out


def model_from_columns(*, model: type[Model], values: dict[str, Any]) -> Model:
    """One instance of `model` from {column: value} (every concrete column), with the ORM's converters:
    for a second model's columns read in the same raw statement under other names."""
    fields = model._meta.concrete_fields
    converted = dict(values)
    for column, funcs in _column_converters(model).items():
        for func, col in funcs:
            converted[column] = func(converted[column], col, connection)
    return model.from_db(connection.alias, [field.attname for field in fields], [converted[field.column] for field in fields])
