"""The export's reading queries: raw SQL on PostgreSQL (the hot path), the same rows through the ORM elsewhere.

One chunk of tasks costs three queries: its rankings, its responses and its prompts. The raw SQL
earns its speed (JSON columns come back as text and are decoded in one call; timestamps are
formatted by the database), but every table and column name in it is taken from the models'
`_meta` and quoted by the connection (`connection.ops.quote_name`), and the column lists are
lists of model field names: tests/export/test_sql.py checks that each one names concrete fields
of its model and that every field of Ranking and Response is either read or deliberately left
out. The ORM twin (SQLite, the demo) returns exactly what the PostgreSQL reading returns
(tested on the same rows).

Row contract of one ranking, for the `rankings` format (`full`):
    (annotator_id, tiers, flags, rating, rationale, duration_seconds, submitted_at, display_order_json, tiers_json)
with tiers and flags decoded (flags None when empty), submitted_at as ISO 8601 text (what
`datetime.isoformat()` gives in UTC), and the display order and tiers as compact JSON text (what
the JSONL line carries as it is). For the other formats (aggregated): (None, tiers, flags).
Responses: id -> (text, run_id) or, with `full`, (text, run_id, sample_index, finish_reason,
token_count, model_name).
"""
from __future__ import annotations

import json
from functools import cache
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Model

from annotation.models import Assignment, Prompt, RankingTask, Response
from annotation.models import Ranking as RankingRow
from annotation.services.export.options import ExportOptions
from annotation.services.ranking_filter import RankingFilter, ranking_filter_queryset, ranking_filter_sql

# The model fields each reading takes (names of fields, not columns: the columns come from _meta).
RANKING_FIELDS = ("task", "annotator", "tiers", "flags", "rating", "rationale", "duration_seconds", "created_at")
RANKING_ORDER = ("task", "created_at", "id")  # submission order within a task
ASSIGNMENT_FIELDS = ("display_order",)
RESPONSE_FIELDS = ("id", "text", "run")
RESPONSE_DETAIL_FIELDS = ("sample_index", "finish_reason", "token_count", "model_name")  # rankings only
PROMPT_FIELDS = ("id", "messages")
# Fields of Ranking and Response that no export carries, on purpose; with the lists above they
# must cover every concrete field, so a new field makes tests/export/test_sql.py ask for a decision.
# rank_vector, display_vector: agreement's bulk-loadable copy of tiers and the display order (the export reads those).
RANKING_FIELDS_NOT_EXPORTED = ("id", "assignment", "project", "idempotency_key", "rank_vector", "display_vector")
RESPONSE_FIELDS_NOT_EXPORTED = ("prompt", "text_hash", "prompt_truncated", "created_at")


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def table(model: type[Model]) -> str:
    """The model's table, quoted."""
    return _quote(model._meta.db_table)


def column(alias: str, model: type[Model], field: str) -> str:
    """`alias.column` of a model field (a foreign key gives its `_id` column), quoted."""
    return f"{_quote(alias)}.{_quote(model._meta.get_field(field).column)}"


def _through() -> type[Model]:
    return RankingTask.responses.through


def _id_array_sql(model: type[Model], field: str) -> str:
    """A placeholder for an array of ids of `model.field`'s type, passed as the text of an array literal.

    psycopg dumps a Python list parameter element by element in Python (about a third of the
    export's reading time at 2,000 tasks a chunk); the literal is made with one join (ids_literal).
    """
    return f"%s::{model._meta.get_field(field).db_type(connection)}[]"


def ids_literal(ids: list[int]) -> str:
    """The PostgreSQL array literal of integer ids ('{1,2,3}'); ints only, so nothing needs quoting."""
    return "{" + ",".join(map(str, map(int, ids))) + "}"


def _timestamp_text(expression: str) -> str:
    """SQL giving the text Python's datetime.isoformat() gives for a UTC timestamptz (no '.000000')."""
    return f"""replace(to_char({expression} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'), '.000000+', '+')"""


def rankings_chunk_sql(opts: ExportOptions, ranking_filter: RankingFilter, *, annotators: bool = False) -> tuple[str, list[Any]]:
    """The rankings query of one chunk of tasks (its first parameter, the task ids, comes first at run time).
    `annotators`: pairs, unpaired and sft also read who ranked (a reliability-weighted consensus needs it)."""
    r = "r"
    col = {name: column(r, RankingRow, name) for name in (*RANKING_FIELDS, "id", "assignment")}
    order = ", ".join(col[name] for name in RANKING_ORDER)
    if opts.format == "rankings":
        a = "a"
        # The tiers come once, as compact JSON text: decoded for the consensus, written as they are.
        columns = ", ".join([
            col["task"], col["annotator"], f"replace({col['tiers']}::text, ' ', '')", f"{col['flags']}::text", col["rating"],
            col["rationale"], col["duration_seconds"], _timestamp_text(col["created_at"]),
            f"replace({column(a, Assignment, 'display_order')}::text, ' ', '')",
        ])
        source = (f"{table(RankingRow)} {_quote(r)} JOIN {table(Assignment)} {_quote(a)} "
                  f"ON {column(a, Assignment, 'id')} = {col['assignment']}")
        tail = f"ORDER BY {order}"
    else:
        # pairs, unpaired and sft need only the tiers (and flags, to exclude flagged responses): one
        # row per task with its rankings aggregated, in submission order.
        after_task = ", ".join(col[name] for name in RANKING_ORDER[1:])
        flags = f"json_agg({col['flags']} ORDER BY {after_task})::text" if opts.exclude_flagged else "NULL"
        who = f"array_agg({col['annotator']} ORDER BY {after_task})" if annotators else "NULL"
        columns = f"{col['task']}, json_agg({col['tiers']} ORDER BY {after_task})::text, {flags}, {who}"
        source = f"{table(RankingRow)} {_quote(r)}"
        tail = f"GROUP BY {col['task']}"
    conditions, params = ranking_filter_sql(ranking_filter, alias=r)
    where = " AND ".join([f"{col['task']} = ANY({_id_array_sql(RankingRow, 'task')})", *conditions])
    # Only names from _meta (quoted) and fixed fragments are joined here; every value is a parameter.
    return f"SELECT {columns} FROM {source} WHERE {where} {tail}", params  # noqa: S608


@cache
def _responses_sql(full: bool) -> str:
    tr, r = "tr", "r"
    through = _through()
    fields = RESPONSE_FIELDS + (RESPONSE_DETAIL_FIELDS if full else ())
    picked = ", ".join(column(r, Response, name) for name in fields)  # the subquery keeps the column names
    columns = f"{column(tr, through, 'rankingtask')}, {picked}"
    # Each link's response looked up by primary key (LATERAL ... LIMIT 1 keeps the planner from
    # flattening it): a plain join is planned as a hash join over a scan of the whole response
    # table, once per chunk, which costs 2-3x the lookups at 150k rankings and grows with the table.
    return (
        f"SELECT {columns} FROM {table(through)} {_quote(tr)} CROSS JOIN LATERAL "  # noqa: S608
        f"(SELECT {picked} FROM {table(Response)} {_quote(r)} WHERE {column(r, Response, 'id')} = {column(tr, through, 'response')} "
        f"LIMIT 1) {_quote(r)} "
        f"WHERE {column(tr, through, 'rankingtask')} = ANY({_id_array_sql(through, 'rankingtask')}) ORDER BY 1, 2"
    )


@cache
def _prompts_sql() -> str:
    p = "p"
    return (f"SELECT {column(p, Prompt, 'id')}, {column(p, Prompt, 'messages')}::text FROM {table(Prompt)} {_quote(p)} "  # noqa: S608
            f"WHERE {column(p, Prompt, 'id')} = ANY({_id_array_sql(Prompt, 'id')})")


class Chunk(NamedTuple):
    """What one chunk of tasks needs: rankings by task, responses by task, prompts by id."""

    rankings: dict[int, list[tuple]]
    responses: dict[int, dict[int, tuple]]
    prompts: dict[int, Any]


def fetch_chunk_postgres(rankings_sql: str, rankings_params: list, task_ids: list[int], prompt_ids: list[int], *,
                         full: bool) -> Chunk:
    loads = json.loads
    by_task: dict[int, list[tuple]] = {}
    responses: dict[int, dict[int, tuple]] = {}
    tasks_param = ids_literal(task_ids)
    with connection.cursor() as cursor:
        cursor.execute(rankings_sql, [tasks_param, *rankings_params])
        if full:
            rows = cursor.fetchall()
            # Every ranking's tiers decoded in one call: per-row json.loads calls cost more than the decoding.
            all_tiers = loads("[" + ",".join([row[2] for row in rows]) + "]") if rows else []
            get = by_task.get
            for row, tiers in zip(rows, all_tiers, strict=True):
                # row: task, annotator, tiers text, flags text, rating ... display order: the contract's order
                flags = row[3]
                ranking = (row[1], tiers, loads(flags) if flags != "{}" else None) + row[4:] + (row[2],)
                task_rankings = get(row[0])
                if task_rankings is None:
                    task_rankings = by_task[row[0]] = []
                task_rankings.append(ranking)
        else:  # (annotator or None, tiers, flags): all that pairs, unpaired and sft read
            for task_id, tiers_agg, flags_agg, who in cursor.fetchall():
                flags = loads(flags_agg) if flags_agg else None
                by_task[task_id] = [(who[i] if who else None, tiers, (flags[i] or None) if flags else None)
                                    for i, tiers in enumerate(loads(tiers_agg))]
        cursor.execute(_responses_sql(full), [tasks_param])
        for row in cursor.fetchall():
            responses.setdefault(row[0], {})[row[1]] = row[2:]
        cursor.execute(_prompts_sql(), [ids_literal(prompt_ids)])
        rows = cursor.fetchall()
        messages = loads("[" + ",".join([row[1] for row in rows]) + "]") if rows else []  # one call, as for tiers
        prompts = dict(zip([row[0] for row in rows], messages, strict=True))
    return Chunk(by_task, responses, prompts)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def fetch_chunk_orm(opts: ExportOptions, ranking_filter: RankingFilter, task_ids: list[int], prompt_ids: list[int], *,
                    annotators: bool = False) -> Chunk:
    """The ORM twin of fetch_chunk_postgres (SQLite, the demo): the same rows in the same shapes."""
    full = opts.format == "rankings"
    rankings = ranking_filter_queryset(RankingRow.objects.filter(task_id__in=task_ids), ranking_filter)
    by_task: dict[int, list[tuple]] = {}
    names = ["task_id", "annotator_id", "tiers", "flags", "rating", "rationale", "duration_seconds", "created_at",
             "assignment__display_order"]
    for task_id, annotator, tiers, flags, rating, rationale, duration, created, display in (
        rankings.order_by(*RANKING_ORDER).values_list(*names)
    ):
        if full:
            row = (annotator, tiers, flags or None, rating, rationale, duration, created.isoformat() if created else None,
                   _compact(display), _compact(tiers))
        else:
            row = (annotator if annotators else None, tiers, (flags or None) if opts.exclude_flagged else None)
        by_task.setdefault(task_id, []).append(row)
    fields = ["rankingtask_id", "response_id", "response__text", "response__run_id"]
    if full:
        fields += [f"response__{name}" for name in RESPONSE_DETAIL_FIELDS]
    responses: dict[int, dict[int, tuple]] = {}
    for task_id, response_id, *rest in (
        _through().objects.filter(rankingtask_id__in=task_ids).order_by("rankingtask_id", "response_id").values_list(*fields)
    ):
        responses.setdefault(task_id, {})[response_id] = tuple(rest)
    prompts = dict(Prompt.objects.filter(id__in=prompt_ids).values_list("id", "messages"))
    return Chunk(by_task, responses, prompts)


def fetch_chunk(opts: ExportOptions, ranking_filter: RankingFilter, task_ids: list[int], prompt_ids: list[int], *,
                engine: str | None = None, annotators: bool = False) -> Chunk:
    """One chunk through raw SQL on PostgreSQL, through the ORM elsewhere (`engine` "sql" | "orm" forces one)."""
    engine = engine or ("sql" if connection.vendor == "postgresql" else "orm")
    if engine == "orm":
        return fetch_chunk_orm(opts, ranking_filter, task_ids, prompt_ids, annotators=annotators)
    sql, params = rankings_chunk_sql(opts, ranking_filter, annotators=annotators)
    return fetch_chunk_postgres(sql, params, task_ids, prompt_ids, full=opts.format == "rankings")
