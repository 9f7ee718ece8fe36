"""Celery tasks on the default queue: what a bulk import leaves for after its commit (the full-text
vectors it deferred, the planner's statistics)."""
from __future__ import annotations

from django.db import OperationalError

from annotation.dispatch import TaskName
from config.celery import app

# The import enqueues a fill after its commit; this sweep catches a lost message or a killed fill.
FILL_EVERY_SECONDS = 60.0


@app.task(name=TaskName.RESPONSE_VECTORS_FILL, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def response_vectors_fill_task(analyze: bool = False) -> int:
    """Fill every queued response's vector (then, with `analyze`, refresh the loaded tables'
    statistics); returns how many. Idempotent: a second run finds none."""
    from annotation.services.response_search import bulk_load_settle

    return bulk_load_settle(analyze=analyze)


@app.on_after_finalize.connect
def _schedule(sender, **kwargs) -> None:
    # Runs under `celery beat`; a plain worker ignores the schedule.
    sender.add_periodic_task(FILL_EVERY_SECONDS, response_vectors_fill_task.s(), name="fill deferred response vectors")
