"""The raw SQL of the hot paths, one module per concern, with names taken from the models.

Why raw at all: on the annotators' paths (next task, submit) and in the bulk writers the ORM's
compile costs more CPU than the statements take to run (docs/ranking.md, "The hot path"). Each
statement here is built once per process from `names` (tables and columns from `Model._meta`,
quoted by the backend; values always as parameters) and has a portable twin in its service for
other databases (SQLite in `make demo`).

- `names`: the naming helpers (Names, render, column_list, ...), usable by any raw reader.
- `rows`: `models_from_sql`, raw rows -> model instances at a fraction of RawQuerySet's cost.
- `access`, `assignment`, `ranking`, `agreement`, `importing`, `webhooks`: the statements of each service.

`postgres_statements()` is the one switch between a PostgreSQL statement and its twin.
"""
from __future__ import annotations

from django.conf import settings
from django.db import connection


def postgres_statements() -> bool:
    """True: run the PostgreSQL statements (one-statement claim and store, COPY, ...); False: their
    portable twins, which run on any database. PORTABLE_SQL=1 picks the twins on PostgreSQL as
    well, which is how the tests exercise them (and a way to compare the two)."""
    return connection.vendor == "postgresql" and not settings.PORTABLE_SQL
