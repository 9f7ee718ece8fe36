"""Celery tasks on the training queue (GPU hosts): one task per training job.

The service claims the job with a conditional update, so a redelivered message (acks_late, or the
broker's visibility timeout passing during a long run) does nothing while the job runs or after it ends.
A job whose worker was killed (heartbeat stale) is restarted from scratch by the redelivered message.
Failures are recorded on the job; training is not retried (bad data or options do not get better).
"""
from __future__ import annotations

import logging

from celery import shared_task

from annotation.dispatch import TaskName
from annotation.services.training import training_job_is_running, training_job_run, training_stale_seconds
from annotation.services.work import work_heartbeat

logger = logging.getLogger(__name__)


@shared_task(bind=True, name=TaskName.TRAINING_RUN, acks_late=True, max_retries=None)
def training_job_run_task(self, job_id: int) -> str:
    """Train job `job_id` in this worker process, streaming its metrics into the database.

    Under a heartbeat: if the worker dies, the reaper re-sends the job (annotation.services.work),
    whose claim then finds the job's own heartbeat stale and starts it again."""
    with work_heartbeat(task_name=TaskName.TRAINING_RUN, args=[job_id]):
        job = training_job_run(job_id=job_id)
    if job is None and training_job_is_running(job_id=job_id):
        # Another worker runs it (this message came back after the broker's visibility timeout). Keep
        # one message alive as a watchdog: if that worker dies, a later delivery finds the heartbeat
        # stale and restarts the job; once the job has ended, the watchdog stops.
        raise self.retry(countdown=training_stale_seconds())
    return job.status if job is not None else "skipped"
