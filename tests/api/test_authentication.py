"""One token authentication for the whole API, api.authentication.FastTokenAuthentication (issue 15
item 5): DRF's header parsing and errors with a one-statement lookup (docs/ranking.md), and DRF's own
IsAuthenticated as the permission (the old IsAuthenticatedMember did exactly that)."""
from __future__ import annotations

import pytest
from django.urls import URLResolver, get_resolver
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.test import APIClient
from rest_framework.views import APIView

from annotation.services.projects import user_token
from api.authentication import FastTokenAuthentication
from tests.factories import make_project, make_user

pytestmark = pytest.mark.django_db


def _api_views() -> list[type]:
    found = []

    def walk(resolver: URLResolver, prefix: str) -> None:
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                walk(entry, prefix + str(entry.pattern))
            elif (prefix + str(entry.pattern)).startswith("api/v1/"):
                found.append(entry.callback.view_class)

    walk(get_resolver(), "")
    return found


def test_every_api_view_authenticates_with_the_fast_token_then_the_session_and_needs_a_user():
    views = _api_views()
    assert len(set(views)) >= 20
    for view_class in views:
        assert issubclass(view_class, APIView)
        view = view_class()
        assert [type(a) for a in view.get_authenticators()] == [FastTokenAuthentication, SessionAuthentication], view_class
        assert [type(p) for p in view.get_permissions()] == [IsAuthenticated], view_class


def test_a_token_is_checked_in_one_statement(django_assert_num_queries):
    user = make_user("fast")
    project = make_project("Fast", admin=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {user_token(user=user)}")
    with django_assert_num_queries(2):  # the token with its user; the project with the caller's role
        assert client.get(f"/api/v1/projects/{project.pk}/").status_code == 200


@pytest.mark.parametrize("header,message", [
    ("Token", "Invalid token header. No credentials provided."),
    ("Token a b", "Invalid token header. Token string should not contain spaces."),
    ("Token 0123456789abcdef", "Invalid token."),
    ("token 0123456789abcdef", "Invalid token."),  # the keyword is case-insensitive, as DRF's
])
def test_bad_token_headers_get_drf_s_messages_in_the_error_shape(header, message):
    response = APIClient().get("/api/v1/projects/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"
    assert response.json()["error"]["message"] == message


def test_other_schemes_are_not_tokens_and_not_failures():
    response = APIClient().get("/api/v1/projects/", HTTP_AUTHORIZATION="Bearer abc")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_an_inactive_users_token_is_refused():
    user = make_user("gone")
    token = user_token(user=user)
    user.is_active = False
    user.save(update_fields=["is_active"])
    response = APIClient().get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 401 and response.json()["error"]["message"] == "User inactive or deleted."
