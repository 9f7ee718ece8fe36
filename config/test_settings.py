"""Settings for the test suite: PostgreSQL and Redis when reachable, SQLite and eager Celery otherwise.

REQUIRE_SERVICES=1 (set by .ci/run) turns "not reachable" into an error instead of a fallback.
"""
import os
import socket
import tempfile
from urllib.parse import urlparse

import dj_database_url

from .settings import *  # noqa: F403
from .settings import BASE_DIR, env_bool

REQUIRE_SERVICES = env_bool("REQUIRE_SERVICES", False)
TEST_DATABASE_URL = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/annotation"
TEST_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/0"


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


POSTGRES_AVAILABLE = TEST_DATABASE_URL.startswith("postgres") and _reachable(TEST_DATABASE_URL, 5432)
REDIS_AVAILABLE = _reachable(TEST_BROKER_URL, 6379)
if REQUIRE_SERVICES and not POSTGRES_AVAILABLE:
    raise RuntimeError(f"REQUIRE_SERVICES=1 but PostgreSQL is not reachable at {TEST_DATABASE_URL}")
if REQUIRE_SERVICES and not REDIS_AVAILABLE:
    raise RuntimeError(f"REQUIRE_SERVICES=1 but Redis is not reachable at {TEST_BROKER_URL}")

if POSTGRES_AVAILABLE:
    DATABASES = {"default": dj_database_url.parse(TEST_DATABASE_URL, conn_max_age=0)}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "test-db.sqlite3"}}

# Tests dispatch in-process unless a test starts a real worker (tests/celery_worker.py), which
# turns eager mode off for its duration. The worker process itself sets CELERY_WORKER_PROCESS=1.
CELERY_BROKER_URL = TEST_BROKER_URL if REDIS_AVAILABLE else ""
CELERY_TASK_ALWAYS_EAGER = not env_bool("CELERY_WORKER_PROCESS", False)
# A short visibility timeout and a sweep every second, so a killed worker's task comes back within
# seconds in the crash tests (kombu's default sweep runs every 10 x 10 s).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "10")),
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
    # The restore sweep runs under a Redis mutex that expires after 300 s by default: a worker
    # SIGKILLed while holding it (it sweeps every second here) blocked every restore for five
    # minutes, which is how the training crash test timed out at load 5 (issue 14 item 10).
    "unacked_mutex_expire": 10,
}

MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT") or tempfile.mkdtemp(prefix="annotation-test-media-"))  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
ALLOWED_HOSTS = ["*"]

# Each test process has its own memory cache (throttle counters, lockouts), cleared before every test
# (tests/conftest.py); the tests that show the counters shared between processes use Redis explicitly.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SILENCED_SYSTEM_CHECKS = ["axes.W001"]
