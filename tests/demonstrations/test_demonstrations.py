"""Demonstration tasks: same engine as ranking (overlap, leases, skip, idempotent submit), text in, review."""
from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.models import Assignment, Demonstration, Project, RankingTask
from annotation.services.importing import prompts_import
from annotation.services.projects import project_create
from tests.ranking_helpers import make_member

pytestmark = [pytest.mark.django_db]


def demo_project(*, prompts: int = 3, with_draft: bool = True, **settings) -> tuple[Project, object]:
    admin = make_member(None, "demo-admin")
    project = project_create(name="Demos", created_by=admin.user, task_type="demonstration", **settings)
    lines = []
    for i in range(prompts):
        line = {"id": f"q{i}", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Question {i}?"}]}
        if with_draft and i == 0:
            line["responses"] = [{"content": f"A **draft** answer {i}", "model": "secret-model"}]
        lines.append(json.dumps(line))
    prompts_import(project=project, fileobj=io.BytesIO("\n".join(lines).encode()), file_format="jsonl")
    return project, admin


def next_task(client, project):
    answer = client.get(f"/api/v1/projects/{project.pk}/next-task")
    assert answer.status_code in (200, 204), answer.content
    return answer.json() if answer.status_code == 200 else None


def test_every_prompt_is_a_demonstration_task_and_one_with_a_response_shows_it_as_the_draft():
    project, _ = demo_project(prompts=3)
    assert RankingTask.objects.filter(project=project, task_type="demonstration").count() == 3
    ann = make_member(project, "ann")
    seen = [next_task(ann.client(), project)]
    client = ann.client()
    drafts = []
    for _ in range(3):
        task = next_task(client, project)
        assert task["type"] == "demonstration" and task["responses"] == []
        assert task["messages"][1]["content"].startswith("Question")
        drafts.append(task["draft"])
        assert client.post(f"/api/v1/assignments/{task['id']}/submit", {"text": "Ideal.", "duration_ms": 1200},
                           format="json").status_code == 201
    assert seen
    with_draft = [d for d in drafts if d is not None]
    assert len(with_draft) == 1 and with_draft[0]["content"] == "A **draft** answer 0"
    assert "<strong>draft</strong>" in with_draft[0]["content_html"] and "secret-model" not in json.dumps(drafts)
    assert Demonstration.objects.filter(project=project).count() == 3
    assert Demonstration.objects.filter(draft__isnull=False).count() == 1


def test_a_ranking_project_task_says_its_type():
    from tests.ranking_helpers import make_project

    project, _ = make_project(name="Ranks", tasks=1, k=2)
    ann = make_member(project, "ann")
    task = next_task(ann.client(), project)
    assert task["type"] == "ranking" and task.get("draft") is None


def test_overlap_and_an_idempotent_retry_hold_for_demonstrations():
    project, _ = demo_project(prompts=1, overlap=2)
    a, b, c = (make_member(project, name) for name in ("a", "b", "c"))
    for member in (a, b):
        client = member.client()
        task = next_task(client, project)
        first = client.post(f"/api/v1/assignments/{task['id']}/submit", {"text": "Mine."}, format="json",
                            HTTP_IDEMPOTENCY_KEY="k1")
        again = client.post(f"/api/v1/assignments/{task['id']}/submit", {"text": "Mine."}, format="json",
                            HTTP_IDEMPOTENCY_KEY="k1")
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json()["demonstration_id"] == again.json()["demonstration_id"] and again.json()["replayed"]
        other = client.post(f"/api/v1/assignments/{task['id']}/submit", {"text": "Other."}, format="json",
                            HTTP_IDEMPOTENCY_KEY="k2")
        assert other.status_code == 409
    assert next_task(c.client(), project) is None  # two annotators, overlap 2: complete
    assert RankingTask.objects.get(project=project).is_complete
    assert Demonstration.objects.count() == 2


def test_a_skipped_demonstration_goes_to_someone_else():
    project, _ = demo_project(prompts=1, overlap=1)
    a, b = make_member(project, "a"), make_member(project, "b")
    task = next_task(a.client(), project)
    assert a.client().post(f"/api/v1/assignments/{task['id']}/skip", {"reason": "Not sure"}, format="json").status_code == 200
    assert next_task(a.client(), project) is None
    assert next_task(b.client(), project)["type"] == "demonstration"


@pytest.mark.parametrize(("body", "field"), [
    ({"text": ""}, "text"),
    ({"text": "   \n"}, "text"),
    ({"text": "x" * 51}, "text"),
    ({"text": "ok", "duration_ms": -1}, "duration_ms"),
    ({"ranking": [["r1"]]}, "ranking"),
    ({}, "text"),
])
def test_a_bad_demonstration_is_refused_naming_the_field_and_nothing_is_stored(body, field):
    project, _ = demo_project(prompts=1, max_demonstration_chars=50)
    ann = make_member(project, "ann")
    client = ann.client()
    task = next_task(client, project)
    answer = client.post(f"/api/v1/assignments/{task['id']}/submit", body, format="json")
    assert answer.status_code == 400, answer.content
    assert field in answer.json()["error"]["fields"]
    assert not Demonstration.objects.exists() and Assignment.objects.get(pk=task["id"]).status == "leased"


def test_text_on_a_ranking_task_is_refused_naming_text():
    from tests.ranking_helpers import make_project

    project, _ = make_project(name="Ranks", tasks=1, k=2)
    ann = make_member(project, "ann")
    task = next_task(ann.client(), project)
    answer = ann.client().post(f"/api/v1/assignments/{task['id']}/submit", {"text": "hi"}, format="json")
    assert answer.status_code == 400 and "text" in answer.json()["error"]["fields"]


def test_review_another_annotator_accepts_or_rejects_and_never_the_author():
    project, _ = demo_project(prompts=2, overlap=1, review=True)
    author, reviewer = make_member(project, "author"), make_member(project, "reviewer")
    client = author.client()
    for _ in range(2):
        task = next_task(client, project)
        client.post(f"/api/v1/assignments/{task['id']}/submit", {"text": f"Demo for {task['messages'][1]['content']}"},
                    format="json")
    assert set(Demonstration.objects.values_list("review_status", flat=True)) == {"pending"}
    # The author is offered nothing to review, and cannot review their own.
    assert client.get(f"/api/v1/projects/{project.pk}/next-review").status_code == 204
    own = Demonstration.objects.first()
    refused = client.post(f"/api/v1/projects/{project.pk}/demonstrations/{own.pk}/review", {"accepted": True}, format="json")
    assert refused.status_code == 403
    reviewing = reviewer.client()
    verdicts = []
    for accepted in (True, False):
        shown = reviewing.get(f"/api/v1/projects/{project.pk}/next-review").json()
        assert shown["text"].startswith("Demo for") and "author" not in json.dumps(shown)
        answer = reviewing.post(f"/api/v1/projects/{project.pk}/demonstrations/{shown['id']}/review", {"accepted": accepted},
                                format="json")
        assert answer.status_code == 200
        verdicts.append(answer.json()["review_status"])
    assert verdicts == ["accepted", "rejected"]
    assert reviewing.get(f"/api/v1/projects/{project.pk}/next-review").status_code == 204
    bad = reviewing.post(f"/api/v1/projects/{project.pk}/demonstrations/{own.pk}/review", {"accepted": "maybe"}, format="json")
    assert bad.status_code == 400 and "accepted" in bad.json()["error"]["fields"]


def test_review_of_a_project_without_review_is_refused():
    project, _ = demo_project(prompts=1)
    ann = make_member(project, "ann")
    answer = ann.client().get(f"/api/v1/projects/{project.pk}/next-review")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "conflict"


def test_the_preview_renders_markdown_on_the_server_sanitised():
    project, _ = demo_project(prompts=1)
    ann = make_member(project, "ann")
    answer = ann.client().post("/api/v1/markdown-preview", {"text": "**bold** <script>alert(1)</script>"}, format="json")
    assert answer.status_code == 200
    assert "<strong>bold</strong>" in answer.json()["html"] and "<script>" not in answer.json()["html"]


def test_create_project_takes_the_task_type_and_refuses_a_bad_one(capsys):
    call_command("create_project", "Written", "--task-type", "demonstration", "--review")
    slug = capsys.readouterr().out.strip()
    project = Project.objects.get(slug=slug)
    assert (project.task_type, project.review) == ("demonstration", True)
    with pytest.raises(CommandError) as raised:
        call_command("create_project", "Ranked", "--review")
    assert raised.value.returncode == 2 and "review" in str(raised.value)


def test_the_api_creates_a_demonstration_project_and_refuses_an_unknown_type():
    staff = make_member(None, "staff")
    staff.user.is_staff = True
    staff.user.save()
    client = staff.client()
    made = client.post("/api/v1/projects", {"name": "W", "task_type": "demonstration"}, format="json")
    assert made.status_code == 201 and made.json()["task_type"] == "demonstration"
    bad = client.post("/api/v1/projects", {"name": "W2", "task_type": "essay"}, format="json")
    assert bad.status_code == 400 and "task_type" in bad.json()["error"]["fields"]
    assert not Project.objects.filter(name="W2").exists()


def test_agreement_the_dashboard_and_a_pairs_export_take_a_demonstration_project_in_their_stride(tmp_path, client):
    from annotation.services.export import export_options_from_input, export_write

    project, admin = demo_project(prompts=2, overlap=1)
    ann = make_member(project, "ann")
    task = next_task(ann.client(), project)
    ann.client().post(f"/api/v1/assignments/{task['id']}/submit", {"text": "Done."}, format="json")
    assert admin.client().get(f"/api/v1/projects/{project.pk}/agreement").status_code == 200
    client.force_login(admin.user)
    assert client.get(f"/projects/{project.slug}/dashboard/").status_code == 200
    assert client.get(f"/projects/{project.slug}/rank/").status_code == 200
    assert client.get(f"/projects/{project.slug}/rank/?view=rank").status_code == 200
    assert client.get(f"/projects/{project.slug}/review/").status_code == 404  # not a reviewed project
    manifest = export_write(project=project, out_dir=tmp_path / "pairs", options=export_options_from_input({"format": "pairs"}))
    assert manifest["splits"]["train"]["rows"] + manifest["splits"]["test"]["rows"] == 0 and manifest["warnings"]


@pytest.mark.needs_postgres
@pytest.mark.needs_redis
@pytest.mark.slow
def test_a_generation_run_on_a_real_worker_gives_unopened_demonstration_tasks_their_draft(tiny_model_path, celery_worker):
    from annotation.models import GenerationRun, RunStatus
    from annotation.services.assignment import assignment_lease_next

    project, _ = demo_project(prompts=3, with_draft=False, overlap=1)
    assert not RankingTask.responses.through.objects.filter(rankingtask__project=project).exists()
    early = make_member(project, "early")
    opened = assignment_lease_next(project=project, annotator=early.user)  # shows the prompt alone: keeps it so

    call_command("generate", project.slug, "--n", "1", "--max-new-tokens", "8", "--wait")

    run = GenerationRun.objects.get(project=project)
    assert run.status == RunStatus.SUCCEEDED, celery_worker.log()[-3000:]
    assert RankingTask.objects.filter(project=project).count() == 3  # still one task per prompt
    drafts = dict(RankingTask.responses.through.objects.filter(rankingtask__project=project)
                  .values_list("rankingtask_id", "response__run_id"))
    assert opened.task_id not in drafts and set(drafts.values()) == {run.pk} and len(drafts) == 2
    late = make_member(project, "late")
    task = next_task(late.client(), project)
    generated = RankingTask.objects.get(assignments__id=task["id"]).responses.get()
    assert task["draft"]["content"] == generated.text and task["type"] == "demonstration"


def test_two_reviewers_are_shown_different_demonstrations_and_another_projects_is_404():
    project, _ = demo_project(prompts=2, overlap=1, review=True)
    author = make_member(project, "author")
    client = author.client()
    for _ in range(2):
        task = next_task(client, project)
        client.post(f"/api/v1/assignments/{task['id']}/submit", {"text": "Written."}, format="json")
    first, second = make_member(project, "rev1"), make_member(project, "rev2")
    shown_first = first.client().get(f"/api/v1/projects/{project.pk}/next-review").json()["id"]
    shown_second = second.client().get(f"/api/v1/projects/{project.pk}/next-review").json()["id"]
    assert shown_first != shown_second
    # Asking again resumes one's own claim.
    assert first.client().get(f"/api/v1/projects/{project.pk}/next-review").json()["id"] == shown_first

    other = project_create(name="Other demos", task_type="demonstration", review=True)
    outsider = make_member(other, "outsider")
    assert outsider.client().get(f"/api/v1/projects/{project.pk}/next-review").status_code == 404
    assert outsider.client().post(f"/api/v1/projects/{project.pk}/demonstrations/{shown_first}/review",
                                  {"accepted": True}, format="json").status_code == 404
    # Under one's own project, another project's demonstration is not found either.
    answer = outsider.client().post(f"/api/v1/projects/{other.pk}/demonstrations/{shown_first}/review", {"accepted": True},
                                    format="json")
    assert answer.status_code == 404
    assert set(Demonstration.objects.values_list("review_status", flat=True)) == {"pending"}


def test_gold_is_refused_for_demonstrations():
    from annotation.errors import ApplicationError

    with pytest.raises(ApplicationError) as raised:
        project_create(name="Gold demos", task_type="demonstration", gold_rate=0.1)
    assert "gold_rate" in raised.value.fields
    project, admin = demo_project(prompts=1)
    task = RankingTask.objects.get(project=project)
    answer = admin.client().post(f"/api/v1/tasks/{task.pk}/gold", {"gold_ranking": [[1]]}, format="json")
    assert answer.status_code == 400 and "gold_ranking" in answer.json()["error"]["fields"]
    assert not RankingTask.objects.get(pk=task.pk).is_gold
