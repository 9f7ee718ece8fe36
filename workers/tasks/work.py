"""Celery tasks on the default queue: re-sending long-running work whose worker died.

The heartbeat and the reaper are annotation.services.work's; this periodic task runs the reaper
under `celery beat` (docker-compose.yml's `beat` service). Without beat nothing is reaped and a
dead worker's task waits for the broker's visibility timeout (CELERY_VISIBILITY_TIMEOUT, an hour).
"""
from __future__ import annotations

from django.conf import settings
from django.db import OperationalError

from annotation.dispatch import TaskName
from annotation.services.work import work_reap
from config.celery import app


@app.task(name=TaskName.WORK_REAP, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def work_reap_task() -> int:
    """Re-send every task whose heartbeat stopped; returns how many. A second run finds none."""
    return len(work_reap())


@app.on_after_finalize.connect
def _schedule(sender, **kwargs) -> None:
    # Runs under `celery beat`; a plain worker ignores the schedule.
    sender.add_periodic_task(float(settings.WORK_REAP_EVERY_SECONDS), work_reap_task.s(), name="reap dead work")
