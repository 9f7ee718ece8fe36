"""Start, kill and restart a real Celery worker process against the test database and Redis."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

from config.celery import app

ROOT = Path(__file__).resolve().parent.parent


class CeleryWorker:
    """A worker subprocess. While it runs, tasks in this process are sent to Redis, not run eagerly."""

    def __init__(self, queues: tuple[str, ...] = ("default",), concurrency: int = 1, extra_env: dict | None = None):
        self.queues = queues
        self.concurrency = concurrency
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen | None = None
        self.log_path = Path(settings.MEDIA_ROOT) / f"celery-worker-{os.getpid()}-{id(self)}.log"

    def _env(self) -> dict[str, str]:
        db = connection.settings_dict
        env = dict(os.environ)
        if settings.POSTGRES_AVAILABLE:
            user = db.get("USER") or "postgres"
            password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
            env["DATABASE_URL"] = f"postgresql://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
        env.update(
            DJANGO_SETTINGS_MODULE="config.test_settings",
            CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
            CELERY_WORKER_PROCESS="1",
            MEDIA_ROOT=str(settings.MEDIA_ROOT),
            TINY_MODEL_DIR=str(settings.TINY_MODEL_DIR),
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60.0) -> None:
        app.control.purge()
        app.conf.task_always_eager = False
        self.hostname = f"test-{os.getpid()}-{id(self)}@localhost"
        log = open(self.log_path, "ab")  # noqa: SIM115  (kept open for the child's lifetime)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", ",".join(self.queues),
             "-c", str(self.concurrency), "--pool", "prefork", "-n", self.hostname, "--loglevel", "INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=self._env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited early:\n{self.log()}")
            if app.control.ping(destination=[self.hostname], timeout=0.5):
                return
        raise RuntimeError(f"celery worker did not answer a ping in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children): a crash, not a shutdown."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        app.conf.task_always_eager = True
