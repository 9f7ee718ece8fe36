"""The engineers' pages (exports, generation runs, tasks, training jobs) through Django's client:
who may open them (exactly as the API: 404 for another project, 403 below engineer), what they show,
and that the export form runs a real export whose files the page links to. Also: the
Content-Security-Policy header on every page."""
from __future__ import annotations

import json

import pytest
from django.utils import timezone

from annotation.models import ExportSnapshot, GenerationRun, JobStatus, RankingTask, Role, RunStatus, TrainingJob
from annotation.services.ranking import ranking_submit
from tests.factories import make_project, make_user
from tests.frontend.realistic import import_realistic_tasks

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def world():
    owner, engineer, annotator, outsider = (make_user(n) for n in ("p-owner", "p-engineer", "p-annotator", "p-outsider"))
    project = make_project("Pages", admin=owner, members={engineer: Role.ENGINEER, annotator: Role.ANNOTATOR},
                           responses_per_prompt=4, overlap=1)
    other = make_project("Other tenant", admin=outsider)
    import_realistic_tasks(project)
    import_realistic_tasks(other)
    now = timezone.now()
    run = GenerationRun.objects.create(project=project, model_name="secret-generator", status=RunStatus.RUNNING, prompts_total=40,
                                       prompts_done=26, responses_count=104, started_at=now, temperature=0.7, seed=11)
    other_run = GenerationRun.objects.create(project=other, status=RunStatus.SUCCEEDED, prompts_total=1, prompts_done=1)
    other_export = ExportSnapshot.objects.create(project=other, format="pairs", status=JobStatus.SUCCEEDED)
    return {"owner": owner, "engineer": engineer, "annotator": annotator, "outsider": outsider, "project": project, "other": other,
            "run": run, "other_run": other_run, "other_export": other_export}


def pages(world) -> list[str]:
    slug = world["project"].slug
    export = ExportSnapshot.objects.create(project=world["project"], format="pairs", status=JobStatus.QUEUED)
    job = TrainingJob.objects.create(project=world["project"], kind="reward", export=export)
    return [
        f"/projects/{slug}/dashboard/", f"/projects/{slug}/generation/", f"/projects/{slug}/generation/{world['run'].pk}/",
        f"/projects/{slug}/tasks/", f"/projects/{slug}/tasks/?run={world['run'].pk}", f"/projects/{slug}/exports/",
        f"/projects/{slug}/exports/{export.pk}/", f"/projects/{slug}/training/", f"/projects/{slug}/training/{job.pk}/",
    ]


def test_engineers_and_admins_open_every_page_annotators_get_403_and_outsiders_404(world, client):
    urls = pages(world)
    for who, expected in (("engineer", 200), ("owner", 200), ("annotator", 403), ("outsider", 404)):
        client.force_login(world[who])
        assert {url: client.get(url).status_code for url in urls} == dict.fromkeys(urls, expected), who
    client.logout()
    assert all(client.get(url).status_code == 302 for url in urls)  # to the login page


def test_rows_of_another_project_are_404_even_under_ones_own_project(world, client):
    slug = world["project"].slug
    client.force_login(world["engineer"])
    assert client.get(f"/projects/{slug}/generation/{world['other_run'].pk}/").status_code == 404
    assert client.get(f"/projects/{slug}/exports/{world['other_export'].pk}/").status_code == 404
    assert client.get(f"/projects/{slug}/tasks/?run={world['other_run'].pk}").status_code == 404
    assert client.post(f"/projects/{slug}/generation/{world['other_run'].pk}/cancel/").status_code == 404
    assert GenerationRun.objects.get(pk=world["other_run"].pk).status == RunStatus.SUCCEEDED


def test_the_navigation_bar_offers_each_role_what_it_may_open(world, client):
    slug = world["project"].slug
    client.force_login(world["engineer"])
    nav = [item["key"] for item in client.get(f"/projects/{slug}/exports/").context["project_nav"]]
    assert nav == ["rank", "dashboard", "generation-runs", "tasks", "exports", "training-jobs", "rounds"]
    client.force_login(world["annotator"])
    assert [item["key"] for item in client.get(f"/projects/{slug}/rank/").context["project_nav"]] == ["rank"]


def test_an_engineer_runs_an_export_from_the_form_and_the_page_links_its_files(world, client, django_capture_on_commit_callbacks):
    project = world["project"]
    task = RankingTask.objects.filter(project=project).order_by("id").first()
    from annotation.services.assignment import assignment_lease_next

    assignment = assignment_lease_next(project=project, annotator=world["annotator"])
    assert assignment.task_id == task.pk
    opaque = list(assignment.opaque_ids)
    ranking_submit(assignment_id=assignment.pk, annotator=world["annotator"], ranking=[[o] for o in opaque], idempotency_key="k1")

    client.force_login(world["engineer"])
    with django_capture_on_commit_callbacks(execute=True):  # the export task, in-process after the commit
        response = client.post(f"/projects/{project.slug}/exports/", {"format": "pairs", "file_format": "jsonl", "policy": "all",
                                                                      "test_fraction": "0", "seed": "3", "exclude_gold": "on"})
    assert response.status_code == 302
    snapshot = ExportSnapshot.objects.get(project=project)
    assert response["Location"] == f"/projects/{project.slug}/exports/{snapshot.pk}/"
    assert snapshot.options["seed"] == 3 and snapshot.options["exclude_gold"] is True and snapshot.options["test_fraction"] == 0.0
    snapshot.refresh_from_db()
    assert snapshot.status == JobStatus.SUCCEEDED  # Celery runs in-process in these tests
    html = client.get(response["Location"]).content.decode()
    for name in ["manifest.json", *snapshot.files]:
        assert f'href="/api/v1/exports/{snapshot.pk}/download/?file={name}"' in html
    assert f'id="download-zip" href="/api/v1/exports/{snapshot.pk}/download/"' in html
    assert snapshot.files["train.jsonl"]["sha256"] in html and "&quot;seed&quot;: 3" in html  # the manifest, shown
    # The links work with the page's session.
    download = client.get(f"/api/v1/exports/{snapshot.pk}/download?file=train.jsonl")
    rows = [json.loads(line) for line in b"".join(download.streaming_content).decode().splitlines()]
    assert len(rows) == snapshot.files["train.jsonl"]["rows"] == 6  # C(4, 2) pairs of one ranking
    listing = client.get(f"/projects/{project.slug}/exports/").content.decode()
    assert f'href="/projects/{project.slug}/exports/{snapshot.pk}/"' in listing


def test_bad_export_options_come_back_on_the_form_and_nothing_is_created(world, client):
    client.force_login(world["engineer"])
    url = f"/projects/{world['project'].slug}/exports/"
    response = client.post(url, {"format": "pairs", "file_format": "jsonl", "policy": "all", "test_fraction": "1.5", "seed": "0"})
    assert response.status_code == 400
    assert response.context["form"].errors["test_fraction"] == ["must be below 1.0; got 1.5"]
    response = client.post(url, {"format": "nope", "file_format": "jsonl", "policy": "all", "test_fraction": "0.1", "seed": "0"})
    assert response.status_code == 400 and "format" in response.context["form"].errors
    response = client.post(url, {"format": "pairs", "file_format": "jsonl", "policy": "all", "test_fraction": "0.1", "seed": "0",
                                 "since": "yesterday"})
    assert response.status_code == 400 and "not an ISO 8601 date or date-time" in response.context["form"].errors["since"][0]
    assert not ExportSnapshot.objects.filter(project=world["project"]).exists()


def test_the_run_page_shows_parameters_and_progress_cancels_and_links_its_tasks(world, client):
    slug, run = world["project"].slug, world["run"]
    client.force_login(world["engineer"])
    html = client.get(f"/projects/{slug}/generation/{run.pk}/").content.decode()
    assert "secret-generator" in html and "26 of 40 prompts done" in html and "<code>0.7</code>" in html and "<code>11</code>" in html
    assert f'href="/projects/{slug}/tasks/?run={run.pk}"' in html and 'id="cancel-run"' in html
    response = client.post(f"/projects/{slug}/generation/{run.pk}/cancel/", follow=True)
    assert GenerationRun.objects.get(pk=run.pk).status == RunStatus.CANCELLED
    assert "cancelled" in response.content.decode() and 'id="cancel-run"' not in response.content.decode()
    again = client.post(f"/projects/{slug}/generation/{run.pk}/cancel/", follow=True)
    assert "has already finished" in again.content.decode()
    client.force_login(world["annotator"])
    assert client.post(f"/projects/{slug}/generation/{run.pk}/cancel/").status_code == 403


def test_the_tasks_page_filters_by_run_and_state(world, client):
    project = world["project"]
    client.force_login(world["engineer"])
    page = client.get(f"/projects/{project.slug}/tasks/").context
    assert page["counts"] == {"total": 3, "complete": 0, "in_progress": 0, "open": 3}
    starts = {row["prompt_first_line"][:20] for row in page["rows"]}
    assert starts == {"How do I remove dupl", "Explain the differen", "And how is `HAVING` "}
    assert client.get(f"/projects/{project.slug}/tasks/?run={world['run'].pk}").context["counts"]["total"] == 0
    assert client.get(f"/projects/{project.slug}/tasks/?status=complete").context["rows"] == []
    assert client.get(f"/projects/{project.slug}/tasks/?offset=x").status_code == 200
    bad = client.get(f"/projects/{project.slug}/tasks/?status=bogus")  # the API's rule and message, on the page
    assert bad.status_code == 400 and "must be one of open, in_progress, complete" in bad.content.decode()


def test_every_page_sends_the_content_security_policy(world, client):
    client.force_login(world["owner"])
    slug = world["project"].slug
    urls = [*pages(world), "/", f"/projects/{slug}/rank/", "/api/docs/", "/admin/", "/api/v1/projects/"]
    for url in urls:
        policy = client.get(url)["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'", url
        assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'", url
    client.logout()
    assert "default-src 'self'" in client.get("/login/")["Content-Security-Policy"]


def test_no_page_has_inline_script_or_style(world, client):
    client.force_login(world["owner"])
    slug = world["project"].slug
    for url in [*pages(world), "/", f"/projects/{slug}/rank/", "/api/docs/"]:
        html = client.get(url).content.decode()
        assert 'style="' not in html and "<style" not in html, url
        for tag in html.split("<script")[1:]:
            head = tag.split(">", 1)[0]
            assert "src=" in head or 'type="application/json"' in head, (url, head)
