"""Fixtures for the webhook tests: a real receiver on 127.0.0.1 and a real Celery worker allowed to reach it."""
from __future__ import annotations

import pytest
from django.conf import settings

from tests.celery_worker import CeleryWorker
from tests.webhooks.receiver import Receiver

# The worker's delivery settings: short backoff so retries come within seconds, few attempts.
WORKER_MAX_ATTEMPTS = 4
WORKER_ENV = {
    "WEBHOOK_ALLOW_PRIVATE": "1",
    "WEBHOOK_MAX_ATTEMPTS": str(WORKER_MAX_ATTEMPTS),
    "WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "WEBHOOK_TIMEOUT_SECONDS": "3",
}


@pytest.fixture
def receiver():
    found = Receiver()
    try:
        yield found
    finally:
        found.close()


@pytest.fixture
def allow_private(settings):
    """Webhooks may point at 127.0.0.1 in this process (registration and in-process delivery)."""
    settings.WEBHOOK_ALLOW_PRIVATE = True
    return settings


@pytest.fixture
def webhook_worker(transactional_db, django_db_setup):
    """A real Celery worker on Redis (queue default) with WEBHOOK_ALLOW_PRIVATE=1 and fast retries."""
    if not settings.REDIS_AVAILABLE:
        pytest.skip("Redis not reachable")
    worker = CeleryWorker(queues=("default",), extra_env=WORKER_ENV)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
