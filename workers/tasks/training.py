"""Celery tasks on the training queue (GPU hosts): one task per training job.

The service claims the job with a conditional update, so a redelivered message (acks_late, or the
broker's visibility timeout passing during a long run) does nothing while the job runs or after it ends.
Failures are recorded on the job; training is not retried (bad data or options do not get better).
"""
from __future__ import annotations

import logging

from celery import shared_task

from annotation.services.training import training_job_run
from workers.queues import Queue

logger = logging.getLogger(__name__)


@shared_task(name="workers.tasks.training.training_job_run_task", queue=Queue.TRAINING, acks_late=True)
def training_job_run_task(job_id: int) -> str:
    """Train job `job_id` in this worker process, streaming its metrics into the database."""
    job = training_job_run(job_id=job_id)
    return job.status if job is not None else "skipped"
