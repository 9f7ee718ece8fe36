"""The raw SQL of the hot paths, one module per concern, with names taken from the models.

Why raw at all: on the annotators' paths (next task, submit) and in the bulk writers the ORM's
compile costs more CPU than the statements take to run (docs/ranking.md, "The hot path"). Each
statement here is built once per process from `names` (tables and columns from `Model._meta`,
quoted by the backend; values always as parameters) and has a portable twin in its service for
other databases (SQLite in `make demo`).

- `names`: the naming helpers (Names, render, column_list, ...), usable by any raw reader.
- `rows`: `models_from_sql`, raw rows -> model instances at a fraction of RawQuerySet's cost.
- `access`, `assignment`, `ranking`, `agreement`, `importing`, `webhooks`: the statements of each service.

`postgres_statements()` is the one switch between a PostgreSQL statement and its twin, and
`cursor()` the cursor every statement here runs on (prepared once per connection on PostgreSQL).
"""
from __future__ import annotations

from typing import Any

import psycopg
from django.conf import settings
from django.db import connection
from django.db.backends.utils import CursorDebugWrapper


def postgres_statements() -> bool:
    """True: run the PostgreSQL statements (one-statement claim and store, COPY, ...); False: their
    portable twins, which run on any database. PORTABLE_SQL=1 picks the twins on PostgreSQL as
    well, which is how the tests exercise them (and a way to compare the two)."""
    return connection.vendor == "postgresql" and not settings.PORTABLE_SQL


class PreparedCursor(psycopg.Cursor):
    """Server-side binding, and every statement prepared on its first run (psycopg keeps the
    connection's prepared statements, up to its prepared_max, and re-prepares after a reset)."""

    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = True, binary: bool | None = None) -> Any:
        return super().execute(query, params, prepare=prepare, binary=binary)


class PreparedDebugWrapper(CursorDebugWrapper):
    """Django's query log (DEBUG, the test tools' CaptureQueriesContext) for these cursors: the
    statement with its parameters inlined, as Django logs its own, since a server-binding cursor
    leaves Django nothing to read it back from."""

    def execute(self, sql: str, params: Any = None) -> Any:
        try:
            shown = self.db.ops.compose_sql(sql, params)
        except Exception:  # logging never fails a statement: if it is wrong, executing it raises Django's error
            shown = sql
        with self.debug_sql(shown, params):
            return self._execute_with_wrappers(sql, params, many=False, executor=self._execute)


NEVER_BY_COUNT = 2**31 - 1


def cursor() -> Any:
    """The cursor of the hot paths' statements (use it as `with cursor() as c:`).

    On PostgreSQL with PREPARED_STATEMENTS (the default) it binds parameters server-side and has the
    server prepare each statement once per connection. Django's own cursors bind on the client, so
    the server parsed and planned every statement of every request again: preparing halved
    PostgreSQL's CPU per request in bench/serving.py (docs/ranking.md, "Prepared statements").
    Wrapped by Django like its own cursors: its errors are Django's, its statements are logged and
    counted by the test tools. Elsewhere, or with PREPARED_STATEMENTS=0 (behind a pooler in
    transaction mode that does not track prepared statements): Django's cursor.
    """
    if connection.vendor != "postgresql" or not settings.PREPARED_STATEMENTS:
        return connection.cursor()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw_connection = connection.connection
    if raw_connection.prepare_threshold is None:
        # Django leaves psycopg's threshold at None, which refuses even an explicit prepare=True. A
        # threshold no statement reaches prepares only these (Django's client-binding cursors never prepare).
        raw_connection.prepare_threshold = NEVER_BY_COUNT
    with connection.wrap_database_errors:
        raw = PreparedCursor(raw_connection)
    return PreparedDebugWrapper(raw, connection) if connection.queries_logged else connection.make_cursor(raw)
