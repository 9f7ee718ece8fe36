"""The webhooks API: admins only, other projects invisible, every bad field named, private addresses refused."""
from __future__ import annotations

import pytest
from django.db import transaction

from annotation.models import Role, Webhook, WebhookDelivery
from annotation.services.webhooks import address_problem, webhook_events_emit
from tests.factories import api_client, make_project, make_user

pytestmark = pytest.mark.django_db

PUBLIC_URL = "https://93.184.216.34/hooks/annotation"  # an IP literal: checked without DNS


@pytest.fixture
def setup():
    admin, engineer, annotator, stranger = (make_user(name) for name in ("boss", "eng", "ann", "stranger"))
    project = make_project("Hooked", admin=admin, members={admin: Role.ADMIN, engineer: Role.ENGINEER, annotator: Role.ANNOTATOR})
    other = make_project("Elsewhere", admin=stranger, members={stranger: Role.ADMIN})
    return {"admin": admin, "engineer": engineer, "annotator": annotator, "stranger": stranger,
            "project": project, "other": other}


def hooks_url(project) -> str:
    return f"/api/v1/projects/{project.pk}/webhooks/"


def create(client, project, **body):
    body.setdefault("url", PUBLIC_URL)
    body.setdefault("events", ["export.succeeded"])
    return client.post(hooks_url(project), body, format="json")


def test_an_admin_registers_a_webhook_and_sees_its_secret_only_in_the_answer(setup):
    client = api_client(setup["admin"])
    created = create(client, setup["project"], events=["task.completed", "export.failed"], secret="s" * 20)
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["url"] == PUBLIC_URL
    assert body["events"] == ["task.completed", "export.failed"]
    assert body["secret"] == "s" * 20

    listed = client.get(hooks_url(setup["project"])).json()
    assert listed["count"] == 1
    assert listed["results"][0]["secret"] == "********"
    detail = client.get(f"{hooks_url(setup['project'])}{body['id']}/").json()
    assert detail["secret"] == "********"
    assert "s" * 20 not in str(detail) and "s" * 20 not in str(listed)


def test_a_secret_is_generated_when_none_is_given(setup):
    created = create(api_client(setup["admin"]), setup["project"])
    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    assert len(secret) == 64 and secret == Webhook.objects.get().secret


def test_events_are_stored_once_each_in_a_fixed_order(setup):
    created = create(api_client(setup["admin"]), setup["project"],
                     events=["judge_run.finished", "task.completed", "judge_run.finished"])
    assert created.json()["events"] == ["task.completed", "judge_run.finished"]


def test_the_list_is_paginated(setup):
    client = api_client(setup["admin"])
    for i in range(3):
        assert create(client, setup["project"], url=f"{PUBLIC_URL}/{i}").status_code == 201
    page = client.get(hooks_url(setup["project"]) + "?limit=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]


def test_an_admin_deletes_a_webhook_and_its_deliveries(setup):
    client = api_client(setup["admin"])
    hook = create(client, setup["project"]).json()
    with transaction.atomic():
        webhook_events_emit(project_id=setup["project"].pk, event="export.succeeded", object_id=5)
    assert WebhookDelivery.objects.count() == 1
    assert client.delete(f"{hooks_url(setup['project'])}{hook['id']}/").status_code == 204
    assert not Webhook.objects.exists() and not WebhookDelivery.objects.exists()
    assert client.get(f"{hooks_url(setup['project'])}{hook['id']}/").status_code == 404


@pytest.mark.parametrize("role", ["engineer", "annotator"])
def test_engineers_and_annotators_are_refused_with_403_on_every_endpoint(setup, role):
    hook = create(api_client(setup["admin"]), setup["project"]).json()
    client = api_client(setup[role])
    base = hooks_url(setup["project"])
    assert client.get(base).status_code == 403
    assert create(client, setup["project"]).status_code == 403
    assert client.get(f"{base}{hook['id']}/").status_code == 403
    assert client.get(f"{base}{hook['id']}/deliveries/").status_code == 403
    assert client.delete(f"{base}{hook['id']}/").status_code == 403
    assert Webhook.objects.count() == 1


def test_a_non_member_gets_404_on_every_endpoint(setup):
    hook = create(api_client(setup["admin"]), setup["project"]).json()
    client = api_client(setup["stranger"])  # an admin, but of another project
    base = hooks_url(setup["project"])
    for response in (
        client.get(base),
        create(client, setup["project"]),
        client.get(f"{base}{hook['id']}/"),
        client.get(f"{base}{hook['id']}/deliveries/"),
        client.delete(f"{base}{hook['id']}/"),
    ):
        assert response.status_code == 404, response.content
        assert response.json()["error"]["code"] == "not_found"
    assert api_client().get(base).status_code in (401, 403)  # anonymous
    assert Webhook.objects.count() == 1


def test_another_projects_webhook_is_404_through_this_project(setup):
    theirs = create(api_client(setup["stranger"]), setup["other"]).json()
    client = api_client(setup["admin"])
    base = hooks_url(setup["project"])  # the admin's own project, the other project's webhook id
    assert client.get(f"{base}{theirs['id']}/").status_code == 404
    assert client.get(f"{base}{theirs['id']}/deliveries/").status_code == 404
    assert client.delete(f"{base}{theirs['id']}/").status_code == 404
    assert client.get(base).json()["count"] == 0
    assert Webhook.objects.filter(pk=theirs["id"]).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": ["task.finished"]}, "events"),
        ({"events": []}, "events"),
        ({"events": "task.completed"}, "events"),
        ({"events": [7]}, "events"),
        ({"url": "not a url"}, "url"),
        ({"url": "ftp://93.184.216.34/x"}, "url"),
        ({"url": "file:///etc/passwd"}, "url"),
        ({"url": "http://"}, "url"),
        ({"url": "http://93.184.216.34:99999/"}, "url"),
        ({"url": "http://user:pw@93.184.216.34/"}, "url"),
        ({"url": ""}, "url"),
        ({"url": 12}, "url"),
        ({"url": "http://does-not-exist.invalid/hook"}, "url"),
        ({"secret": "short"}, "secret"),
        ({"secret": 1234567890123456789}, "secret"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_input_is_refused_with_400_naming_the_field(setup, body, field):
    response = create(api_client(setup["admin"]), setup["project"], **body)
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"], response.json()
    assert not Webhook.objects.exists()


def test_a_missing_url_is_named(setup):
    response = api_client(setup["admin"]).post(hooks_url(setup["project"]), {"events": ["task.completed"]}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["url"] == ["required"]


def test_a_body_that_is_not_an_object_is_refused(setup):
    response = api_client(setup["admin"]).post(hooks_url(setup["project"]), ["x"], format="json")
    assert response.status_code == 400
    assert "non_field_errors" in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:8000/hook", "loopback"),
        ("http://127.8.9.10/hook", "loopback"),
        ("http://localhost/hook", "loopback"),  # a name that resolves to loopback
        ("http://2130706433/hook", "loopback"),  # 127.0.0.1 written as one number
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),  # IPv4-mapped IPv6
        ("http://[::ffff:10.1.2.3]/hook", "private"),
        ("http://10.0.0.5/hook", "private"),
        ("http://172.16.3.4/hook", "private"),
        ("http://192.168.1.1/hook", "private"),
        ("http://[fd00::1]/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),  # the cloud metadata service
        ("http://[fe80::1]/hook", "link-local"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://[ff02::1]/hook", "multicast"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://240.0.0.1/hook", "reserved"),
        ("http://100.64.0.1/hook", "non-public"),  # carrier-grade NAT
        ("http://[2002:7f00:1::]/hook", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("http://[64:ff9b::a9fe:a9fe]/hook", "link-local"),  # NAT64 wrapping 169.254.169.254
    ],
)
def test_a_url_that_resolves_to_a_non_public_address_is_refused(setup, url, kind):
    response = create(api_client(setup["admin"]), setup["project"], url=url)
    assert response.status_code == 400, response.content
    problems = response.json()["error"]["fields"]["url"]
    assert f"a {kind} address" in problems[0], problems
    assert not Webhook.objects.exists()


def test_private_addresses_are_allowed_with_webhook_allow_private(setup, allow_private):
    client = api_client(setup["admin"])
    for url in ("http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://10.0.0.5/hook", "http://[::1]:9/"):
        assert create(client, setup["project"], url=url).status_code == 201, url
    # Still only http(s), still a host that resolves.
    assert create(client, setup["project"], url="gopher://127.0.0.1/").status_code == 400
    assert create(client, setup["project"], url="http://does-not-exist.invalid/").status_code == 400


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
        ("8.8.8.8", None),
        ("::ffff:8.8.8.8", None),
        ("127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("192.0.2.1", "private"),  # documentation range
        ("::", "unspecified"),
    ],
)
def test_address_problem_names_the_kind_of_address(address, problem):
    assert address_problem(address) == problem


def test_deliveries_are_listed_newest_first_paginated_and_filtered_by_status(setup):
    client = api_client(setup["admin"])
    hook = create(client, setup["project"], events=["task.completed"]).json()
    with transaction.atomic():
        for task_id in (11, 12, 13):
            webhook_events_emit(project_id=setup["project"].pk, event="task.completed", object_id=task_id)
    url = f"{hooks_url(setup['project'])}{hook['id']}/deliveries/"
    page = client.get(url + "?limit=2").json()
    assert page["count"] == 3 and [d["object_id"] for d in page["results"]] == [13, 12]
    first = page["results"][0]
    assert first["status"] == "pending" and first["attempts"] == 0 and first["last_status_code"] is None
    assert first["payload"]["event"] == "task.completed" and first["payload"]["object_id"] == 13
    assert first["payload"]["project"] == {"id": setup["project"].pk, "slug": setup["project"].slug}
    assert client.get(url + "?status=pending").json()["count"] == 3
    assert client.get(url + "?status=delivered").json()["count"] == 0
    bad = client.get(url + "?status=lost")
    assert bad.status_code == 400 and "status" in bad.json()["error"]["fields"]


def test_an_event_reaches_only_the_webhooks_of_its_project_that_subscribe_to_it(setup):
    mine = create(api_client(setup["admin"]), setup["project"], events=["export.succeeded"]).json()
    create(api_client(setup["admin"]), setup["project"], events=["export.failed"])
    create(api_client(setup["stranger"]), setup["other"], events=["export.succeeded"])
    with transaction.atomic():
        webhook_events_emit(project_id=setup["project"].pk, event="export.succeeded", object_id=9)
    assert list(WebhookDelivery.objects.values_list("webhook_id", flat=True)) == [mine["id"]]


def test_an_event_is_recorded_once_per_webhook_however_often_it_is_emitted(setup):
    create(api_client(setup["admin"]), setup["project"], events=["task.completed"])
    with transaction.atomic():
        assert len(webhook_events_emit(project_id=setup["project"].pk, event="task.completed", object_id=3)) == 1
        assert webhook_events_emit(project_id=setup["project"].pk, event="task.completed", object_id=3) == []
    assert WebhookDelivery.objects.count() == 1


def test_emitting_an_unknown_event_is_a_programming_error(setup):
    with pytest.raises(ValueError, match="unknown webhook event"), transaction.atomic():
        webhook_events_emit(project_id=setup["project"].pk, event="task.done", object_id=1)


def test_the_schema_describes_the_webhook_endpoints(setup):
    response = api_client(setup["admin"]).get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert set(paths["/api/v1/projects/{project}/webhooks/"]) >= {"get", "post"}
    assert set(paths["/api/v1/projects/{project}/webhooks/{webhook_id}/"]) >= {"get", "delete"}
    assert "get" in paths["/api/v1/projects/{project}/webhooks/{webhook_id}/deliveries/"]
