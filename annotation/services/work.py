"""Recovery of long-running work whose worker died: a heartbeat per task and a periodic reaper.

Celery's messages are acknowledged late, so a task whose worker is SIGKILLed stays unacknowledged
in Redis until the broker's visibility timeout (an hour: it must exceed the longest batch, or a
slow batch would be delivered twice while it runs). Waiting for it would leave a run stuck for an
hour with idle workers. Instead:

- `work_heartbeat(...)`, a context manager around the task's body (generation batch, export,
  training job), keeps a WorkHeartbeat row whose `beat_at` a daemon thread refreshes every
  WORK_HEARTBEAT_SECONDS from its own connection (so a long forward pass or training step does
  not stop it); the row is deleted when the body ends, however it ends (retries included).
- `work_reap()`, run by `celery beat` every WORK_REAP_EVERY_SECONDS on the default queue, re-sends
  the task of every row whose beat is older than WORK_STALE_SECONDS (its process is gone), once
  per staleness: the row is claimed with a conditional update, so two reapers never both send.

Every task that runs under a heartbeat is idempotent (the generation service writes only the
missing responses, unique per (prompt, run, sample); an export rewrites its snapshot; a training
job is claimed by a conditional update on its own heartbeat), so the original message, which the
broker still redelivers after the visibility timeout, does no harm: each response is written once.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from annotation.dispatch import enqueue_after_commit, tasks_run_in_process
from annotation.models import WorkHeartbeat

logger = logging.getLogger(__name__)


def heartbeat_seconds() -> float:
    return float(getattr(settings, "WORK_HEARTBEAT_SECONDS", 10))


def stale_seconds() -> float:
    """A beat older than this means the task's process is gone (several missed beats, not one slow one)."""
    return float(getattr(settings, "WORK_STALE_SECONDS", 60))


def work_key(task_name: str, args: Sequence[Any]) -> str:
    """One row per (task, arguments): a redelivered or re-sent message beats the same row."""
    digest = hashlib.sha256(json.dumps(list(args), sort_keys=True, default=str).encode()).hexdigest()[:32]
    return f"{task_name[-150:]}:{digest}"


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


class _Beater(threading.Thread):
    def __init__(self, key: str, worker: str) -> None:
        super().__init__(name=f"work-heartbeat-{key}", daemon=True)
        self.key, self.worker = key, worker
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(heartbeat_seconds()):
                try:
                    WorkHeartbeat.objects.filter(key=self.key).update(beat_at=timezone.now(), worker=self.worker)
                except Exception:  # a database blip: the next beat tries again
                    logger.warning("work heartbeat %s: could not beat", self.key, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=30)


@contextmanager
def work_heartbeat(*, task_name: str, args: Sequence[Any]) -> Iterator[str]:
    """Beat a WorkHeartbeat row for `task_name(*args)` while the body runs; yields its key.

    When tasks run in-process (no broker: the demo, most tests) or inside a transaction nothing is
    recorded: the work cannot outlive its caller, and no reaper could re-send it.
    """
    key = work_key(task_name, args)
    if connection.in_atomic_block or tasks_run_in_process():
        yield key
        return
    now, worker = timezone.now(), _worker_name()
    WorkHeartbeat.objects.update_or_create(
        key=key, defaults={"task_name": task_name, "args": list(args), "worker": worker, "started_at": now, "beat_at": now},
    )
    beater = _Beater(key, worker)
    beater.start()
    try:
        yield key
    finally:
        beater.stop()
        # Only our own row: if we were taken for dead and the task re-sent, the new attempt's row stays.
        WorkHeartbeat.objects.filter(key=key, worker=worker).delete()


def work_reap(*, now: datetime | None = None) -> list[str]:
    """Re-send the task of every heartbeat that stopped; returns their keys.

    Each stale row is claimed with a conditional update on its old beat (two reapers never both
    send) and its beat set to now, so the re-sent task has WORK_STALE_SECONDS to start beating
    before it is taken for dead in turn.
    """
    now = now or timezone.now()
    stale = list(WorkHeartbeat.objects.filter(beat_at__lt=now - timedelta(seconds=stale_seconds())).order_by("beat_at")[:500])
    sent: list[str] = []
    for row in stale:
        with transaction.atomic():
            claimed = WorkHeartbeat.objects.filter(pk=row.pk, beat_at=row.beat_at).update(
                beat_at=now, worker="", requeues=row.requeues + 1,
            )
            if claimed != 1:
                continue
            logger.warning("work %s: no heartbeat since %s (worker %s gone); re-sending %s%s",
                           row.key, row.beat_at.isoformat(), row.worker or "?", row.task_name, row.args)
            enqueue_after_commit(row.task_name, args=row.args)
        sent.append(row.key)
    return sent
