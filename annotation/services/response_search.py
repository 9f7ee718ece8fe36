"""Full-text vectors of responses (PostgreSQL): deferred by a bulk import, filled afterwards.

Every other insert gets its vectors from the response table's trigger in its own statement. A bulk
import defers them (`response_vectors_defer`) because they are most of its database work; the fill
then computes them in transactions of FILL_BATCH responses, on a worker after the import commits
and from celery beat (a lost message, a killed worker). The search gives the same answer meanwhile
(annotation.sql.curation reads the queued responses' text), only more slowly for those rows.
"""
from __future__ import annotations

from django.conf import settings
from django.db import connection, transaction

from annotation.dispatch import TaskName, enqueue_after_commit
from annotation.models import ResponseSearchPending
from annotation.sql import curation as sql
from annotation.sql import postgres_statements

FILL_BATCH = 5_000  # a transaction of ~0.2 s: short row locks, and a killed fill loses little


def response_vectors_defer() -> None:
    """For the rest of the current transaction, queue new responses for the fill instead of computing
    their vectors (the caller enqueues the fill: response_vectors_fill_after_commit). PostgreSQL only;
    IMPORT_DEFER_SEARCH_VECTORS=0 turns it off (the import then computes them as any insert does)."""
    if postgres_statements() and settings.IMPORT_DEFER_SEARCH_VECTORS:
        with connection.cursor() as cursor:
            cursor.execute(sql.defer_response_vectors_sql())


def response_vectors_fill_after_commit() -> None:
    """Enqueue the fill for when the current transaction commits (its queued ids are visible then)."""
    if postgres_statements() and settings.IMPORT_DEFER_SEARCH_VECTORS:
        enqueue_after_commit(TaskName.RESPONSE_VECTORS_FILL)


def response_vectors_fill(*, batch: int = FILL_BATCH, batches: int | None = None) -> int:
    """Compute the vectors of queued responses, `batch` per transaction, until the queue is empty (or
    `batches` transactions ran); returns how many were taken. Concurrent fills share the queue (SKIP
    LOCKED), and a fill killed mid-batch loses only its uncommitted batch, which stays queued."""
    if not postgres_statements():
        return 0
    total = done = 0
    while batches is None or done < batches:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql.fill_pending_sql(), [batch])
            taken, _written = cursor.fetchone()
        total += taken
        done += 1
        if taken == 0:
            break
    return total


def response_vectors_pending() -> int:
    """How many responses still wait for their vectors."""
    return ResponseSearchPending.objects.count() if postgres_statements() else 0
