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


def test_demo_annotators_can_log_in_and_get_a_rankable_task():
    from django.test import Client

    call_command("demo", "--no-serve", stdout=StringIO())
    client = Client()
    assert client.post("/login/", {"username": "annotator1", "password": "demo-annotator-pass"}).status_code == 302
    assert "Demo: helpful and honest answers" in client.get("/").content.decode()
    assert client.get("/projects/demo/rank/").status_code == 200
    task = client.get("/api/v1/projects/demo/next-task/")
    assert task.status_code == 200, task.content
    shown = task.json()
    assert shown["messages"][-1]["role"] == "user"
    assert 2 <= len(shown["responses"]) <= 4
    assert all(set(r) == {"id", "label", "content", "content_html"} for r in shown["responses"])  # no model name shown
    submitted = client.post(
        f"/api/v1/assignments/{shown['id']}/submit/",
        {"ranking": [[r["id"]] for r in shown["responses"]]},
        content_type="application/json",
    )
    assert submitted.status_code in (200, 201), submitted.content


def test_demo_generates_samples_with_the_local_model_once(tiny_model_path, django_capture_on_commit_callbacks):
    from annotation.models import GenerationRun, Response

    # Batches are enqueued on commit; with no broker they then run in-process.
    with django_capture_on_commit_callbacks(execute=True):
        call_command("demo", "--no-serve", stdout=StringIO())
    samples = Project.objects.get(slug="demo-samples")
    run = GenerationRun.objects.get(project=samples)
    assert run.status == "succeeded"
    assert Response.objects.filter(run=run).count() == 8 * samples.responses_per_prompt
    assert RankingTask.objects.filter(project=samples).count() + run.prompts_without_task == 8

    call_command("demo", "--no-serve", stdout=StringIO())
    assert GenerationRun.objects.filter(project=samples).count() == 1
