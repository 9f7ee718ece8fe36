"""The import's bulk writers (annotation.services.importing): PostgreSQL COPY of prompts, responses,
ranking tasks and their task-response links.

Responses and tasks that are linked in the same chunk get their ids from their sequences first
(`reserve_ids`, one statement), so they are written with COPY too and never read back.

COPY is several times faster than a bulk INSERT through the ORM for large imports. Each column
list names every concrete field of its model (checked by tests/platform/test_raw_sql.py), and the
row builders below lay the values out in that order.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import connection

from annotation.models import Prompt, RankingTask, Response
from annotation.sql.names import Names, column_list, per_vendor, render

PROMPT_COLUMNS = column_list(
    "prompt COPY (annotation.sql.importing.copy_prompts)",
    Prompt,
    ("project", "external_id", "messages", "metadata", "content_hash", "created_at"),
    pk=False,
)
RESPONSE_COLUMNS = column_list(
    "response COPY (annotation.sql.importing.copy_responses)",
    Response,
    ("prompt", "run", "sample_index", "text", "text_hash", "finish_reason", "token_count", "model_name",
     "prompt_truncated", "created_at"),
    pk=False,
)

RESPONSE_COLUMNS_WITH_ID = column_list(
    "response COPY with ids (annotation.sql.importing.copy_responses_with_ids)",
    Response,
    ("id", "prompt", "run", "sample_index", "text", "text_hash", "finish_reason", "token_count", "model_name",
     "prompt_truncated", "created_at"),
    pk=True,
)
TASK_COLUMNS = column_list(
    "task COPY (annotation.sql.importing.copy_tasks)",
    RankingTask,
    ("id", "project", "prompt", "overlap", "target_overlap", "priority_margin", "is_gold", "gold_ranking", "priority",
     "submitted_count", "active_count", "is_complete", "agreement", "excluded", "task_type", "evaluation", "created_at"),
    pk=True,
)
_TaskResponse = RankingTask.responses.through
TASK_RESPONSE_COLUMNS = column_list(
    "task-response link COPY (annotation.sql.importing.copy_task_responses)",
    _TaskResponse,
    ("rankingtask", "response"),
    pk=False,
)


@per_vendor
def _copy_sql(which: str) -> str:
    listed = {"prompt": PROMPT_COLUMNS, "response": RESPONSE_COLUMNS, "response_id": RESPONSE_COLUMNS_WITH_ID,
              "task": TASK_COLUMNS, "link": TASK_RESPONSE_COLUMNS}[which]
    return render("COPY {table} ({columns}) FROM STDIN", table=Names(listed.model), columns=listed.sql())


def copy_prompts(*, project_id: int, prompts: Iterable[Any], now: datetime) -> None:
    """COPY prompts (objects with external_id, messages, metadata, content_hash) into the project."""
    with connection.cursor() as cursor, cursor.cursor.copy(_copy_sql("prompt")) as copy:
        for p in prompts:
            # The order of PROMPT_COLUMNS.
            copy.write_row(
                (project_id, p.external_id, json.dumps(p.messages, ensure_ascii=False), json.dumps(p.metadata), p.content_hash, now)
            )


def copy_responses(*, rows: Iterable[tuple[int, int, str, str, str]], now: datetime) -> None:
    """COPY imported responses (run NULL): (prompt id, sample index, text, text hash, model name)."""
    with connection.cursor() as cursor, cursor.cursor.copy(_copy_sql("response")) as copy:
        for prompt_id, index, text, text_hash, model in rows:
            # The order of RESPONSE_COLUMNS: no run, no finish reason, no token count, not truncated.
            copy.write_row((prompt_id, None, index, text, text_hash, "", None, model, False, now))


def reserve_ids(*, model: type[Response] | type[RankingTask], count: int) -> list[int]:
    """`count` fresh primary keys of `model` from its sequence (PostgreSQL), in one statement."""
    if count <= 0:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [model._meta.db_table, model._meta.pk.column, count],
        )
        return [row[0] for row in cursor.fetchall()]


def copy_responses_with_ids(*, rows: Iterable[tuple[int, int, int, str, str, str]], now: datetime) -> None:
    """COPY imported responses (run NULL) with reserved ids: (id, prompt id, sample index, text, text hash, model name)."""
    with connection.cursor() as cursor, cursor.cursor.copy(_copy_sql("response_id")) as copy:
        for response_id, prompt_id, index, text, text_hash, model in rows:
            # The order of RESPONSE_COLUMNS_WITH_ID.
            copy.write_row((response_id, prompt_id, None, index, text, text_hash, "", None, model, False, now))


def copy_tasks(
    *, rows: Iterable[tuple[int, int]], project_id: int, overlap: int, target_overlap: int | None, now: datetime
) -> None:
    """COPY new, empty ranking tasks with reserved ids: (task id, prompt id). `target_overlap`: the
    rankings a new task may get first (adaptive overlap's M; None: overlap), as tasks.py sets it."""
    with connection.cursor() as cursor, cursor.cursor.copy(_copy_sql("task")) as copy:
        for task_id, prompt_id in rows:
            # The order of TASK_COLUMNS: unscored, not gold, priority 0, nothing counted yet, no
            # agreement, not excluded, a ranking task of no evaluation.
            copy.write_row((task_id, project_id, prompt_id, overlap, target_overlap, None, False, None, 0, 0, 0, False,
                            None, False, "ranking", None, now))


def copy_task_responses(*, rows: Iterable[tuple[int, int]]) -> None:
    """COPY task-response links: (task id, response id)."""
    with connection.cursor() as cursor, cursor.cursor.copy(_copy_sql("link")) as copy:
        for row in rows:
            copy.write_row(row)


def constraints_immediate(immediate: bool) -> None:
    """Check this transaction's deferrable constraints at the end of each statement (True) or at
    the commit again (False, Django's default: its foreign keys are DEFERRABLE INITIALLY DEFERRED)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE" if immediate else "SET CONSTRAINTS ALL DEFERRED")
