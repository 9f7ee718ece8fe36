"""Tenancy and roles: other projects are invisible (404), too-low roles are refused (403)."""
from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.errors import Forbidden, NotFound
from annotation.models import Role
from annotation.services.access import project_get_for_user, projects_for_user, role_of
from tests.factories import api_client, make_project, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    """Two projects: A with an admin, an engineer and an annotator; B with its own admin."""
    admin_a, engineer_a, annotator_a, admin_b = (make_user(n) for n in ("admin_a", "engineer_a", "annotator_a", "admin_b"))
    a = make_project("Project A", admin=admin_a, members={engineer_a: Role.ENGINEER, annotator_a: Role.ANNOTATOR})
    b = make_project("Project B", admin=admin_b)
    return {"a": a, "b": b, "admin_a": admin_a, "engineer_a": engineer_a, "annotator_a": annotator_a, "admin_b": admin_b}


def test_non_member_gets_not_found_and_low_role_gets_forbidden(world):
    a = world["a"]
    with pytest.raises(NotFound):
        project_get_for_user(user=world["admin_b"], project_ref=a.slug)
    with pytest.raises(NotFound):
        project_get_for_user(user=world["admin_b"], project_ref=str(a.id))
    with pytest.raises(NotFound):
        project_get_for_user(user=world["admin_a"], project_ref="no-such-project")
    with pytest.raises(Forbidden):
        project_get_for_user(user=world["annotator_a"], project_ref=a.slug, min_role=Role.ENGINEER)
    with pytest.raises(Forbidden):
        project_get_for_user(user=world["engineer_a"], project_ref=a.id, min_role=Role.ADMIN)
    assert project_get_for_user(user=world["engineer_a"], project_ref=a.id, min_role=Role.ENGINEER) == a


def test_superuser_acts_as_admin_everywhere(world):
    root = make_user("root", is_superuser=True)
    assert role_of(user=root, project=world["b"]) == Role.ADMIN
    assert set(projects_for_user(user=root)) == {world["a"], world["b"]}
    assert list(projects_for_user(user=world["annotator_a"])) == [world["a"]]


def _upload():
    return SimpleUploadedFile("p.jsonl", b'{"prompt": "hello"}\n', content_type="application/x-ndjson")


# (method, url template, body factory) for every endpoint of this area, keyed by the role it needs.
ENDPOINTS = {
    "annotator": [
        ("get", "/api/v1/projects/{p}/", None),
        ("get", "/api/v1/projects/{p}/prompts/", None),
    ],
    "engineer": [
        ("post", "/api/v1/projects/{p}/prompts/import/", lambda: {"file": _upload()}),
    ],
    "admin": [
        ("get", "/api/v1/projects/{p}/members/", None),
        ("post", "/api/v1/projects/{p}/members/", lambda: {"username": "engineer_a", "role": "annotator"}),
        ("patch", "/api/v1/projects/{p}/members/{u}/", lambda: {"role": "annotator"}),
        ("delete", "/api/v1/projects/{p}/members/{u}/", None),
    ],
}
ALL = [(need, *endpoint) for need, endpoints in ENDPOINTS.items() for endpoint in endpoints]


def _call(client, method, template, body, project, user):
    url = template.format(p=project.slug, u=user.id)
    kwargs = {"format": "multipart"} if method == "post" and "import" in url else {"format": "json"}
    return getattr(client, method)(url, body() if body else None, **kwargs)


@pytest.mark.parametrize(("need", "method", "template", "body"), ALL)
def test_member_of_another_project_gets_404_and_nothing_changes(world, need, method, template, body):
    b = world["b"]
    response = _call(api_client(world["admin_a"]), method, template, body, b, world["admin_b"])
    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "not_found"
    assert b.prompts.count() == 0 and b.memberships.count() == 1


@pytest.mark.parametrize(("need", "method", "template", "body"), [e for e in ALL if e[0] != "annotator"])
def test_annotator_gets_403_on_engineer_and_admin_endpoints(world, need, method, template, body):
    a = world["a"]
    response = _call(api_client(world["annotator_a"]), method, template, body, a, world["engineer_a"])
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "forbidden"
    assert a.prompts.count() == 0 and a.memberships.count() == 3


@pytest.mark.parametrize(("need", "method", "template", "body"), [e for e in ALL if e[0] == "admin"])
def test_engineer_gets_403_on_admin_endpoints(world, need, method, template, body):
    response = _call(api_client(world["engineer_a"]), method, template, body, world["a"], world["annotator_a"])
    assert response.status_code == 403


@pytest.mark.parametrize(("need", "method", "template", "body"), ALL)
def test_anonymous_requests_are_refused(world, need, method, template, body):
    response = _call(api_client(), method, template, body, world["a"], world["annotator_a"])
    assert response.status_code in (401, 403)
    assert "error" in response.json()


@pytest.mark.parametrize(("need", "method", "template", "body"), ALL)
def test_each_endpoint_works_for_the_role_it_needs(world, need, method, template, body):
    user = world[f"{need}_a"]
    response = _call(api_client(user), method, template, body, world["a"], world["annotator_a"])
    assert response.status_code in (200, 201, 204), response.content
