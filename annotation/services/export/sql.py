"""The export's reading queries: raw SQL on PostgreSQL (the hot path), the same rows through the ORM elsewhere.

One chunk of tasks costs three queries: its rankings, its responses and its prompts. The ORM
twin (SQLite, the demo) returns exactly what the PostgreSQL reading returns (tested).
"""
from __future__ import annotations

import json
from typing import Any

from annotation.models import Prompt, RankingTask
from annotation.models import Ranking as RankingRow
from annotation.services.export.options import ExportOptions


def rankings_chunk_sql(opts: ExportOptions, user_ids: set[int] | None) -> tuple[str, list[Any]]:
    """The rankings query of one chunk of tasks (raw SQL: this is the export's hot loop)."""
    if opts.format == "rankings":
        columns = (
            "r.annotator_id, r.tiers::text, r.flags::text, r.rating, r.rationale, r.duration_seconds, r.created_at, "
            "a.display_order::text"
        )
        join = " JOIN annotation_assignment a ON a.id = r.assignment_id"
    else:
        # pairs and unpaired need only the tiers (and flags, to exclude flagged responses): one row
        # per task with its rankings aggregated, in submission order.
        flags = "json_agg(r.flags ORDER BY r.created_at, r.id)::text" if opts.exclude_flagged else "NULL"
        columns = f"json_agg(r.tiers ORDER BY r.created_at, r.id)::text, {flags}"
        join = ""
    where, params = ["r.task_id = ANY(%s)"], []
    if user_ids is not None:
        where.append("r.annotator_id = ANY(%s)")
        params.append(sorted(user_ids))
    if opts.since:
        where.append("r.created_at >= %s")
        params.append(opts.since)
    if opts.until:
        where.append("r.created_at < %s")
        params.append(opts.until)
    # Only fixed fragments are joined here; every value travels as a parameter.
    conditions = " AND ".join(where)
    tail = "ORDER BY r.task_id, r.created_at, r.id" if opts.format == "rankings" else "GROUP BY r.task_id"
    sql = f"SELECT r.task_id, {columns} FROM annotation_ranking r{join} WHERE {conditions} {tail}"  # noqa: S608
    return sql, params


RESPONSES_SQL = (
    "SELECT tr.rankingtask_id, r.id, r.text, r.run_id FROM annotation_rankingtask_responses tr "
    "JOIN annotation_response r ON r.id = tr.response_id WHERE tr.rankingtask_id = ANY(%s) ORDER BY 1, 2"
)
PROMPTS_SQL = "SELECT id, messages::text FROM annotation_prompt WHERE id = ANY(%s)"


def fetch_chunk_postgres(rankings_sql: str, rankings_params: list, task_ids: list[int], prompt_ids: list[int], *, full: bool):
    from django.db import connection

    loads = json.loads
    by_task: dict[int, list[tuple]] = {}
    responses: dict[int, dict[int, tuple[str, int | None]]] = {}
    with connection.cursor() as cursor:
        cursor.execute(rankings_sql, [task_ids, *rankings_params])
        if full:
            for task_id, annotator, tiers, flags, rating, rationale, duration, created, display in cursor.fetchall():
                by_task.setdefault(task_id, []).append(
                    (annotator, loads(tiers), loads(flags) if flags != "{}" else None, rating, rationale, duration, created,
                     loads(display) if display else None)
                )
        else:  # (None, tiers, flags): all that pairs and unpaired read
            for task_id, tiers_agg, flags_agg in cursor.fetchall():
                flags = loads(flags_agg) if flags_agg else None
                by_task[task_id] = [(None, tiers, (flags[i] or None) if flags else None) for i, tiers in enumerate(loads(tiers_agg))]
        cursor.execute(RESPONSES_SQL, [task_ids])
        for task_id, response_id, text, run_id in cursor.fetchall():
            responses.setdefault(task_id, {})[response_id] = (text, run_id)
        cursor.execute(PROMPTS_SQL, [prompt_ids])
        prompts = {prompt_id: loads(messages) for prompt_id, messages in cursor.fetchall()}
    return by_task, responses, prompts


def fetch_chunk_orm(opts: ExportOptions, user_ids: set[int] | None, task_ids: list[int], prompt_ids: list[int]):
    rankings = RankingRow.objects.filter(task_id__in=task_ids)
    if user_ids is not None:
        rankings = rankings.filter(annotator_id__in=user_ids)
    if opts.since:
        rankings = rankings.filter(created_at__gte=opts.since)
    if opts.until:
        rankings = rankings.filter(created_at__lt=opts.until)
    by_task: dict[int, list[tuple]] = {}
    fields = ["task_id", "annotator_id", "tiers", "flags", "rating", "rationale", "duration_seconds", "created_at",
              "assignment__display_order"]
    for row in rankings.order_by("task_id", "created_at", "id").values_list(*fields):
        by_task.setdefault(row[0], []).append((*row[1:3], row[3] or None, *row[4:8], row[8] if opts.format == "rankings" else None))
    through = RankingTask.responses.through
    responses: dict[int, dict[int, tuple[str, int | None]]] = {}
    for task_id, response_id, text, run_id in (
        through.objects.filter(rankingtask_id__in=task_ids)
        .order_by("rankingtask_id", "response_id")
        .values_list("rankingtask_id", "response_id", "response__text", "response__run_id")
    ):
        responses.setdefault(task_id, {})[response_id] = (text, run_id)
    prompts = dict(Prompt.objects.filter(id__in=prompt_ids).values_list("id", "messages"))
    return by_task, responses, prompts
