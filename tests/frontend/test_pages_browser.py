"""The engineers' pages in Debian's chromium: from the dashboard to runs, tasks, exports and jobs by
their links; an export started and downloaded from the pages alone; charts with one point and
hover values; Swagger UI and the admin under the Content-Security-Policy. A CSP violation or a
script error on any page fails the test. With SAVE_SCREENSHOTS=1 it refreshes docs/img/ pictures."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from annotation.models import ExportSnapshot, GenerationRun, JobStatus, Role, RunStatus, TrainingJob, TrainingMetric
from annotation.services.assignment import assignment_lease_next
from annotation.services.ranking import ranking_submit
from tests import browser
from tests.browser import login, screenshot_path
from tests.factories import make_project, make_user
from tests.frontend.browser_checks import assert_clean, watch
from tests.frontend.realistic import import_realistic_tasks

pytestmark = [pytest.mark.browser, pytest.mark.needs_postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

browser_page = browser.browser_page


def world():
    engineer = make_user("web-engineer", is_superuser=False)
    annotators = [make_user(f"web-ann{i}") for i in range(3)]
    project = make_project("Web pages", admin=engineer, members={a: Role.ANNOTATOR for a in annotators}, responses_per_prompt=4, overlap=3)
    import_realistic_tasks(project, repeat=2)
    for annotator in annotators:  # every annotator ranks every task, best first as shown
        while True:
            assignment = assignment_lease_next(project=project, annotator=annotator)
            if not hasattr(assignment, "opaque_ids"):
                break
            ranking_submit(assignment_id=assignment.pk, annotator=annotator, ranking=[[o] for o in assignment.opaque_ids],
                           idempotency_key=f"{annotator.pk}-{assignment.pk}", duration_seconds=30.0)
    now = timezone.now()
    run = GenerationRun.objects.create(project=project, model_name="tiny-chat", status=RunStatus.RUNNING, prompts_total=40, prompts_done=26,
                                       responses_count=104, started_at=now, batches_total=5, batches_done=3)
    return project, engineer, run


def test_an_engineer_goes_from_the_dashboard_to_runs_tasks_exports_and_downloads_an_export(browser_page, live_server):
    project, engineer, run = world()
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 768})
    problems = watch(page)
    login(page, live_server.url, engineer.username, f"{engineer.username}-pass-123")
    page.click(f".project-row[data-slug='{project.slug}'] a:has-text('Dashboard')")
    assert page.url.endswith(f"/projects/{project.slug}/dashboard/")
    # The grid: four cards in two full rows, no row two-thirds empty.
    boxes = [page.locator(f"#{card}").bounding_box() for card in ("progress", "alpha", "w-dist", "position-bias")]
    assert round(boxes[0]["y"]) == round(boxes[1]["y"]) and round(boxes[2]["y"]) == round(boxes[3]["y"]) > boxes[0]["y"]
    assert "submitted rankings over" in page.inner_text("#report-state")
    # Hover values on a chart.
    heights = page.eval_on_selector_all("#w-chart rect.wbar", "bars => bars.map(b => +b.getAttribute('height'))")
    tallest = heights.index(max(heights))
    page.hover(f"#w-chart rect.wbar >> nth={tallest}")
    page.wait_for_selector("#chart-tip:not([hidden])")
    assert "tasks" in page.inner_text("#chart-tip")

    # Dashboard -> run -> its tasks -> back to the run, cancel it.
    page.click(f"#runs a[href='/projects/{project.slug}/generation/{run.pk}/']")
    assert "26 of 40 prompts done" in page.inner_text("#run")
    page.click("#run-tasks")
    assert page.url.endswith(f"/tasks/?run={run.pk}") and "Ranking tasks of run" in page.inner_text("h1")
    page.click(f"a[href='/projects/{project.slug}/generation/{run.pk}/']")
    page.click("#cancel-run")
    assert page.locator("#run").get_attribute("data-status") == "cancelled"
    assert page.locator("#cancel-run").count() == 0

    # Exports: the nav bar, the form, the export's page, its files downloaded through the links.
    page.click("nav.project-nav a[data-page='exports']")
    page.select_option("#id_format", "pairs")
    page.fill("#id_test_fraction", "0.34")
    page.fill("#id_seed", "7")
    page.fill("#id_min_votes", "2")
    page.click("#export-form button[type=submit]")
    page.wait_for_selector("#export[data-status='succeeded']", timeout=60_000)
    snapshot = ExportSnapshot.objects.get(project=project)
    assert snapshot.options["seed"] == 7 and snapshot.options["min_votes"] == 2
    root = Path(settings.MEDIA_ROOT) / snapshot.directory
    for name in ["manifest.json", *snapshot.files]:
        with page.expect_download() as info:
            page.click(f"#files a:text-is('{name}')")
        assert Path(info.value.path()).read_bytes() == (root / name).read_bytes(), name
    with page.expect_download() as info:
        page.click("#download-zip")
    assert info.value.suggested_filename == f"{project.slug}-export-{snapshot.pk}.zip"
    manifest = json.loads(page.inner_text("#manifest"))
    assert manifest["splits"]["train"]["sha256"] == snapshot.files["train.jsonl"]["sha256"]
    page.screenshot(path=str(screenshot_path("export-page.png")), full_page=True)
    page.click("nav.project-nav a[data-page='exports']")
    assert page.locator(f"#exports-table tr[data-export='{snapshot.pk}'] .status-succeeded").count() == 1

    # Training jobs: linked from the nav; a job with a single point draws a dot on real axes.
    job = TrainingJob.objects.create(project=project, kind="reward", export=snapshot, status=JobStatus.RUNNING,
                                     steps_total=10, steps_done=1)
    TrainingMetric.objects.create(job=job, step=1, split="train", values={"loss": 0.6931})
    page.click("nav.project-nav a[data-page='training-jobs']")
    page.click(f"a[href='/projects/{project.slug}/training/{job.pk}/']")
    chart = page.locator("svg[aria-label='Loss by step']")
    assert chart.locator("circle.dot").count() == 1 and chart.locator("polyline").count() == 0
    assert chart.locator("circle.dot title").text_content() == "train loss at step 1: 0.6931"
    assert chart.locator("text.tick").count() >= 6  # ticks on both axes
    page.click(f"a[href='/projects/{project.slug}/exports/{snapshot.pk}/']")  # the job links its export
    assert f"Training job {job.pk}" in page.inner_text("body")
    assert_clean(page, problems)


def test_swagger_ui_and_the_admin_work_under_the_policy(browser_page, live_server):
    page = browser_page
    make_user("web-super", is_superuser=True)
    problems = watch(page)
    login(page, live_server.url, "web-super", "web-super-pass-123")
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    page.goto(f"{live_server.url}/admin/")
    page.wait_for_selector("#content")
    assert_clean(page, problems)
