"""Throttles, all on Django's default cache (Redis in production: CACHE_URL, see config/settings.py).

- API request rates: DRF's AnonRateThrottle / UserRateThrottle, rates from API_THROTTLE_ANON and
  API_THROTTLE_USER (read on each request, so tests and operators can change them).
- Failed logins (the login page, the admin): django-axes, per username and per client address,
  configured in config/settings.py; `login_lockout_response` is its 429 answer.
- Failed token authentication: `token_failures`, per client address (api.authentication).

The client address is one definition for all three (`client_address`): REMOTE_ADDR, or the
NUM_PROXIES-th address from the right of X-Forwarded-For behind that many trusted proxies.
A client-supplied X-Forwarded-For is never trusted by default, so it cannot dodge the limits.
"""
from __future__ import annotations

import math
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, BaseThrottle, UserRateThrottle


def client_address(request: HttpRequest) -> str:
    """The client's address as DRF's throttles see it (NUM_PROXIES); also django-axes' AXES_CLIENT_IP_CALLABLE."""
    return BaseThrottle().get_ident(request)


class _SettingsRate:
    """Read the rate from REST_FRAMEWORK at each request instead of once at import (DRF's default),
    so override_settings and a changed environment apply; a missing or empty rate means no limit."""

    scope: str

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope) or None


class AnonThrottle(_SettingsRate, AnonRateThrottle):
    """Requests per client address by anonymous callers (the schema, the docs)."""


class UserThrottle(_SettingsRate, UserRateThrottle):
    """Requests per authenticated user, all their tokens and sessions together."""


class AuthFailureLock:
    """Lock a client address out after AUTH_FAILURE_LIMIT failures within AUTH_FAILURE_WINDOW_SECONDS,
    for AUTH_LOCKOUT_SECONDS.

    Hand-written on the cache because DRF's throttles count every request, not failures. Checking
    costs one cache read; recording a failure two or three writes.
    """

    def __init__(self, scope: str) -> None:
        self.scope = scope

    def _keys(self, request: HttpRequest) -> tuple[str, str]:
        address = client_address(request)
        return f"authfail:{self.scope}:count:{address}", f"authfail:{self.scope}:lock:{address}"

    def locked_for(self, request: HttpRequest) -> int | None:
        """Seconds left of this address's lockout, or None when it may try."""
        until = cache.get(self._keys(request)[1])
        if until is None:
            return None
        left = until - time.time()
        return max(1, math.ceil(left)) if left > 0 else None

    def record(self, request: HttpRequest) -> None:
        """Count one failure; the one that reaches the limit starts the lockout."""
        count_key, lock_key = self._keys(request)
        window = int(settings.AUTH_FAILURE_WINDOW_SECONDS)
        if cache.add(count_key, 1, timeout=window):
            count = 1
        else:
            try:
                count = cache.incr(count_key)
            except ValueError:  # expired between add and incr: a new window
                cache.set(count_key, 1, timeout=window)
                count = 1
        if count >= int(settings.AUTH_FAILURE_LIMIT):
            lockout = int(settings.AUTH_LOCKOUT_SECONDS)
            cache.set(lock_key, time.time() + lockout, timeout=lockout)
            cache.delete(count_key)


token_failures = AuthFailureLock("token")


def login_lockout_response(request: HttpRequest, original_response: HttpResponse | None = None,
                           credentials: dict[str, Any] | None = None) -> HttpResponse:
    """django-axes' answer to a locked-out login (AXES_LOCKOUT_CALLABLE): HTTP 429 with Retry-After,
    the login page with the reason (pages), or the error shape (anything under /api/)."""
    seconds = int(settings.AUTH_LOCKOUT_SECONDS)
    minutes = max(1, math.ceil(seconds / 60))
    message = (f"Too many failed logins for this account or from this address. "
               f"Logging in is blocked for {minutes} minute{'s' if minutes != 1 else ''}; try again later.")
    if request.path.startswith("/api/"):
        from api.exceptions import error_body

        response: HttpResponse = JsonResponse(error_body("throttled", message), status=429)
    else:
        context = {"locked_out": True, "lockout_message": message, "next": request.POST.get("next", "")}
        response = render(request, "frontend/login.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response
