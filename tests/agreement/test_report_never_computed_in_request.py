"""With a worker doing the refreshes, no page computes agreement in the request: it shows the last
report (or "refresh in progress" when there is none yet), and the worker's refresh replaces it."""
from __future__ import annotations

import time

import pytest

from annotation.models import AgreementReport
from tests.agreement_fixtures import add_member, simulate_crowd

pytestmark = [pytest.mark.needs_postgres, pytest.mark.needs_redis, pytest.mark.slow]


def _wait(predicate, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def test_the_dashboard_shows_refresh_in_progress_then_the_workers_report(celery_worker, settings, client):
    settings.AGREEMENT_REFRESH_SECONDS = 1
    crowd = simulate_crowd(name="pending", n_tasks=40, per_task=3, seed=4)
    project = crowd.built.project
    AgreementReport.objects.filter(project=project).delete()
    client.force_login(add_member(crowd.built, "pending-engineer", role="engineer"))

    page = client.get(f"/projects/{project.slug}/dashboard/")
    assert page.status_code == 200
    html = page.content.decode()
    # The request computed nothing: it shows the empty, pending report and enqueued the refresh.
    assert "no statistics yet: refresh in progress" in html and 'id="refresh-state"' in html
    assert "120 submitted rankings" not in html

    api = client.get(f"/api/v1/projects/{project.slug}/agreement/").json()
    if api["computed_at"] is None:  # the worker has not stored its report yet
        assert api["cache"]["source"] == "pending" and api["cache"]["refresh_in_progress"] is True and api["rankings"] == 0

    _wait(lambda: AgreementReport.objects.filter(project=project, computed_at__isnull=False).exists())
    after = client.get(f"/api/v1/projects/{project.slug}/agreement/").json()
    assert after["cache"]["source"] == "cache" and after["rankings"] == 120 and after["cache"]["age_seconds"] >= 0
    # The worker's report carries the reliability weights a weighted project's consensus reads; the random
    # ranker's is the smallest.
    weights = {row["username"]: row["weight"] for row in after["annotators"]}
    assert min(weights, key=weights.get) == crowd.spammer and all(w is not None for w in weights.values()), weights
    assert "refresh in progress" not in client.get(f"/projects/{project.slug}/dashboard/").content.decode()
    # The report came from the worker's refresh task.
    _wait(lambda: any("agreement.agreement_refresh[" in line and "succeeded" in line for line in celery_worker.log().splitlines()))


def test_the_command_computes_the_first_report_itself(celery_worker):
    from io import StringIO

    from django.core.management import call_command

    crowd = simulate_crowd(name="cmd-first", n_tasks=20, per_task=3, seed=5)
    AgreementReport.objects.filter(project=crowd.built.project).delete()
    out = StringIO()
    call_command("agreement", crowd.built.project.slug, stdout=out)
    assert "60 rankings of 20 tasks" in out.getvalue(), out.getvalue()[:300]
