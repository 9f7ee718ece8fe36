"""Celery tasks on the generation queue (GPU hosts): one task per batch of tasks of a judge run.

Acknowledged late and rejected when the worker is lost (settings), so a batch whose worker was
killed is redelivered; the service judges only the tasks still without a judge ranking.
"""
from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from annotation.dispatch import TaskName
from annotation.services.judge import judge_batch_give_up, judge_batch_run, judge_run_fail
from annotation.services.work import work_heartbeat
from sampling import ModelLoadError, TransientBackendError
from workers.tasks.generation import batch_retry_seconds

logger = logging.getLogger(__name__)

MAX_RETRIES = 5


@shared_task(name=TaskName.JUDGE_BATCH, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=MAX_RETRIES)
def judge_batch(self, run_id: int, task_ids: list[int]) -> dict:
    """Judge the missing tasks of `task_ids` for judge run `run_id` (under a heartbeat: a dead
    worker's batch is re-sent by the reaper, annotation.services.work)."""
    with work_heartbeat(task_name=TaskName.JUDGE_BATCH, args=[run_id, task_ids]):
        return _judge_batch(self, run_id, task_ids)


def _judge_batch(self, run_id: int, task_ids: list[int]) -> dict:
    final = self.request.retries >= self.max_retries
    try:
        outcome = judge_batch_run(run_id=run_id, task_ids=task_ids, final_attempt=final)
    except ModelLoadError as exc:
        judge_run_fail(run_id=run_id, error=str(exc))
        return {"failed": str(exc)}
    except (TransientBackendError, OperationalError, InterfaceError) as exc:
        if final:
            judge_batch_give_up(run_id=run_id, task_ids=task_ids, reason=f"gave up after {MAX_RETRIES + 1} attempts: {exc}")
            return {"gave_up": str(exc)}
        raise self.retry(exc=exc, countdown=batch_retry_seconds(self.request.retries)) from exc
    except Exception as exc:
        logger.exception("judge run %s: batch failed", run_id)
        judge_batch_give_up(run_id=run_id, task_ids=task_ids, reason=f"{type(exc).__name__}: {exc}")
        raise
    if outcome.retry:
        logger.warning("judge run %s: transient failures, retrying the batch: %s", run_id, outcome.errors)
        raise self.retry(countdown=batch_retry_seconds(self.request.retries))
    return {"comparisons": outcome.comparisons_written, "skipped": outcome.skipped}
