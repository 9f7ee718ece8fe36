"""The dashboard page: who may see it, what it shows, and the real page in Chromium (with the README screenshot)."""
from __future__ import annotations

import re

import pytest
from django.utils import timezone

from annotation.models import ExportSnapshot, GenerationRun, JobStatus, RankingTask, RunStatus
from tests.agreement_fixtures import PASSWORD, add_member, add_tasks, simulate_crowd
from tests.browser import browser_page, login, screenshot_path  # noqa: F401  (fixture import)


def dashboard_url(crowd) -> str:
    return f"/projects/{crowd.built.project.slug}/dashboard/"


def decorate(crowd) -> None:
    """Open and in-progress tasks, generation runs and an export, so every progress bar has something to show."""
    built = crowd.built
    add_tasks(built, n_tasks=40, k=4, overlap=5)
    RankingTask.objects.filter(pk__in=[t.pk for t in built.tasks[-15:]]).update(active_count=2)
    now = timezone.now()
    GenerationRun.objects.create(
        project=built.project, model_name="tiny-chat", status=RunStatus.SUCCEEDED, prompts_total=120, prompts_done=120,
        responses_count=480, started_at=now, finished_at=now,
    )
    GenerationRun.objects.create(
        project=built.project, model_name="tiny-chat", status=RunStatus.RUNNING, prompts_total=40, prompts_done=26,
        responses_count=104, started_at=now,
    )
    ExportSnapshot.objects.create(project=built.project, format="pairs", status=JobStatus.RUNNING, rows_done=300, rows_total=720)


@pytest.fixture
def crowd(db):
    crowd = simulate_crowd(name="dash", n_tasks=120, per_task=5, seed=0, gold_every=4)
    decorate(crowd)
    return crowd


def test_engineers_see_progress_agreement_and_the_flagged_spammer(crowd, client):
    engineer = add_member(crowd.built, "dash-engineer", role="engineer")
    client.force_login(engineer)
    response = client.get(dashboard_url(crowd))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="alpha-chart"' in html and 'id="w-chart"' in html and 'id="bias-chart"' in html
    assert f'<tr class="flagged" data-username="{crowd.spammer}">' in html
    assert html.count('class="flagged"') == 1
    assert "Generation runs" in html and "26 of 40 prompts" in html and "300 of 720 tasks read" in html  # named for what it counts
    progress = {row["key"]: row["count"] for row in response.context["progress"]["tasks"]}
    assert progress == {"open": 25, "in_progress": 15, "complete": 120}
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from another host (no CDN) and "https://" not in html


def test_annotators_get_403_non_members_404_and_anonymous_users_the_login_page(crowd, client, django_user_model):
    client.force_login(crowd.built.users[crowd.honest[0]])
    assert client.get(dashboard_url(crowd)).status_code == 403
    stranger = django_user_model.objects.create_user("dash-stranger", password=PASSWORD)
    client.force_login(stranger)
    assert client.get(dashboard_url(crowd)).status_code == 404
    client.logout()
    response = client.get(dashboard_url(crowd))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_an_empty_project_shows_a_clear_empty_state(client, db):
    crowd = simulate_crowd(name="dash-empty", n_tasks=0, per_task=1)
    client.force_login(crowd.built.admin)
    html = client.get(dashboard_url(crowd)).content.decode()
    assert "Not enough overlapping rankings yet" in html and "No rankings yet." in html


@pytest.mark.browser
@pytest.mark.slow
def test_dashboard_in_chromium_sorts_the_table_and_highlights_the_spammer(browser_page, live_server, transactional_db):  # noqa: F811
    crowd = simulate_crowd(name="dash-browser", n_tasks=120, per_task=5, seed=0, gold_every=4)
    decorate(crowd)
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))
    login(page, live_server.url, crowd.built.admin.username, PASSWORD)
    page.goto(live_server.url + dashboard_url(crowd))
    flagged = page.locator("tr.flagged")
    assert flagged.count() == 1 and flagged.get_attribute("data-username") == crowd.spammer
    background = flagged.evaluate("row => getComputedStyle(row).backgroundColor")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")
    assert page.locator("#alpha-value").inner_text() != ""
    assert page.locator("#bias-chart rect.pbar").count() == 4 and page.locator("#w-chart rect.wbar").count() == 10

    def column(index: int) -> list[str]:
        return page.locator(f"table.annotators tbody tr td:nth-child({index})").all_inner_texts()

    page.click("th:nth-child(3) button")  # Agreement, ascending: the spammer first
    assert page.locator("table.annotators tbody tr").first.get_attribute("data-username") == crowd.spammer
    assert page.locator("th:nth-child(3)").get_attribute("aria-sort") == "ascending"
    page.click("th:nth-child(3) button")  # descending
    values = [float(v) for v in column(3)]
    assert values == sorted(values, reverse=True)
    page.click("th:nth-child(1) button")
    assert column(1) == sorted(column(1))
    page.click("th:nth-child(3) button")
    assert not errors, errors
    page.screenshot(path=str(screenshot_path("dashboard.png")), full_page=True)
