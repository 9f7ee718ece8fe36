"""The demo command seeds rankable data and can run twice."""
import json
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command

from annotation.models import Membership, Project, Prompt, RankingTask, Role

pytestmark = pytest.mark.django_db


def test_demo_prompts_are_varied_and_rankable():
    rows = [json.loads(line) for line in (settings.BASE_DIR / "data" / "demo_prompts.jsonl").read_text().splitlines()]
    assert 25 <= len(rows) <= 40
    assert all(2 <= len({r.strip() for r in row["responses"]}) <= 4 for row in rows)
    categories = {row["metadata"]["category"] for row in rows}
    assert {"coding", "writing", "advice", "facts", "unsafe"} <= categories


def test_demo_seeds_users_project_and_tasks_and_is_idempotent():
    out = StringIO()
    call_command("demo", "--no-serve", stdout=out)
    text = out.getvalue()
    assert "demo-admin-pass" in text and "annotator3" in text
    project = Project.objects.get(slug="demo")
    n_prompts = Prompt.objects.filter(project=project).count()
    assert n_prompts >= 25
    assert RankingTask.objects.filter(project=project).count() == n_prompts
    roles = dict(Membership.objects.filter(project=project).values_list("user__username", "role"))
    assert roles == {"admin": Role.ADMIN, "engineer": Role.ENGINEER, "annotator1": Role.ANNOTATOR,
                     "annotator2": Role.ANNOTATOR, "annotator3": Role.ANNOTATOR}
    assert get_user_model().objects.get(username="annotator1").check_password("demo-annotator-pass")
    assert "## How to rank" in project.instructions

    again = StringIO()
    call_command("demo", "--no-serve", stdout=again)
    assert f"0 prompts imported ({n_prompts} already there)" in again.getvalue()
    assert "demo-admin-pass" in again.getvalue()  # still the demo password, so still printed
    assert Prompt.objects.filter(project=project).count() == n_prompts
    assert RankingTask.objects.filter(project=project).count() == n_prompts
