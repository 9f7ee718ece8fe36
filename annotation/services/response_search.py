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
# An import that wrote at least this many prompts and responses also refreshes the planner's
# statistics after its fill: until autovacuum gets to it, a search planned on the old counts picks
# per-row index probes and took 80 s over 100k fresh tasks (0.5 s planned on fresh ones).
ANALYZE_AFTER_ROWS = 5_000


def response_vectors_defer() -> None:
    """For the rest of the current transaction, queue new responses for the fill instead of computing
    their vectors (the caller enqueues the fill: bulk_load_settle_after_commit). PostgreSQL only;
    IMPORT_DEFER_SEARCH_VECTORS=0 turns it off (the import then computes them as any insert does)."""
    if postgres_statements() and settings.IMPORT_DEFER_SEARCH_VECTORS:
        with connection.cursor() as cursor:
            cursor.execute(sql.defer_response_vectors_sql())


def bulk_load_settle_after_commit(*, rows: int) -> None:
    """After a bulk import of `rows` prompts and responses: once the transaction commits (its queued
    ids are visible then), fill the deferred vectors and, for a large one, refresh the statistics."""
    if postgres_statements():
        enqueue_after_commit(TaskName.RESPONSE_VECTORS_FILL, kwargs={"analyze": rows >= ANALYZE_AFTER_ROWS})


def response_vectors_fill(*, batch: int = FILL_BATCH) -> int:
    """Compute the vectors of queued responses, `batch` per transaction, until the queue is empty;
    returns how many were taken. Concurrent fills share the queue (SKIP LOCKED), and a fill killed
    mid-batch loses only its uncommitted batch, which stays queued."""
    if not postgres_statements():
        return 0
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql.fill_pending_sql(), [batch])
            taken, _written = cursor.fetchone()
        if taken == 0:
            return total
        total += taken


def bulk_load_settle(*, analyze: bool) -> int:
    """The fill (response_vectors_fill); with `analyze`, fresh planner statistics for the loaded
    tables first (searches meanwhile are planned on the real counts) and for the vectors after.
    Returns how many vectors were filled."""
    if not (analyze and postgres_statements()):
        return response_vectors_fill()
    before, after = sql.analyze_loaded_tables_sql()
    with connection.cursor() as cursor:
        cursor.execute(before)
    filled = response_vectors_fill()
    with connection.cursor() as cursor:
        cursor.execute(after)
    return filled


def response_vectors_pending() -> int:
    """How many responses still wait for their vectors."""
    return ResponseSearchPending.objects.count() if postgres_statements() else 0
