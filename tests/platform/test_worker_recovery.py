"""A worker SIGKILLed mid-run: its generation batch, export or training job resumes on a second
worker within the reaper's staleness, although the broker's visibility timeout is an hour.

The workers run with CELERY_VISIBILITY_TIMEOUT=3600 (production's), so the broker never gives the
dead worker's message back during the test: only the heartbeat and the reaper can resume the
work. The test runs the reaper itself every second, as `celery beat` would every
WORK_REAP_EVERY_SECONDS. Waits are on events with a deadline that restarts at every sign of
progress (CI machines are busy), never on speed; the resume time is printed.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from annotation.models import ExportSnapshot, GenerationRun, JobStatus, Response, RunStatus, TrainingJob, WorkHeartbeat
from annotation.services.export import export_snapshot_create, manifest_verify
from annotation.services.generation import generation_run_create
from annotation.services.training import training_job_create
from annotation.services.work import work_reap
from config.celery import app
from tests.celery_worker import CeleryWorker
from tests.factories import make_project, make_user
from tests.generation_helpers import add_prompts, numbered_prompts, responses_per_prompt

pytestmark = [pytest.mark.needs_postgres, pytest.mark.needs_redis, pytest.mark.slow,
              pytest.mark.django_db(transaction=True)]

WORKER_ENV = {"CELERY_VISIBILITY_TIMEOUT": "3600", "WORK_HEARTBEAT_SECONDS": "0.5", "TRAINING_STALE_SECONDS": "5"}
STALE = 5.0  # the reaper's staleness in these tests (production: WORK_STALE_SECONDS=60)
NO_PROGRESS_LIMIT = 300.0  # fail only after this long without any sign of progress


def wait_until(done: Callable[[], bool], progress: Callable[[], object], what: str, worker: CeleryWorker,
               every: Callable[[], None] | None = None) -> None:
    """Wait for `done`; the deadline restarts whenever `progress()` changes."""
    last, deadline = progress(), time.monotonic() + NO_PROGRESS_LIMIT
    while not done():
        if every:
            every()
        now = progress()
        if now != last:
            last, deadline = now, time.monotonic() + NO_PROGRESS_LIMIT
        assert time.monotonic() < deadline, f"no progress for {NO_PROGRESS_LIMIT}s waiting for {what}\n{worker.log()[-4000:]}"
        time.sleep(0.2)


def kill_and_resume(*, first: CeleryWorker, queues: tuple[str, ...], monkeypatch, resumed: Callable[[], bool],
                    done: Callable[[], bool], progress: Callable[[], object], capsys, what: str,
                    after_kill: Callable[[], None] | None = None) -> float:
    """SIGKILL `first` (a task of it beating), start a second worker, reap each second until `done`.
    `after_kill` runs right after the SIGKILL. Returns the seconds from the kill until `resumed()`."""
    assert WorkHeartbeat.objects.exists(), "the kill must land inside a task"
    first.kill()
    killed_at = time.monotonic()
    if after_kill:
        after_kill()
    first.stop()
    monkeypatch.setattr(app.control, "purge", lambda: 0)  # keep the messages still queued
    second = CeleryWorker(queues=queues, extra_env=WORKER_ENV)
    second.start()
    resumed_after: list[float] = []

    def reap() -> None:
        work_reap()
        if not resumed_after and resumed():
            resumed_after.append(time.monotonic() - killed_at)

    try:
        wait_until(done, progress, what, second, every=reap)
    finally:
        second.stop()
    assert resumed_after, f"{what}: finished without resuming?"
    with capsys.disabled():
        print(f"\n{what}: resumed {resumed_after[0]:.1f} s after the SIGKILL (reaper staleness {STALE:.0f} s; "
              f"production: WORK_STALE_SECONDS + WORK_REAP_EVERY_SECONDS)")
    return resumed_after[0]


def test_a_generation_batch_of_a_killed_worker_resumes_on_another_worker_and_writes_each_response_once(
        tiny_model_path, monkeypatch, capsys, settings):
    settings.WORK_STALE_SECONDS = STALE
    project = make_project("Reaped gen", responses_per_prompt=4)
    add_prompts(project, numbered_prompts(16))
    first = CeleryWorker(queues=("generation",), extra_env=WORKER_ENV)
    first.start()
    try:
        # Every sample runs the full 160 tokens, so a batch takes long enough to be killed inside it.
        run = generation_run_create(project=project, max_new_tokens=160, batch_size=4, params={"min_new_tokens": 160})
        row = GenerationRun.objects.filter(pk=run.pk)
        wait_until(lambda: row.filter(batches_done__gte=1).exists() and WorkHeartbeat.objects.exists(),
                   lambda: Response.objects.filter(run=run).count(), "a batch to be running", first)
        dead = WorkHeartbeat.objects.get()
        kill_and_resume(
            first=first, queues=("generation",), monkeypatch=monkeypatch, capsys=capsys, what="generation batch",
            resumed=lambda: WorkHeartbeat.objects.filter(key=dead.key, requeues__gte=1).exclude(worker="").exists()
            or Response.objects.filter(run=run, prompt_id__in=dead.args[1]).exists(),
            done=lambda: row.exclude(status=RunStatus.RUNNING).exists(),
            progress=lambda: (Response.objects.filter(run=run).count(), list(WorkHeartbeat.objects.values_list("beat_at"))),
        )
    finally:
        first.stop()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    counts = responses_per_prompt(run)
    assert len(counts) == 16 and set(counts.values()) == {4}
    assert Response.objects.filter(run=run).values("prompt_id", "sample_index").distinct().count() == 64 == \
        Response.objects.filter(run=run).count()
    assert (run.batches_done, run.prompts_done, run.responses_count) == (4, 16, 64)
    assert not WorkHeartbeat.objects.exists()


def hold_mid_export(snapshot_id: int, worker: CeleryWorker):
    """A connection of its own holding the snapshot's row lock while the export is part-way (a chunk or
    more written, not finished): the worker then blocks at its next progress update, so the kill lands
    mid-export however fast the machine is (an export of 600 tasks can finish between two polls)."""
    import psycopg
    from django.db import connection

    holder = psycopg.connect(**connection.get_connection_params())
    deadline = time.monotonic() + NO_PROGRESS_LIMIT
    while True:
        status, done = holder.execute(f"SELECT status, rows_done FROM {ExportSnapshot._meta.db_table} "  # noqa: S608
                                      "WHERE id = %s FOR UPDATE", [snapshot_id]).fetchone()
        if status == JobStatus.RUNNING and 10 <= done < 600 and WorkHeartbeat.objects.exists():
            return holder  # the transaction stays open: the lock is held
        holder.rollback()
        assert status in (JobStatus.QUEUED, JobStatus.RUNNING), f"the export finished before the kill ({status}, {done} rows)"
        assert time.monotonic() < deadline, f"the export did not start\n{worker.log()[-4000:]}"
        time.sleep(0.01)


def release_as_a_dead_client(holder) -> None:
    """End the killed worker's backends that wait on the held lock, as PostgreSQL would once it noticed the
    client gone (a backend waiting on a lock does not look at its socket: it would otherwise commit the
    dead worker's progress update and keep its session advisory lock), then release the lock."""
    holder.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))")
    holder.rollback()
    holder.close()


def test_an_export_of_a_killed_worker_resumes_on_another_worker(monkeypatch, capsys, settings):
    from tests.export_factories import bulk_tasks, engineer_project

    settings.WORK_STALE_SECONDS = STALE
    project, engineer, _ = engineer_project("reaped")
    bulk_tasks(project, [make_user("k1"), make_user("k2")], 600)
    env = {**WORKER_ENV, "EXPORT_CHUNK_TASKS": "10"}  # many small chunks, so the kill lands mid-export
    first = CeleryWorker(queues=("default",), extra_env=env)
    first.start()
    try:
        snapshot = export_snapshot_create(project=project, created_by=engineer,
                                          options={"format": "rankings", "file_format": "parquet"})
        row = ExportSnapshot.objects.filter(pk=snapshot.pk)
        holder = hold_mid_export(snapshot.pk, first)
        assert row.get().rows_done < 600, "the export finished before the kill"
        kill_and_resume(
            first=first, queues=("default",), monkeypatch=monkeypatch, capsys=capsys, what="export",
            after_kill=lambda: release_as_a_dead_client(holder),
            resumed=lambda: WorkHeartbeat.objects.filter(requeues__gte=1).exclude(worker="").exists()
            or row.filter(status=JobStatus.SUCCEEDED).exists(),
            done=lambda: row.filter(status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED]).exists(),
            progress=lambda: (row.values_list("rows_done", flat=True).first(), list(WorkHeartbeat.objects.values_list("beat_at"))),
        )
    finally:
        first.stop()
    done = row.get()
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert done.rows_done == done.rows_total == 600
    assert manifest_verify(directory=Path(settings.MEDIA_ROOT) / done.directory) == []
    assert sum(info["rows"] for info in done.files.values()) == 600


def test_a_training_job_of_a_killed_worker_resumes_on_another_worker(tiny_model_path, monkeypatch, capsys, settings):
    from tests.training.helpers import FAST, make_export

    settings.WORK_STALE_SECONDS = STALE
    engineer = make_user("reaped-eng")
    project = make_project("Reaped training", admin=engineer)
    export = make_export(project)
    first = CeleryWorker(queues=("training",), extra_env=WORKER_ENV)
    first.start()
    try:
        job = training_job_create(project=project, kind="reward", export=export,
                                  options={**FAST, "max_steps": 40, "eval_steps": 20, "logging_steps": 10})
        row = TrainingJob.objects.filter(pk=job.pk)
        wait_until(lambda: row.filter(steps_done__gte=3).exists() and WorkHeartbeat.objects.exists(),
                   lambda: row.values_list("steps_done", "heartbeat_at").first(), "the job to train", first)
        kill_and_resume(
            first=first, queues=("training",), monkeypatch=monkeypatch, capsys=capsys, what="training job",
            resumed=lambda: row.filter(attempts__gte=2).exists(),
            done=lambda: row.filter(status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED]).exists(),
            progress=lambda: (row.values_list("steps_done", "heartbeat_at").first(),
                              list(WorkHeartbeat.objects.values_list("beat_at"))),
        )
    finally:
        first.stop()
    job = row.get()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.attempts == 2 and job.steps_done == 40
