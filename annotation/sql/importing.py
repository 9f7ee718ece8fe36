"""The import's bulk writers (annotation.services.importing): PostgreSQL COPY of prompts and responses.

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

from annotation.models import Prompt, Response
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


@per_vendor
def _copy_sql(which: str) -> str:
    listed = {"prompt": PROMPT_COLUMNS, "response": RESPONSE_COLUMNS}[which]
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
