"""A judge run on a real Celery worker process (queue `generation`), on Redis and PostgreSQL."""
from __future__ import annotations

import time

import pytest

from annotation.models import JudgeComparison, JudgeRanking, JudgeRun, RunStatus
from annotation.services.judge import FINISHED, judge_run_create
from tests.judge.helpers import judged_project

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.needs_redis, pytest.mark.needs_postgres]


def test_a_worker_judges_every_batch_and_finishes_the_run_once(celery_worker, tiny_model_path):
    project, tasks = judged_project("worker", 3)
    run = judge_run_create(project=project, backend="transformers", model=str(tiny_model_path), batch_size=1)
    deadline = time.monotonic() + 300  # generous: a cold worker loads torch and the model first
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in FINISHED:
            break
        time.sleep(0.5)
    assert run.status == RunStatus.SUCCEEDED, (run.error, celery_worker.log_path.read_text()[-3000:])
    assert (run.batches_done, run.tasks_done, run.comparisons_done) == (3, 3, 9)
    assert JudgeComparison.objects.filter(run=run).count() == 9 and JudgeRanking.objects.filter(run=run).count() == 3
    assert JudgeRun.objects.filter(pk=run.pk, started_at__isnull=False, finished_at__isnull=False).exists()
