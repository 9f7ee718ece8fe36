"""The reaper of dead work, in-process: a stale heartbeat is re-sent once, a fresh one never, and
`celery beat` schedules the reaper on the default queue."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from annotation.dispatch import TaskName
from annotation.models import WorkHeartbeat
from annotation.services.work import work_heartbeat, work_key, work_reap
from config.celery import app
from workers.queues import ROUTES, Queue

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.django_db(transaction=True)]


def _row(*, seconds_ago: float, job: int) -> WorkHeartbeat:
    at = timezone.now() - timedelta(seconds=seconds_ago)
    args = [job]
    return WorkHeartbeat.objects.create(key=work_key(TaskName.EXPORT_RUN, args), task_name=TaskName.EXPORT_RUN, args=args,
                                        worker="gone:1", started_at=at, beat_at=at)


def test_a_stale_heartbeat_is_re_sent_once_and_a_fresh_one_is_left_alone(settings):
    settings.WORK_STALE_SECONDS = 60
    stale, fresh = _row(seconds_ago=61, job=999_998), _row(seconds_ago=5, job=999_999)

    assert work_reap() == [stale.key]  # the re-sent export of a missing snapshot does nothing
    assert work_reap() == []  # claimed: its beat is now, so it is not sent again until it goes stale again
    stale.refresh_from_db()
    assert stale.requeues == 1 and stale.worker == "" and stale.beat_at > timezone.now() - timedelta(seconds=5)
    assert WorkHeartbeat.objects.get(pk=fresh.pk).requeues == 0


def test_the_heartbeat_is_recorded_only_where_a_reaper_could_use_it():
    # Tasks in-process (no broker, as here): nothing recorded, the work cannot outlive its caller.
    with work_heartbeat(task_name=TaskName.EXPORT_RUN, args=[1]):
        assert not WorkHeartbeat.objects.exists()


def test_celery_beat_runs_the_reaper_on_the_default_queue():
    # A fresh interpreter, as `celery beat` starts: the schedule is built when the app finalizes.
    code = ("import django; django.setup()\n"
            "from config.celery import app\n"
            "app.loader.import_default_modules(); app.finalize()\n"
            "print(*sorted(e['task'] for e in app.conf.beat_schedule.values()))")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert TaskName.WORK_REAP in done.stdout.split()
    assert not any(TaskName.WORK_REAP.startswith(pattern.rstrip("*")) for pattern in ROUTES)  # unrouted: default
    assert app.conf.task_default_queue == Queue.DEFAULT
