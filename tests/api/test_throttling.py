"""Throttling (issue 14 item 3): failed logins per username and per address, failed tokens per address,
request rates per user and per anonymous address; 429 with Retry-After, in the error shape on the API
and with a clear message on the login page.

Before: 30 wrong passwords in 12 s were all answered, and the right one was accepted after them.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

from annotation.services.projects import user_token
from tests.factories import make_project, make_user

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent.parent


def login(client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def assert_throttled(response, *, at_least: int = 1) -> dict:
    assert response.status_code == 429, (response.status_code, response.content[:300])
    assert int(response["Retry-After"]) >= at_least
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "fields"} and error["code"] == "throttled"
    return error


def rest_framework(**changes):
    return override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, **changes})


# ---- logins (django-axes) --------------------------------------------------------------------


def test_ten_wrong_passwords_lock_the_username_out_and_the_right_one_is_refused_after(client):
    make_user("victim")
    for _ in range(9):
        response = login(client, "victim", "wrong-guess")
        assert response.status_code == 200 and "Please try again" in response.content.decode()
    tenth = login(client, "victim", "wrong-guess")
    assert tenth.status_code == 429
    assert int(tenth["Retry-After"]) == 15 * 60
    page = tenth.content.decode()
    assert "Too many failed logins" in page and "15 minutes" in page and 'name="password"' in page

    right = login(client, "victim", "victim-pass-123")
    assert right.status_code == 429 and "_auth_user_id" not in client.session  # was accepted
    other_address = login(APIClient(), "victim", "victim-pass-123", address="10.9.9.9")
    assert other_address.status_code == 429  # per username, wherever the guesses come from


def test_failures_from_one_address_over_many_usernames_lock_that_address_out(client):
    make_user("someone")
    for i in range(10):
        login(client, f"guess-{i}", "wrong", address="10.0.0.7")
    assert login(client, "someone", "someone-pass-123", address="10.0.0.7").status_code == 429  # per address
    elsewhere = APIClient()
    assert login(elsewhere, "someone", "someone-pass-123", address="10.0.0.8").status_code == 302
    assert "_auth_user_id" in elsewhere.session


def test_the_admin_login_is_locked_out_too(client):
    make_user("boss", is_staff=True, is_superuser=True)
    for _ in range(10):
        login(client, "boss", "wrong")
    response = client.post("/admin/login/", {"username": "boss", "password": "boss-pass-123"}, REMOTE_ADDR="10.3.3.3")
    assert response.status_code == 429


def test_a_lockout_ends_after_its_time(client):
    make_user("patient")
    with override_settings(AUTH_LOCKOUT_SECONDS=1, AXES_COOLOFF_TIME=dt.timedelta(seconds=1)):
        for _ in range(10):
            login(client, "patient", "wrong")
        assert login(client, "patient", "patient-pass-123").status_code == 429
        time.sleep(1.5)
        assert login(client, "patient", "patient-pass-123").status_code == 302


def test_fewer_failures_than_the_limit_do_not_lock(client):
    make_user("typo")
    for _ in range(9):
        login(client, "typo", "wrong")
    assert login(client, "typo", "typo-pass-123").status_code == 302


# ---- tokens ----------------------------------------------------------------------------------


@pytest.fixture
def member():
    user = make_user("scripter")
    project = make_project("Tokens", admin=user)
    return user, user_token(user=user), project


def token_get(token: str, url: str = "/api/v1/projects/", address: str = "10.1.0.1", **extra):
    return APIClient().get(url, HTTP_AUTHORIZATION=f"Token {token}", REMOTE_ADDR=address, **extra)


def test_ten_bad_tokens_lock_the_address_out_even_for_a_valid_token(member):
    _, token, project = member
    for i in range(10):
        assert token_get(f"bad-token-{i}").status_code == 401
    error = assert_throttled(token_get(token), at_least=15 * 60 - 5)  # the guesser learns nothing while locked
    assert "failed token" in error["message"]
    assert_throttled(token_get(token, f"/api/v1/projects/{project.pk}/next-task"))  # the hot path too
    assert token_get(token, address="10.1.0.2").status_code == 200  # other addresses are unaffected


def test_a_forged_x_forwarded_for_does_not_dodge_the_lock(member):
    _, token, _ = member
    for i in range(10):
        token_get(f"bad-{i}", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
    assert_throttled(token_get(token, HTTP_X_FORWARDED_FOR="192.0.2.200"))


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(member):
    _, token, _ = member
    with rest_framework(NUM_PROXIES=1):
        for i in range(10):
            token_get(f"bad-{i}", address="10.200.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7")
        assert_throttled(token_get(token, address="10.200.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7"))
        assert token_get(token, address="10.200.0.1", HTTP_X_FORWARDED_FOR="198.51.100.8").status_code == 200


def _within(seconds: float, steps) -> bool:
    """Run `steps`; True when they took less than `seconds` (a busy machine may need another try)."""
    start = time.monotonic()
    steps()
    return time.monotonic() - start < seconds


WINDOW = 4  # seconds: long enough for ten requests on a loaded machine, short enough to wait out


def test_failed_tokens_count_within_the_window_only(member):
    from django.core.cache import cache

    _, token, _ = member
    outcome: dict = {}

    def second_window():
        for i in range(9):
            token_get(f"bad-again-{i}")
        outcome["ninth"] = token_get(token).status_code
        token_get("bad-tenth")
        outcome["tenth"] = token_get(token)

    with override_settings(AUTH_FAILURE_WINDOW_SECONDS=WINDOW):
        for _attempt in range(3):  # each phase must fit inside one window, whatever the load
            cache.clear()
            if not _within(WINDOW / 2, lambda: [token_get(f"bad-{i}") for i in range(9)]):
                continue
            time.sleep(WINDOW + 0.5)  # the window closed: its nine failures are forgotten
            if _within(WINDOW / 2, second_window):
                break
        else:
            pytest.fail("the machine never ran ten requests within half a window")
        assert outcome["ninth"] == 200
        assert_throttled(outcome["tenth"])


def test_a_token_lockout_ends_after_its_time(member):
    _, token, _ = member
    with override_settings(AUTH_LOCKOUT_SECONDS=WINDOW):
        for i in range(10):
            token_get(f"bad-{i}")
        assert_throttled(token_get(token))
        time.sleep(WINDOW + 0.5)
        assert token_get(token).status_code == 200


def test_requests_without_a_token_are_not_counted_as_failures(member):
    for _ in range(15):
        assert APIClient().get("/api/v1/projects/", REMOTE_ADDR="10.1.0.1").status_code == 401
    assert token_get(member[1]).status_code == 200


# ---- request rates (DRF) ---------------------------------------------------------------------


def test_a_user_over_the_rate_gets_429_in_the_error_shape(member):
    user, token, _ = member
    other = make_user("other-user")
    with rest_framework(DEFAULT_THROTTLE_RATES={"anon": "100/minute", "user": "3/minute"}):
        for _ in range(3):
            assert token_get(token).status_code == 200
        error = assert_throttled(token_get(token))
        assert "throttled" in error["message"].lower() or "available" in error["message"]
        assert token_get(token, address="10.7.7.7").status_code == 429  # per user, from any address
        assert token_get(user_token(user=other)).status_code == 200


def test_anonymous_callers_are_throttled_per_address():
    with rest_framework(DEFAULT_THROTTLE_RATES={"anon": "2/minute", "user": "100/minute"}):
        client = APIClient()
        for _ in range(2):
            assert client.get("/api/schema/?format=json", REMOTE_ADDR="10.4.4.4").status_code == 200
        assert_throttled(client.get("/api/schema/?format=json", REMOTE_ADDR="10.4.4.4"))
        assert client.get("/api/schema/?format=json", REMOTE_ADDR="10.4.4.5").status_code == 200


def test_the_default_rates_allow_ordinary_use(member):
    _, token, _ = member
    for _ in range(30):
        assert token_get(token).status_code == 200


# ---- configuration and the shared cache ------------------------------------------------------


def _settings_in_a_fresh_process(env: dict[str, str], code: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "API_", "CACHE_URL", "NUM_PROXIES"))}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + code],
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env}, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_limits_and_rates_are_read_from_the_environment():
    code = ("from django.conf import settings as s; import json; print(json.dumps([s.AXES_FAILURE_LIMIT, "
            "s.AXES_COOLOFF_TIME.total_seconds(), s.AUTH_FAILURE_WINDOW_SECONDS, s.AUTH_LOCKOUT_SECONDS, "
            "s.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'], s.API_MAX_PAGE_SIZE, s.REST_FRAMEWORK['NUM_PROXIES'], "
            "s.CACHES['default']['BACKEND']]))")
    defaults = json.loads(_settings_in_a_fresh_process({}, code))
    assert defaults == [10, 900.0, 900, 900, {"anon": "60/minute", "user": "1200/minute"}, 1000, 0,
                        "django.core.cache.backends.locmem.LocMemCache"]
    changed = json.loads(_settings_in_a_fresh_process(
        {"AUTH_FAILURE_LIMIT": "5", "AUTH_FAILURE_WINDOW_SECONDS": "60", "AUTH_LOCKOUT_SECONDS": "120",
         "API_THROTTLE_ANON": "10/minute", "API_THROTTLE_USER": "", "API_MAX_PAGE_SIZE": "50", "NUM_PROXIES": "1",
         "CACHE_URL": "redis://127.0.0.1:6379/1"}, code))
    assert changed == [5, 120.0, 60, 120, {"anon": "10/minute", "user": ""}, 50, 1,
                       "django.core.cache.backends.redis.RedisCache"]


@pytest.mark.needs_redis
def test_with_redis_a_lockout_is_seen_by_every_process(member):
    """What gunicorn's workers share in production (CACHE_URL): a lock recorded here, read in a fresh process."""
    _, token, _ = member
    redis_url = settings.CELERY_BROKER_URL  # this test run's own Redis database
    address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    redis_cache = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url,
                               "KEY_PREFIX": "annotation"}}
    with override_settings(CACHES=redis_cache, AUTH_LOCKOUT_SECONDS=60):
        for i in range(10):
            token_get(f"bad-{i}", address=address)
        assert_throttled(token_get(token, address=address))
    code = ("from django.test import RequestFactory; from api.throttling import token_failures; "
            f"print(token_failures.locked_for(RequestFactory().get('/', REMOTE_ADDR='{address}')))")
    seconds = _settings_in_a_fresh_process({"CACHE_URL": redis_url, "AUTH_LOCKOUT_SECONDS": "60"}, code)
    assert 0 < int(seconds) <= 60
    other = _settings_in_a_fresh_process({"CACHE_URL": redis_url}, code.replace(address, "10.255.255.254"))
    assert other == "None"

