"""Celery tasks on the generation queue (GPU hosts): one task per batch of a generation run.

Acknowledged late and rejected when the worker is lost (settings), so a batch whose worker was
killed is redelivered; the service computes only what is still missing, so a rerun is safe. A
batch beats a heartbeat while it runs, so a batch whose whole worker died is re-sent by the
reaper within a minute or two (annotation.services.work), not after the visibility timeout.
"""
from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from annotation.dispatch import TaskName
from annotation.services.generation import (
    generation_batch_give_up,
    generation_batch_run,
    generation_run_fail,
)
from annotation.services.work import work_heartbeat
from sampling import ModelLoadError, TransientBackendError

logger = logging.getLogger(__name__)

MAX_RETRIES = 5


def batch_retry_seconds(retries: int) -> int:
    return min(300, 5 * 2**retries)


@shared_task(name=TaskName.GENERATION_BATCH, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=MAX_RETRIES)
def generate_batch(self, run_id: int, prompt_ids: list[int]) -> dict:
    """Generate the missing responses of `prompt_ids` for run `run_id` (under a heartbeat: a dead
    worker's batch is re-sent by the reaper, annotation.services.work)."""
    with work_heartbeat(task_name=TaskName.GENERATION_BATCH, args=[run_id, prompt_ids]):
        return _generate_batch(self, run_id, prompt_ids)


def _generate_batch(self, run_id: int, prompt_ids: list[int]) -> dict:
    final = self.request.retries >= self.max_retries
    logger.info("generation run %s: batch of %d prompts (attempt %d)", run_id, len(prompt_ids), self.request.retries + 1)
    try:
        outcome = generation_batch_run(run_id=run_id, prompt_ids=prompt_ids, final_attempt=final)
    except ModelLoadError as exc:
        generation_run_fail(run_id=run_id, error=str(exc))
        return {"failed": str(exc)}
    except (TransientBackendError, OperationalError, InterfaceError) as exc:
        if final:
            generation_batch_give_up(run_id=run_id, prompt_ids=prompt_ids, reason=f"gave up after {MAX_RETRIES + 1} attempts: {exc}")
            return {"gave_up": str(exc)}
        raise self.retry(exc=exc, countdown=batch_retry_seconds(self.request.retries)) from exc
    except Exception as exc:
        # A bug or an unexpected backend error: record it on the prompts so the run still ends.
        logger.exception("generation run %s: batch failed", run_id)
        generation_batch_give_up(run_id=run_id, prompt_ids=prompt_ids, reason=f"{type(exc).__name__}: {exc}")
        raise
    if outcome.retry_prompt_ids:
        raise self.retry(countdown=batch_retry_seconds(self.request.retries))
    logger.info("generation run %s: batch done (%s)", run_id, outcome.skipped or f"{outcome.written} responses written")
    return {"written": outcome.written, "skipped": outcome.skipped}


@shared_task(name=TaskName.PRIORITY_SCORE, acks_late=True, reject_on_worker_lost=True)
def priority_score(*, project_id: int, job_id: int, only_unscored: bool = False) -> int:
    """Score the project's open tasks with reward job `job_id` (uncertainty priority); returns how many."""
    from annotation.services.priority import priority_scores_compute

    return priority_scores_compute(project_id=project_id, job_id=job_id, only_unscored=only_unscored)
