"""Shared fixtures: service detection, the standard world of users and projects (tests/factories.py), a real Celery worker."""
from __future__ import annotations

import shutil

import pytest
from django.conf import settings

from tests.celery_worker import CeleryWorker  # noqa: F401  (re-exported for tests)
from tests.factories import World, make_world


def pytest_collection_modifyitems(config, items):
    # With REQUIRE_SERVICES=1 the settings module already refused to start without them.
    skip_pg = pytest.mark.skip(reason="PostgreSQL not reachable (set REQUIRE_SERVICES=1 to fail instead)")
    skip_redis = pytest.mark.skip(reason="Redis not reachable (set REQUIRE_SERVICES=1 to fail instead)")
    skip_browser = pytest.mark.skip(reason="/usr/bin/chromium not installed (apt-get install chromium)")
    has_chromium = shutil.which("chromium") is not None
    for item in items:
        if "needs_postgres" in item.keywords and not settings.POSTGRES_AVAILABLE:
            item.add_marker(skip_pg)
        if "needs_redis" in item.keywords and not settings.REDIS_AVAILABLE:
            item.add_marker(skip_redis)
        if "browser" in item.keywords and not has_chromium:
            if settings.REQUIRE_SERVICES:
                raise pytest.UsageError("REQUIRE_SERVICES=1 but /usr/bin/chromium is missing")
            item.add_marker(skip_browser)


@pytest.fixture(autouse=True)
def _empty_cache():
    """Throttle counters and login/token lockouts live in the cache: every test starts without any."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def world(db) -> World:
    """Project A with its owner (admin), an engineer and an annotator; an outsider who owns Project B.

    Attributes (or world["name"]): project, owner, engineer, annotator, outsider, other; world.client(user).
    A test module's own `world` fixture takes precedence over this one.
    """
    return make_world()


@pytest.fixture(scope="session")
def tiny_model_path():
    """The tiny local chat model (built once per machine, cached under TINY_MODEL_DIR)."""
    from training.tiny_model import ensure_tiny_model

    return ensure_tiny_model(settings.TINY_MODEL_DIR)


@pytest.fixture
def celery_worker(transactional_db, django_db_setup):
    """A real Celery worker process on Redis, consuming every queue, for one test.

    Tests using it must commit their data (transactional_db), since the worker is another process.
    """
    if not settings.REDIS_AVAILABLE:
        pytest.skip("Redis not reachable")
    worker = CeleryWorker(queues=("default", "generation", "training"))
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
