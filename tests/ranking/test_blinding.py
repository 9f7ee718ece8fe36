"""Blinding of the project payload, and the cheap paths of the serving hot path keeping every check.

Annotators rank blind: no model name, system prompt or sampling setting reaches them through the
project API (detail by id or slug, and the list). Engineers and admins see the settings.
"""
from __future__ import annotations

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.test import APIClient

from annotation.errors import Forbidden, NotFound
from annotation.models import AgreementReport, Role
from annotation.services.access import project_and_role_get_for_user, project_get_for_user
from annotation.services.agreement_cache import agreement_mark_stale
from api.serializers.projects import GENERATION_FIELDS
from tests.factories import SECRET_MODEL, make_member, make_ranked_project

pytestmark = [pytest.mark.django_db, pytest.mark.needs_postgres]

SYSTEM_PROMPT = "You are the secret system prompt."


@pytest.fixture
def blind():
    project, admin = make_ranked_project(name="Blind", tasks=2, k=3, gen_model=SECRET_MODEL, gen_system_prompt=SYSTEM_PROMPT)
    return {
        "project": project,
        "admin": admin,
        "annotator": make_member(project, "blind-ann"),
        "engineer": make_member(project, "blind-eng", Role.ENGINEER),
    }


def test_an_annotators_project_payload_has_no_model_name_nor_generation_settings(blind):
    project, client = blind["project"], blind["annotator"].client()
    for url in (f"/api/v1/projects/{project.pk}/", f"/api/v1/projects/{project.slug}/"):
        response = client.get(url)
        assert response.status_code == 200, response.content
        assert not set(GENERATION_FIELDS) & set(response.json()), response.json()
        assert SECRET_MODEL not in response.content.decode() and "secret system prompt" not in response.content.decode()
    listed = client.get("/api/v1/projects/")
    assert listed.status_code == 200
    rows = listed.json()["results"]
    assert [r["slug"] for r in rows] == [project.slug]
    assert not set(GENERATION_FIELDS) & set(rows[0]) and SECRET_MODEL not in listed.content.decode()
    # The ranking payload is blind too.
    task = client.get(f"/api/v1/projects/{project.pk}/next-task")
    assert task.status_code == 200 and SECRET_MODEL not in task.content.decode()


def test_engineers_admins_and_superusers_see_the_generation_settings(blind):
    project = blind["project"]
    root = get_user_model().objects.create_user("blind-root", password="x-root-pass-1", is_superuser=True)
    root_client = APIClient()
    root_client.force_authenticate(user=root)
    for client in (blind["engineer"].client(), blind["admin"].client(), root_client):
        detail = client.get(f"/api/v1/projects/{project.slug}/").json()
        assert detail["gen_model"] == SECRET_MODEL and detail["gen_system_prompt"] == SYSTEM_PROMPT
        assert set(GENERATION_FIELDS) <= set(detail)
        listed = client.get("/api/v1/projects/").json()["results"]
        assert [r["gen_model"] for r in listed if r["slug"] == project.slug] == [SECRET_MODEL]


def test_the_one_statement_project_fetch_keeps_tenancy_and_roles(blind):
    project, annotator = blind["project"], blind["annotator"].user
    outsider = make_member(None, "blind-outsider").user
    fetched, role = project_and_role_get_for_user(user=annotator, project_ref=str(project.pk))
    assert fetched == project and role == Role.ANNOTATOR and fetched.gen_model == SECRET_MODEL
    for ref in (project.pk, project.slug, "no-such-project", "99999999", str(2**70)):
        with pytest.raises(NotFound):
            project_get_for_user(user=outsider, project_ref=ref)
    with pytest.raises(Forbidden):
        project_get_for_user(user=annotator, project_ref=project.slug, min_role=Role.ENGINEER)
    assert APIClient().get(f"/api/v1/projects/{project.pk}/next-task").status_code in (401, 403)


def test_the_hot_path_token_check_refuses_bad_tokens_and_inactive_users(blind):
    project, member = blind["project"], blind["annotator"]
    url = f"/api/v1/projects/{project.pk}/next-task"
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    response = bad.get(url)
    assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"
    assert member.client().get(url).status_code == 200
    member.user.is_active = False
    member.user.save(update_fields=["is_active"])
    response = member.client().get(url)
    assert response.status_code == 401 and "inactive" in response.json()["error"]["message"]


def test_marking_stale_creates_the_report_and_claims_once(blind):
    project = blind["project"]
    AgreementReport.objects.filter(project=project).delete()
    assert agreement_mark_stale(project_id=project.pk, claim=False) is False
    report = AgreementReport.objects.get(project=project)
    assert report.stale and report.refresh_queued_at is None  # in-process mode claims nothing
    AgreementReport.objects.filter(project=project).update(stale=False)
    assert agreement_mark_stale(project_id=project.pk, claim=True) is True
    assert agreement_mark_stale(project_id=project.pk, claim=True) is False  # already queued
    report = AgreementReport.objects.get(project=project)
    assert report.stale and report.refresh_queued_at is not None


@pytest.mark.django_db(transaction=True)
def test_of_many_concurrent_stale_marks_exactly_one_claims_the_refresh(blind):
    project = blind["project"]
    AgreementReport.objects.filter(project=project).delete()  # the racers also race to create it
    barrier, results = threading.Barrier(8), []

    def mark() -> None:
        try:
            barrier.wait()
            results.append(agreement_mark_stale(project_id=project.pk, claim=True))
        finally:
            connection.close()

    threads = [threading.Thread(target=mark) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert AgreementReport.objects.filter(project=project, stale=True, refresh_queued_at__isnull=False).count() == 1
