"""Generation on a real Celery worker process with Redis: the full run, and a worker killed mid-batch."""
from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.core.management import call_command

from annotation.models import GenerationRun, RankingTask, Response, RunStatus
from annotation.services.generation import generation_run_create
from config.celery import app
from tests.celery_worker import CeleryWorker
from tests.factories import add_prompts, make_project, numbered_prompts
from tests.generation_helpers import responses_per_prompt, tasks_per_prompt

pytestmark = [pytest.mark.needs_postgres, pytest.mark.needs_redis, pytest.mark.slow]


def wait_for(predicate, timeout: float, what: str, worker: CeleryWorker | None = None, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}" + (f"\nworker log:\n{worker.log()[-4000:]}" if worker else ""))


def test_generate_wait_on_a_real_worker_gives_200_responses_and_50_tasks(tiny_model_path, celery_worker, capsys):
    project = make_project("Worker gen", responses_per_prompt=4)
    add_prompts(project, numbered_prompts(50))

    call_command("generate", project.slug, "--n", "4", "--max-new-tokens", "12", "--batch-size", "10", "--wait")

    run = GenerationRun.objects.get(project=project)
    assert run.status == RunStatus.SUCCEEDED, celery_worker.log()[-3000:]
    assert Response.objects.filter(run=run).count() == 200
    assert set(responses_per_prompt(run).values()) == {4}
    assert RankingTask.objects.filter(project=project).count() == 50
    assert (run.batches_done, run.prompts_done, run.responses_count) == (5, 50, 200)
    assert f"generation run {run.pk}: batch of 10 prompts" in celery_worker.log()
    assert "200 responses" in capsys.readouterr().out


def test_a_worker_killed_mid_batch_loses_nothing_and_duplicates_nothing(tiny_model_path, celery_worker, monkeypatch):
    project = make_project("Crash gen", responses_per_prompt=4)
    add_prompts(project, numbered_prompts(16))
    # Every sample runs the full 160 tokens, so a batch takes long enough to be killed inside it.
    run = generation_run_create(project=project, max_new_tokens=160, batch_size=4, params={"min_new_tokens": 160})
    assert run.batches_total == 4

    def second_batch_started():
        log = celery_worker.log()
        run.refresh_from_db()
        return log.count(f"generation run {run.pk}: batch of 4 prompts") >= 2 and run.batches_done == 1

    wait_for(second_batch_started, 300, "the second batch to start", celery_worker, interval=0.01)
    time.sleep(0.05)  # inside the batch: its start is logged, its end must not be
    celery_worker.kill()
    killed_at = time.monotonic()

    run.refresh_from_db()
    written = Response.objects.filter(run=run).count()
    assert run.status == RunStatus.RUNNING
    assert 1 <= run.batches_done < 4, "the kill must leave batches to do"
    assert written == run.batches_done * 16, "a batch is written whole or not at all"
    # Where the kill landed (inside a batch, or on a busy machine just after one) is not asserted:
    # that would test the machine's speed. Either way nothing may be lost or duplicated below.

    # kombu restores unacknowledged messages older than the visibility timeout when a worker starts.
    time.sleep(max(0.0, settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] + 1 - (time.monotonic() - killed_at)))
    monkeypatch.setattr(app.control, "purge", lambda: 0)  # keep the batches still queued
    restarted = CeleryWorker(queues=("generation",))
    restarted.start()
    try:
        wait_for(lambda: GenerationRun.objects.get(pk=run.pk).status != RunStatus.RUNNING, 600, "the run to finish", restarted, 0.2)
    finally:
        restarted.stop()

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    counts = responses_per_prompt(run)
    assert len(counts) == 16 and set(counts.values()) == {4}
    assert Response.objects.filter(run=run).values("prompt_id", "sample_index").distinct().count() == 64
    assert set(tasks_per_prompt(project).values()) == {1} and RankingTask.objects.filter(project=project).count() == 16
    assert (run.batches_done, run.prompts_done, run.responses_count, run.tasks_created) == (4, 16, 64, 16)
    assert set(Response.objects.filter(run=run).values_list("token_count", flat=True)) == {160}
