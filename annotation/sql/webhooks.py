"""The webhook service's statements (annotation.services.webhooks): the raw reads and writes of
webhook_events_emit, which runs inside the annotators' submit transaction when a task completes.

Both are portable SQL (ON CONFLICT ... DO NOTHING RETURNING is PostgreSQL's and SQLite's), so
they need no twin.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from annotation.models import Project, Webhook, WebhookDelivery
from annotation.sql import cursor as hot_cursor
from annotation.sql.names import Names, Sql, column_list, per_vendor, placeholders, render

INSERT_COLUMNS = column_list(
    "webhook delivery insert (annotation.sql.webhooks.deliveries_insert)",
    WebhookDelivery,
    ("webhook", "event", "object_type", "object_id", "body", "status", "attempts", "last_status_code", "last_error",
     "created_at", "next_attempt_at", "last_attempt_at", "finished_at"),
    pk=False,
)


@per_vendor
def _hooks_sql() -> str:
    w, p = Names(Webhook, "w"), Names(Project, "p")
    return render("SELECT {w.id}, {w.events}, {p.slug} FROM {webhook} w JOIN {project} p ON {p.id} = {w.project} "
                  "WHERE {w.project} = %s ORDER BY {w.id}", w=w, p=p, webhook=Names(Webhook), project=Names(Project))


def hooks_of_project(*, project_id: int) -> list[tuple[int, list[str], str]]:
    """(webhook id, its events, the project's slug) for each webhook of the project."""
    with hot_cursor() as cursor:
        cursor.execute(_hooks_sql(), [project_id])
        rows = cursor.fetchall()
    # JSON arrives decoded from PostgreSQL, as text from SQLite.
    return [(hook_id, json.loads(events) if isinstance(events, str) else events, slug) for hook_id, events, slug in rows]


@per_vendor
def _insert_sql(count: int) -> str:
    d = Names(WebhookDelivery)
    row = Sql(f"({placeholders(len(INSERT_COLUMNS.fields))})")
    return render("INSERT INTO {d} ({columns}) VALUES {rows} "
                  "ON CONFLICT ({webhook}, {event}, {object_id}) DO NOTHING RETURNING {id}",
                  d=d, columns=INSERT_COLUMNS.sql(), rows=Sql(", ".join([row] * count)),
                  webhook=d.webhook, event=d.event, object_id=d.object_id, id=d.id)


def deliveries_insert(*, webhook_ids: list[int], event: str, object_type: str, object_id: int, body: str,
                      status: str, now: datetime) -> list[int]:
    """One pending delivery per webhook, due now; the ids of those inserted (a webhook that already
    has this event for this object is skipped: the unique constraint)."""
    params: list[Any] = []
    for webhook_id in webhook_ids:
        values = {"webhook": webhook_id, "event": event, "object_type": object_type, "object_id": object_id, "body": body,
                  "status": status, "attempts": 0, "last_status_code": None, "last_error": "", "created_at": now,
                  "next_attempt_at": now, "last_attempt_at": None, "finished_at": None}
        params += [values[name] for name in INSERT_COLUMNS.fields]
    with hot_cursor() as cursor:
        cursor.execute(_insert_sql(len(webhook_ids)), params)
        return [row[0] for row in cursor.fetchall()]
