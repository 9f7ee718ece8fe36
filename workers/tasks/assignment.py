"""Celery tasks on the default queue: returning the slots of expired leases to the pool."""
from __future__ import annotations

from django.db import OperationalError

from annotation.dispatch import TaskName
from config.celery import app

# Leases also expire lazily at every claim; this sweep frees the slots of projects nobody is
# claiming in, so progress figures and "left" counts stay right.
EXPIRE_EVERY_SECONDS = 60.0


@app.task(
    name=TaskName.EXPIRE_LEASES,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def expire_leases() -> int:
    """Expire every overdue lease; returns how many. Idempotent: a second run finds none."""
    from annotation.services.assignment import assignments_expire_all

    return assignments_expire_all()


@app.on_after_finalize.connect
def _schedule(sender, **kwargs) -> None:
    # Runs under `celery beat`; a plain worker ignores the schedule.
    sender.add_periodic_task(EXPIRE_EVERY_SECONDS, expire_leases.s(), name="expire leases")
