"""Celery task on the default queue: the Markdown of new tasks rendered ahead of time."""
from __future__ import annotations

from django.db import OperationalError

from annotation.dispatch import TaskName
from config.celery import app


@app.task(name=TaskName.PRERENDER_FILL, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def prerender_fill_task(project_id: int, since_task_id: int = 0) -> int:
    """Render and store the HTML of the project's open tasks above `since_task_id` that lack it;
    returns how many texts. Idempotent: a second run renders none."""
    from annotation.services.prerender import prerender_fill

    return prerender_fill(project_id=project_id, since_task_id=since_task_id)
