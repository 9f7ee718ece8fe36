"""API authentication: DRF's token scheme with a one-statement lookup and a per-address lock on failures.

Every API view authenticates with `FastTokenAuthentication` (then the session, for the pages'
scripts). It parses the header and answers exactly as DRF's `TokenAuthentication` does; the lookup
is one raw statement because on the annotators' hot path the ORM's select_related query cost as much
CPU as the claim itself (docs/ranking.md, "The hot path").

Guessing tokens is throttled per client address (api.throttling.AuthFailureLock): after
AUTH_FAILURE_LIMIT bad tokens within AUTH_FAILURE_WINDOW_SECONDS the address gets 429 with
Retry-After for AUTH_LOCKOUT_SECONDS, valid token or not, so a guesser learns nothing while locked.
"""
from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.request import Request

from annotation.services.access import user_get_by_token
from api.throttling import token_failures


class FastTokenAuthentication(TokenAuthentication):
    """DRF's token authentication: the same header parsing and errors, a one-statement lookup,
    and failed attempts counted per client address."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        words = get_authorization_header(request).split()
        if not words or words[0].lower() != self.keyword.lower().encode():
            return None  # no token offered: nothing to check, nothing to count (and no cache round trip)
        wait = token_failures.locked_for(request)
        if wait is not None:
            raise Throttled(wait=wait, detail="Too many failed token attempts from this address.")
        try:
            return super().authenticate(request)
        except AuthenticationFailed:
            token_failures.record(request)
            raise

    def authenticate_credentials(self, key: str):
        user = user_get_by_token(key=key)
        if user is None:
            raise AuthenticationFailed("Invalid token.")
        if not user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        token = self.get_model()(key=key, user_id=user.pk)
        token.user = user
        return (user, token)


class FastTokenScheme(OpenApiAuthenticationExtension):
    """The schema's token scheme for FastTokenAuthentication (drf-spectacular keys schemes by class)."""

    target_class = FastTokenAuthentication
    name = "tokenAuth"
    priority = 1

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'Token-based authentication with required prefix "Token", e.g. "Token 9944b091...".',
        }
