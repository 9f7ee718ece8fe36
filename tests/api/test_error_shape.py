"""Every error under /api/ is `{"error": {"code", "message", "fields"}}`; pages get a styled HTML page
without a traceback (issue 14 item 5).

Before: a body over the upload limit got Django's HTML "Bad Request (400)", every 500 (a database
outage included) an HTML page, `exports/{id}/download/` and any unknown /api/ route an HTML 404.
"""
from __future__ import annotations

import io
import json
import socket

import pytest
from django.db import connections
from rest_framework.test import APIClient

from annotation.models import Role
from annotation.services.export import export_snapshot_create
from annotation.services.projects import user_token
from tests.factories import engineer_project, make_user, many_tasks

pytestmark = pytest.mark.django_db


def assert_error_shape(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "fields"} and error["message"]
    return error


def assert_styled_page(response, status: int, text: str) -> str:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "frontend/app.css" in html and text in html  # the site's own layout, not Django's bare page
    assert "Traceback" not in html and "hunter2" not in html
    return html


@pytest.fixture
def engineer_client():
    project, engineer, annotator = engineer_project("errs")
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {user_token(user=engineer)}")
    return project, engineer, client


# ---- 413 -------------------------------------------------------------------------------------


def test_a_json_body_over_the_upload_limit_is_a_413_in_the_error_shape(engineer_client, settings):
    project, _, client = engineer_client
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    body = json.dumps({"format": "pairs", "padding": "x" * 3000})
    error = assert_error_shape(client.post(f"/api/v1/projects/{project.slug}/exports/", body, content_type="application/json"), 413)
    assert error["code"] == "too_large" and "2000 bytes" in error["message"]
    small = client.post(f"/api/v1/projects/{project.slug}/exports/", {"format": "nope"}, format="json")
    assert_error_shape(small, 400)  # under the limit: the ordinary validation


def test_a_form_body_over_the_upload_limit_is_a_413(engineer_client, settings):
    project, _, client = engineer_client
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    form = client.post(f"/api/v1/projects/{project.slug}/exports/", "format=pairs&pad=" + "x" * 3000,
                       content_type="application/x-www-form-urlencoded")
    assert_error_shape(form, 413)  # was Django's HTML "Bad Request (400)"
    upload = io.BytesIO(b'{"prompt": "hi"}\n')
    upload.name = "p.jsonl"
    multipart = client.post(f"/api/v1/projects/{project.slug}/prompts/import/", {"file": upload, "file_format": "x" * 3000},
                            format="multipart")
    assert_error_shape(multipart, 413)


def test_a_session_request_over_the_upload_limit_is_a_413_too(engineer_client, settings):
    # SessionAuthentication's CSRF check reads the form before the view does.
    project, engineer, _ = engineer_client
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    client = APIClient(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(engineer)
    client.cookies[settings.CSRF_COOKIE_NAME] = "a" * 32  # no X-CSRFToken header: the check looks in the form
    response = client.post(f"/api/v1/projects/{project.slug}/exports/", "pad=" + "x" * 3000,
                           content_type="application/x-www-form-urlencoded")
    assert_error_shape(response, 413)


def test_a_page_form_over_the_upload_limit_is_a_styled_413_page(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    response = client.post("/login/", "username=a&password=" + "x" * 3000, content_type="application/x-www-form-urlencoded")
    assert_styled_page(response, 413, "Request too large")


# ---- 500 and 503 -----------------------------------------------------------------------------


@pytest.mark.urls("tests.api.boom_urls")
def test_an_unhandled_exception_in_an_api_view_is_a_500_in_the_error_shape(engineer_client):
    _, _, client = engineer_client
    error = assert_error_shape(client.get("/api/v1/crash/"), 500)
    assert error["code"] == "server_error" and "hunter2" not in json.dumps(error)


@pytest.mark.urls("tests.api.boom_urls")
def test_an_unhandled_exception_in_a_page_is_a_styled_500_page_without_a_traceback(engineer_client):
    _, engineer, _ = engineer_client
    client = APIClient(raise_request_exception=False)
    client.force_login(engineer)
    assert_styled_page(client.get("/crash/"), 500, "Something went wrong")


def _dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once the probe is closed


@pytest.mark.needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_database_outage_is_a_503_in_the_error_shape_and_a_styled_page():
    project, engineer, _ = engineer_project("outage")
    token = user_token(user=engineer)
    pages = APIClient(raise_request_exception=False)
    pages.force_login(engineer)  # the session is in the database, so the page needs it
    api = APIClient(raise_request_exception=False)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get(f"/api/v1/projects/{project.slug}/").status_code == 200

    connection = connections["default"]
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict["PORT"] = _dead_port()  # the next connection attempt is refused: OperationalError
    try:
        for url in (f"/api/v1/projects/{project.slug}/", "/api/v1/projects/", f"/api/v1/projects/{project.slug}/next-task"):
            response = api.get(url)
            error = assert_error_shape(response, 503)
            assert error["code"] == "unavailable" and int(response["Retry-After"]) > 0
        page = pages.get("/")
        assert_styled_page(page, 503, "Temporarily unavailable")
        assert int(page["Retry-After"]) > 0
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
    assert api.get(f"/api/v1/projects/{project.slug}/").status_code == 200  # and back once it is reachable


# ---- 404 and 405 -----------------------------------------------------------------------------


def test_export_download_accepts_the_trailing_slash_like_every_other_route(engineer_client, django_capture_on_commit_callbacks):
    project, engineer, client = engineer_client
    many_tasks(project, [make_user("r1"), make_user("r2")], 2)
    unfinished = export_snapshot_create(project=project, created_by=engineer, options={"format": "pairs"})
    # Reaches the view (409: not finished yet) instead of an HTML 404 from the URL resolver.
    assert assert_error_shape(client.get(f"/api/v1/exports/{unfinished.id}/download/"), 409)["code"] == "conflict"
    with django_capture_on_commit_callbacks(execute=True):
        done = export_snapshot_create(project=project, created_by=engineer, options={"format": "pairs"})
    for url in (f"/api/v1/exports/{done.id}/download/", f"/api/v1/exports/{done.id}/download"):
        response = client.get(url)
        assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    single = client.get(f"/api/v1/exports/{done.id}/download/?file=manifest.json")
    assert single.status_code == 200 and json.loads(b"".join(single.streaming_content))["format"] == "pairs"


@pytest.mark.parametrize("url", ["/api/v1/nothing-here/", "/api/v1/projects/x/nope", "/api/v1/", "/api/v2/projects/",
                                 "/api/", "/api/v1/exports/1/download/extra/"])
def test_an_unknown_api_route_is_a_404_in_the_error_shape(engineer_client, url):
    _, _, client = engineer_client
    for method in ("get", "post", "delete"):
        error = assert_error_shape(getattr(client, method)(url), 404)
        assert error["code"] == "not_found" and "/api/schema/" in error["message"]
    assert_error_shape(APIClient().get(url), 404)  # signed in or not


def test_a_method_the_route_does_not_have_is_a_405_in_the_error_shape(engineer_client):
    project, _, client = engineer_client
    error = assert_error_shape(client.delete(f"/api/v1/projects/{project.slug}/exports/"), 405)
    assert error["code"] == "method_not_allowed"


def test_a_page_that_does_not_exist_is_a_styled_404_page(client):
    assert_styled_page(client.get("/no/such/page/"), 404, "Not found")


def test_a_page_the_user_may_not_see_is_a_styled_403_page():
    project, engineer, annotator = engineer_project("pages")
    client = APIClient()
    client.force_login(annotator)
    assert annotator.memberships.get(project=project).role == Role.ANNOTATOR
    assert_styled_page(client.get(f"/projects/{project.slug}/dashboard/"), 403, "Not allowed")


def test_a_page_form_without_its_csrf_token_is_a_styled_403_page():
    client = APIClient(enforce_csrf_checks=True)
    html = assert_styled_page(client.post("/login/", {"username": "a", "password": "b"}), 403, "Not allowed")
    assert "reload the page" in html
