"""The annotator home page: the user's own projects, each with its progress."""
from __future__ import annotations

import io
import json

import pytest
from django.test import Client

from annotation.models import RankingTask, Role
from annotation.services.assignment import assignment_lease_next
from annotation.services.importing import prompts_import
from annotation.services.ranking import ranking_submit
from tests.factories import make_project, make_user

pytestmark = pytest.mark.django_db


def _import_tasks(project, n):
    lines = "\n".join(json.dumps({"prompt": f"q{i}", "responses": [f"a{i}", f"b{i}"]}) for i in range(n))
    prompts_import(project=project, fileobj=io.BytesIO(lines.encode()), file_format="jsonl")


def test_anonymous_visitor_is_sent_to_the_login_page():
    response = Client().get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_login_page_logs_in_and_redirects_home():
    make_user("ann")
    client = Client()
    assert client.get("/login/").status_code == 200
    bad = client.post("/login/", {"username": "ann", "password": "wrong"})
    assert bad.status_code == 200 and 'role="alert"' in bad.content.decode()
    good = client.post("/login/", {"username": "ann", "password": "ann-pass-123"})
    assert good.status_code == 302 and good["Location"] == "/"


def test_home_lists_only_the_users_projects_with_progress():
    ann, boss = make_user("ann"), make_user("boss")
    mine = make_project("Alpha ranking", admin=boss, members={ann: Role.ANNOTATOR}, overlap=1)
    make_project("Hidden project", admin=boss)
    _import_tasks(mine, 4)
    # The annotator ranks one task through the real lease and submit services; overlap 1 completes it.
    assignment = assignment_lease_next(project=mine, annotator=ann)
    ranking_submit(assignment_id=assignment.id, annotator=ann, ranking=[[label] for label in assignment.opaque_ids])
    assert RankingTask.objects.filter(project=mine, is_complete=True).count() == 1

    client = Client()
    client.force_login(ann)
    page = client.get("/").content.decode()
    assert "Alpha ranking" in page and "Hidden project" not in page
    assert "1 of 4 tasks complete" in page and 'aria-valuenow="25"' in page and "you ranked 1" in page
    assert f"/projects/{mine.slug}/rank/" in page
    assert "/dashboard/" not in page  # annotators get no dashboard link

    client.force_login(boss)
    boss_page = client.get("/").content.decode()
    assert "Hidden project" in boss_page and f"/projects/{mine.slug}/dashboard/" in boss_page


def test_home_of_a_user_without_projects_says_so():
    client = Client()
    client.force_login(make_user("lonely"))
    assert "not a member of any project" in client.get("/").content.decode()
