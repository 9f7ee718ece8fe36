"""Celery task on the default queue: the Markdown of new tasks rendered ahead of time."""
from __future__ import annotations

from django.db import OperationalError

from annotation.dispatch import TaskName
from config.celery import app


# acks_late: a worker killed mid-fill gets the message redelivered (the fill is idempotent and keeps
# its committed batches); a message lost anyway is made up for by the lease's heal.
@app.task(name=TaskName.PRERENDER_FILL, acks_late=True, reject_on_worker_lost=True, autoretry_for=(OperationalError,),
          retry_backoff=True, max_retries=5)
def prerender_fill_task(project_id: int, since_task_id: int = 0) -> int:
    """Render and store the HTML of the project's open tasks above `since_task_id` that lack it;
    returns how many texts. Idempotent: a second run renders none."""
    from annotation.services.prerender import prerender_fill

    return prerender_fill(project_id=project_id, since_task_id=since_task_id)
