"""Projects, memberships and users: service rules, commands and API."""
from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.errors import ApplicationError
from annotation.models import Membership, Project, Role
from annotation.services.projects import membership_add, membership_remove, project_create, user_create
from tests.factories import api_client, make_project, make_user

pytestmark = pytest.mark.django_db


def assert_error_shape(body: dict, code: str | None = None) -> dict:
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"code", "message", "fields"} <= set(error)
    assert isinstance(error["message"], str) and error["message"]
    if code:
        assert error["code"] == code
    return error


# --- service -------------------------------------------------------------------------------


def test_project_create_derives_a_unique_slug_and_makes_the_creator_admin():
    alice = make_user("alice")
    first = project_create(name="Chat Quality", created_by=alice)
    second = project_create(name="Chat Quality")
    assert (first.slug, second.slug) == ("chat-quality", "chat-quality-2")
    assert Membership.objects.get(project=first, user=alice).role == Role.ADMIN
    assert (first.responses_per_prompt, first.overlap, first.allow_ties) == (4, 3, False)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"responses_per_prompt": 1}, "responses_per_prompt"),
        ({"overlap": 0}, "overlap"),
        ({"gold_rate": 1.0}, "gold_rate"),
        ({"gold_rate": -0.1}, "gold_rate"),
        ({"lease_seconds": 5}, "lease_seconds"),
        ({"gen_top_p": 0}, "gen_top_p"),
        ({"gen_temperature": -1}, "gen_temperature"),
        ({"allow_ties": "yes"}, "allow_ties"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_project_create_names_the_invalid_field(settings, field):
    with pytest.raises(ApplicationError) as caught:
        project_create(name="P", **settings)
    assert field in caught.value.fields
    assert not Project.objects.exists()


def test_project_create_reports_every_invalid_field_at_once():
    with pytest.raises(ApplicationError) as caught:
        project_create(name=" ", responses_per_prompt=1, overlap=0)
    assert set(caught.value.fields) == {"name", "responses_per_prompt", "overlap"}


def test_explicit_slug_that_is_taken_is_a_conflict():
    project_create(name="P", slug="p")
    with pytest.raises(ApplicationError) as caught:
        project_create(name="Q", slug="p")
    assert caught.value.status == 409 and "slug" in caught.value.fields


def test_last_admin_cannot_be_demoted_or_removed():
    alice, bob = make_user("alice"), make_user("bob")
    project = make_project(admin=alice)
    with pytest.raises(ApplicationError) as caught:
        membership_add(project=project, user=alice, role=Role.ANNOTATOR)
    assert caught.value.status == 409
    with pytest.raises(ApplicationError):
        membership_remove(project=project, user=alice)
    membership_add(project=project, user=bob, role=Role.ADMIN)
    membership_add(project=project, user=alice, role=Role.ANNOTATOR)
    assert Membership.objects.get(project=project, user=alice).role == Role.ANNOTATOR


def test_membership_add_rejects_an_unknown_role():
    project = make_project()
    with pytest.raises(ApplicationError) as caught:
        membership_add(project=project, user=make_user("bob"), role="owner")
    assert "role" in caught.value.fields


def test_user_create_generates_a_password_and_a_token():
    created = user_create(username="carol")
    assert len(created.password) >= 12 and created.user.check_password(created.password)
    assert len(created.token) == 40
    with pytest.raises(ApplicationError) as caught:
        user_create(username="carol")
    assert "username" in caught.value.fields


# --- commands ------------------------------------------------------------------------------


def test_create_project_command_prints_only_the_slug(tmp_path):
    instructions = tmp_path / "guide.md"
    instructions.write_text("# Rank by helpfulness\n\nPrefer *correct* answers.", encoding="utf-8")
    out = StringIO()
    call_command(
        "create_project", "Helpfulness Round 1", "--responses-per-prompt", "3", "--overlap", "2", "--allow-ties",
        "--gold-rate", "0.1", "--lease-seconds", "600", "--instructions-file", str(instructions), stdout=out,
    )
    assert out.getvalue().strip() == "helpfulness-round-1"
    project = Project.objects.get(slug="helpfulness-round-1")
    assert (project.responses_per_prompt, project.overlap, project.allow_ties, project.gold_rate) == (3, 2, True, 0.1)
    assert project.lease_seconds == 600 and project.instructions.startswith("# Rank")


def test_create_project_command_exits_2_naming_the_field():
    with pytest.raises(CommandError) as caught:
        call_command("create_project", "Bad", "--responses-per-prompt", "1", stdout=StringIO())
    assert caught.value.returncode == 2
    assert "responses_per_prompt" in str(caught.value)
    assert not Project.objects.exists()


def test_add_member_creates_the_user_once_and_prints_password_and_token():
    project = make_project()
    out = StringIO()
    call_command("add_member", project.slug, "dora", "--role", "engineer", "--create-user", stdout=out)
    text = out.getvalue()
    password = text.split("password: ")[1].split()[0]
    token = text.split("API token: ")[1].split()[0]
    dora = get_user_model().objects.get(username="dora")
    assert dora.check_password(password)
    assert Membership.objects.get(project=project, user=dora).role == Role.ENGINEER
    # The printed token authenticates API calls.
    client = api_client()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get(f"/api/v1/projects/{project.slug}/").status_code == 200

    again = StringIO()
    call_command("add_member", project.slug, "dora", "--role", "admin", "--create-user", stdout=again)
    assert "password" not in again.getvalue() and token in again.getvalue()
    assert Membership.objects.get(project=project, user=dora).role == Role.ADMIN


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "dora", "--role", "annotator", "--create-user"], "No project with slug 'nope'"),
        (["{slug}", "ghost", "--role", "annotator"], "--create-user"),
    ],
)
def test_add_member_exits_2_with_the_reason(args, message):
    project = make_project()
    with pytest.raises(CommandError) as caught:
        call_command("add_member", *[a.format(slug=project.slug) for a in args], stdout=StringIO())
    assert caught.value.returncode == 2 and message in str(caught.value)


# --- API -----------------------------------------------------------------------------------


def test_project_list_shows_only_the_callers_projects():
    alice, bob = make_user("alice"), make_user("bob")
    mine = make_project("Mine", admin=alice)
    make_project("Theirs", admin=bob)
    response = api_client(alice).get("/api/v1/projects/")
    assert response.status_code == 200
    assert [p["slug"] for p in response.json()["results"]] == [mine.slug]


def test_project_retrieve_by_id_or_slug_and_renders_instructions_safely():
    alice = make_user("alice")
    project = make_project(admin=alice, instructions="**Bold** <script>alert(1)</script>")
    client = api_client(alice)
    by_id, by_slug = client.get(f"/api/v1/projects/{project.id}/"), client.get(f"/api/v1/projects/{project.slug}/")
    assert by_id.json() == by_slug.json()
    html = by_id.json()["instructions_html"]
    assert "<strong>Bold</strong>" in html and "<script" not in html


def test_project_create_through_the_api_needs_staff_and_validates():
    staff = make_user("staff", is_staff=True)
    client = api_client(staff)
    created = client.post("/api/v1/projects/", {"name": "API made", "overlap": 2, "allow_ties": True}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["slug"] == "api-made" and created.json()["overlap"] == 2
    assert Membership.objects.get(project__slug="api-made", user=staff).role == Role.ADMIN

    bad = client.post("/api/v1/projects/", {"name": "Bad", "responses_per_prompt": 1, "gold_rate": 2}, format="json")
    assert bad.status_code == 400
    assert set(assert_error_shape(bad.json(), "invalid")["fields"]) == {"responses_per_prompt", "gold_rate"}

    typed = client.post("/api/v1/projects/", {"name": "Bad", "overlap": "many"}, format="json")
    assert typed.status_code == 400 and "overlap" in assert_error_shape(typed.json(), "invalid")["fields"]

    plain = api_client(make_user("plain")).post("/api/v1/projects/", {"name": "X"}, format="json")
    assert plain.status_code == 403
    assert_error_shape(plain.json(), "forbidden")


def test_members_are_managed_by_admins_only():
    alice, eve, bob = make_user("alice"), make_user("eve"), make_user("bob")
    project = make_project(admin=alice, members={eve: Role.ENGINEER})
    url = f"/api/v1/projects/{project.slug}/members/"
    admin = api_client(alice)

    added = admin.post(url, {"username": "bob", "role": "annotator"}, format="json")
    assert added.status_code == 201 and added.json()["role"] == "annotator"
    assert [m["username"] for m in admin.get(url).json()] == ["alice", "bob", "eve"]
    changed = admin.patch(f"{url}{bob.id}/", {"role": "engineer"}, format="json")
    assert changed.status_code == 200 and changed.json()["role"] == "engineer"
    assert admin.delete(f"{url}{bob.id}/").status_code == 204
    assert not Membership.objects.filter(project=project, user=bob).exists()

    missing = admin.post(url, {"username": "ghost", "role": "annotator"}, format="json")
    assert missing.status_code == 400 and "username" in assert_error_shape(missing.json())["fields"]
    bad_role = admin.post(url, {"username": "bob", "role": "owner"}, format="json")
    assert bad_role.status_code == 400 and "role" in assert_error_shape(bad_role.json())["fields"]
    last_admin = admin.patch(f"{url}{alice.id}/", {"role": "annotator"}, format="json")
    assert last_admin.status_code == 409
    assert_error_shape(last_admin.json(), "conflict")

    engineer = api_client(eve)
    assert engineer.get(url).status_code == 403
    assert engineer.post(url, {"username": "bob", "role": "admin"}, format="json").status_code == 403
    assert engineer.delete(f"{url}{alice.id}/").status_code == 403


def test_unauthenticated_requests_get_the_error_shape():
    response = api_client().get("/api/v1/projects/")
    assert response.status_code in (401, 403)
    assert_error_shape(response.json())


def test_token_auth_works_and_a_bad_token_is_refused():
    alice = make_user("alice")
    make_project(admin=alice)
    assert api_client(alice, token=True).get("/api/v1/projects/").status_code == 200
    client = api_client()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    response = client.get("/api/v1/projects/")
    assert response.status_code == 401
    assert_error_shape(response.json(), "authentication_failed")


def test_openapi_schema_renders_and_lists_the_project_endpoints():
    response = api_client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert "/api/v1/projects/" in schema["paths"]
    assert "/api/v1/projects/{project}/prompts/import/" in schema["paths"]
    assert api_client().get("/api/docs/").status_code == 200
