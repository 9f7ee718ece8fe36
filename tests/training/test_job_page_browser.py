"""The training job page in a real browser: status, progress, curves and artifacts render without scripts."""
from __future__ import annotations

import pytest

from annotation.models import Role
from annotation.services.training import training_job_create, training_job_run
from tests import browser
from tests.browser import login
from tests.factories import make_project, make_user
from tests.training.helpers import FAST, make_export

browser_page = browser.browser_page

pytestmark = [pytest.mark.browser, pytest.mark.needs_postgres, pytest.mark.slow]


def test_engineer_sees_the_finished_job_with_its_curves(browser_page, live_server, tiny_model_path):
    engineer, annotator = make_user("browser-eng"), make_user("browser-ann")
    project = make_project("Browser training", admin=engineer, members={annotator: Role.ANNOTATOR})
    job = training_job_create(project=project, kind="reward", export=make_export(project), options=FAST, enqueue=False)
    training_job_run(job_id=job.pk)
    page = browser_page
    login(page, live_server.url, "browser-eng", "browser-eng-pass-123")
    page.goto(f"{live_server.url}/projects/{project.slug}/training/{job.pk}/")
    assert page.locator(".status").inner_text() == "succeeded"
    assert page.locator(".steps").inner_text() == "12 / 12 steps"
    assert page.locator("polyline.series").count() == 3
    box = page.locator("svg[aria-label='Loss by step']").bounding_box()
    assert box and box["width"] > 300 and box["height"] > 100
    assert "held-out pairwise accuracy" in page.locator("#held-out").inner_text()
    assert page.locator(".artifacts td code", has_text="model.safetensors").count() == 1

    page.goto(f"{live_server.url}/projects/{project.slug}/training/")
    page.click(f"a[href='/projects/{project.slug}/training/{job.pk}/']")
    assert page.url.endswith(f"/training/{job.pk}/")


def test_annotator_is_refused_the_job_page(browser_page, live_server, tiny_model_path):
    engineer, annotator = make_user("browser-eng2"), make_user("browser-ann2")
    project = make_project("Browser training 2", admin=engineer, members={annotator: Role.ANNOTATOR})
    job = training_job_create(project=project, kind="reward", export=make_export(project), options=FAST, enqueue=False)
    page = browser_page
    login(page, live_server.url, "browser-ann2", "browser-ann2-pass-123")
    answer = page.goto(f"{live_server.url}/projects/{project.slug}/training/{job.pk}/")
    assert answer.status == 403
