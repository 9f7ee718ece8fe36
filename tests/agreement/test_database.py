"""Agreement over the database: a simulated crowd, the command, the API, the cache and its debounced refresh."""
from __future__ import annotations

import datetime as dt
import json
import time
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from annotation.models import AgreementReport, Ranking
from annotation.services.agreement import project_agreement_compute
from annotation.services.agreement_cache import agreement_report_get, agreement_schedule_refresh
from annotation.services.consensus import task_consensus
from tests.agreement_fixtures import add_member, add_rankings, add_skip, build_project, pair_accuracy, simulate_crowd

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def crowd(db):
    return simulate_crowd(name="crowd", n_tasks=120, per_task=5, seed=0, gold_every=4)


def run_command(*args) -> str:
    out = StringIO()
    call_command("agreement", *args, stdout=out)
    return out.getvalue()


def test_simulated_spammer_has_the_lowest_agreement_and_is_the_only_one_flagged(crowd):
    report = json.loads(run_command(crowd.built.project.slug, "--json"))
    by_name = {a["username"]: a for a in report["annotators"]}
    spammer = by_name[crowd.spammer]
    assert spammer["agreement"] == min(a["agreement"] for a in report["annotators"])
    assert abs(spammer["agreement"]) < 0.15  # a random ranker agrees with nobody
    assert [a["username"] for a in report["annotators"] if a["flagged"]] == [crowd.spammer]
    assert spammer["gold_score"] == min(a["gold_score"] for a in report["annotators"])
    assert all(by_name[h]["gold_score"] > 0.3 for h in crowd.honest)
    assert spammer["gold_tasks"] > 0
    assert sum(a["tasks"] for a in report["annotators"]) == 120 * 5
    for key in ("alpha", "alpha_ci", "kendall_w_mean", "pairwise_agreement", "position_bias", "annotators"):
        assert key in report
    low, high = report["alpha_ci"]
    assert 0 < low < report["alpha"] < high < 1
    assert not report["position_bias"]["significant"]  # display orders were random and unbiased
    assert all(a["median_seconds"] > 0 for a in report["annotators"])


def test_consensus_agrees_with_the_hidden_truth_more_often_than_any_single_annotator(crowd):
    consensus_accuracy, annotator_accuracy = [], {}
    for t, rankings in crowd.rankings.items():
        consensus = task_consensus([tiers for _, tiers in rankings], with_bradley_terry=True)
        consensus_accuracy.append(pair_accuracy(consensus.tiers, crowd.truth[t]))
        for name, tiers in rankings:
            annotator_accuracy.setdefault(name, []).append(pair_accuracy(tiers, crowd.truth[t]))
        # Bradley-Terry strengths (choix) come for every response of the task.
        assert set(consensus.bradley_terry) == set(crowd.truth[t])
    best_single = max(np.mean(v) for v in annotator_accuracy.values())
    assert np.mean(consensus_accuracy) > best_single


def test_position_bias_in_a_crowd_that_prefers_the_first_shown_response_is_significant(db):
    biased = simulate_crowd(name="biased", n_tasks=80, per_task=3, seed=1, first_position_boost=1.5)
    bias = project_agreement_compute(project=biased.built.project, bootstrap=0)["position_bias"]
    assert bias["significant"]
    assert bias["positions"][0]["rate"] > 0.4 > bias["positions"][0]["expected"]


def test_skip_share_and_annotators_who_only_skipped(db):
    built = build_project(name="skips", n_tasks=4, k=3)
    ann, skipper = add_member(built, "skips-ann"), add_member(built, "skips-only")
    ids = built.responses
    add_rankings(built, [(0, ann, [[i] for i in ids[0]], ids[0], 10.0), (1, ann, [[i] for i in ids[1]], ids[1], 30.0)])
    add_skip(built, 2, ann)
    add_skip(built, 3, skipper)
    rows = {a["username"]: a for a in project_agreement_compute(project=built.project, bootstrap=0)["annotators"]}
    assert rows["skips-ann"]["skips"] == 1 and rows["skips-ann"]["skip_share"] == pytest.approx(1 / 3, abs=1e-4)
    assert rows["skips-ann"]["median_seconds"] == 20.0 and rows["skips-ann"]["tasks"] == 2
    assert rows["skips-only"]["skip_share"] == 1.0 and rows["skips-only"]["tasks"] == 0


def test_filters_by_annotator_and_time_window(crowd):
    slug = crowd.built.project.slug
    two = ",".join(crowd.honest[:2])
    report = json.loads(run_command(slug, "--json", "--annotators", two, "--bootstrap", "50"))
    assert sorted(a["username"] for a in report["annotators"]) == sorted(crowd.honest[:2])
    assert report["filters"]["annotators"] == sorted(crowd.honest[:2])
    # Move a third of the rankings to last week; the window keeps only the rest.
    old = list(Ranking.objects.filter(project=crowd.built.project).order_by("id").values_list("id", flat=True)[:200])
    Ranking.objects.filter(id__in=old).update(created_at=timezone.now() - dt.timedelta(days=7))
    since = (timezone.now() - dt.timedelta(days=1)).isoformat()
    recent = json.loads(run_command(slug, "--json", "--since", since, "--bootstrap", "0"))
    assert recent["rankings"] == 600 - 200
    until = json.loads(run_command(slug, "--json", "--until", since, "--bootstrap", "0"))
    assert until["rankings"] == 200


def test_readable_report_names_every_statistic_and_the_flagged_annotator(crowd):
    text = run_command(crowd.built.project.slug)
    assert "Krippendorff's alpha (ordinal)" in text and "95% CI" in text
    assert "Kendall's W" in text and "pairwise agreement" in text and "position 1:" in text
    spammer_line = next(line for line in text.splitlines() if crowd.spammer in line)
    assert "FLAGGED" in spammer_line
    assert "Rule: flagged when" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-project"], "No project with slug 'no-such-project'"),
        (["{slug}", "--since", "yesterday"], "since: not an ISO 8601 date"),
        (["{slug}", "--since", "2026-02-01", "--until", "2026-01-01"], "until: must be later than since"),
        (["{slug}", "--annotators", "nobody-here"], "annotators: not members of project"),
        (["{slug}", "--bootstrap", "-1"], "bootstrap: must be >= 0"),
    ],
)
def test_command_bad_input_exits_2_naming_the_problem(db, args, message):
    built = build_project(name="badcmd", n_tasks=1)
    with pytest.raises(CommandError) as info:
        call_command("agreement", *[a.format(slug=built.project.slug) for a in args], stdout=StringIO())
    assert info.value.returncode == 2
    assert message in str(info.value)


def test_command_on_a_project_without_rankings_prints_an_empty_report(db):
    built = build_project(name="empty", n_tasks=2)
    report = json.loads(run_command(built.project.slug, "--json"))
    assert report["rankings"] == 0 and report["alpha"] is None and report["annotators"] == []
    assert "0 rankings of 0 tasks" in run_command(built.project.slug)


# --- API -------------------------------------------------------------------------------------


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def two_projects(db):
    a = simulate_crowd(name="tenant-a", n_tasks=30, per_task=3, seed=2)
    b = build_project(name="tenant-b", n_tasks=3)
    engineer = add_member(a.built, "a-engineer", role="engineer")
    return a, b, engineer


def url(project) -> str:
    return f"/api/v1/projects/{project.pk}/agreement"


def test_api_gives_engineers_the_report_with_its_cache_state(two_projects):
    a, _, engineer = two_projects
    response = client_for(engineer).get(url(a.built.project))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["cache"]["source"] == "computed" and body["cache"]["stale"] is False
    names = {row["username"] for row in body["annotators"]}
    assert names == set(a.honest) | {a.spammer}
    assert set(body["annotators"][0]) >= {"username", "tasks", "agreement", "gold_score", "median_seconds", "flagged"}
    again = client_for(a.built.admin).get(url(a.built.project) + "/", {"format": "json"}).json()
    assert again["cache"]["source"] == "cache" and again["alpha"] == body["alpha"]
    by_slug = client_for(engineer).get(f"/api/v1/projects/{a.built.project.slug}/agreement")
    assert by_slug.status_code == 200


def test_api_filters_and_rejects_bad_ones_with_the_field(two_projects):
    a, _, engineer = two_projects
    client = client_for(engineer)
    only = client.get(url(a.built.project), {"annotators": a.spammer}).json()
    assert [row["username"] for row in only["annotators"]] == [a.spammer]
    bad_time = client.get(url(a.built.project), {"since": "not-a-date"})
    assert bad_time.status_code == 400 and "since" in bad_time.json()["error"]["fields"]
    bad_user = client.get(url(a.built.project), {"annotators": "ghost"})
    assert bad_user.status_code == 400
    assert "ghost" in bad_user.json()["error"]["fields"]["annotators"][0]


def test_api_refuses_annotators_403_and_other_tenants_404(two_projects):
    a, b, engineer = two_projects
    annotator = a.built.users[a.honest[0]]
    forbidden = client_for(annotator).get(url(a.built.project))
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    # Engineer and admin of A asking for B's agreement: 404, as if B did not exist.
    for user in (engineer, a.built.admin):
        hidden = client_for(user).get(url(b.project))
        assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "not_found"
    assert APIClient().get(url(a.built.project)).status_code in (401, 403)


# --- cache and debounced refresh ---------------------------------------------------------------


def test_reading_a_stale_report_in_process_recomputes_it(db):
    built = build_project(name="stale", n_tasks=2, k=3)
    ann1, ann2 = add_member(built, "stale-1"), add_member(built, "stale-2")
    ids = built.responses[0]
    add_rankings(built, [(0, ann1, [[i] for i in ids], ids, 5.0), (0, ann2, [[i] for i in ids], ids, 5.0)])
    first = agreement_report_get(project=built.project)
    assert first["rankings"] == 2 and first["cache"]["source"] == "computed"
    assert agreement_report_get(project=built.project)["cache"]["source"] == "cache"
    add_rankings(built, [(1, ann1, [[i] for i in built.responses[1]], built.responses[1], 5.0)])
    agreement_schedule_refresh(project_id=built.project.pk)
    assert AgreementReport.objects.get(project=built.project).stale
    fresh = agreement_report_get(project=built.project)
    assert fresh["rankings"] == 3 and fresh["cache"]["source"] == "computed"


def _refreshes_in_log(worker) -> int:
    return sum(1 for line in worker.log().splitlines() if "agreement.agreement_refresh[" in line and "succeeded" in line)


def _wait(predicate, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


@pytest.mark.needs_postgres
@pytest.mark.needs_redis
@pytest.mark.slow
def test_a_burst_of_submissions_is_refreshed_once_by_a_real_worker(celery_worker, settings):
    settings.AGREEMENT_REFRESH_SECONDS = 2
    built = build_project(name="debounce", n_tasks=30, k=3)
    users = [add_member(built, f"debounce-{i}") for i in range(3)]
    AgreementReport.objects.filter(project=built.project).delete()
    for t in range(30):  # a burst: 60 submissions, each calling the hook as the ranking service does
        ids = built.responses[t]
        add_rankings(built, [(t, u, [[i] for i in ids], ids, 3.0) for u in users[:2]])
        agreement_schedule_refresh(project_id=built.project.pk)
    report = AgreementReport.objects.get(project=built.project)
    assert report.stale and report.refresh_queued_at is not None and report.computed_at is None
    report = _wait(lambda: AgreementReport.objects.filter(project=built.project, computed_at__isnull=False).first())
    assert report.rankings_seen == 60 and not report.stale and report.refresh_queued_at is None
    assert report.result["alpha"] == 1.0
    time.sleep(1.0)
    assert _refreshes_in_log(celery_worker) == 1, celery_worker.log()[-3000:]

    # The next submission after the refresh started schedules exactly one more.
    ids = built.responses[0]
    add_rankings(built, [(0, users[2], [list(reversed(ids))], ids, 3.0)])
    agreement_schedule_refresh(project_id=built.project.pk)
    cached = agreement_report_get(project=built.project)
    assert cached["cache"]["stale"] and cached["cache"]["source"] == "cache" and cached["rankings"] == 60
    _wait(lambda: AgreementReport.objects.filter(project=built.project, rankings_seen=61, stale=False).exists())
    # The worker logs "succeeded" just after the row is written: wait for the line, then check no third comes.
    _wait(lambda: _refreshes_in_log(celery_worker) >= 2, timeout=120)
    time.sleep(1.0)
    assert _refreshes_in_log(celery_worker) == 2, celery_worker.log()[-3000:]


def test_submissions_through_the_ranking_service_reach_the_report(db, django_capture_on_commit_callbacks):
    """End to end with the real lease and submit services: display order, tiers and the refresh hook."""
    from annotation.services.assignment import NoTask, assignment_lease_next
    from annotation.services.ranking import ranking_submit

    built = build_project(name="e2e", n_tasks=3, k=3, overlap=2)
    users = [add_member(built, f"e2e-{i}") for i in range(2)]
    agreement_report_get(project=built.project)  # a report exists before the submissions
    for user in users:
        for _ in range(3):
            assignment = assignment_lease_next(project=built.project, annotator=user)
            assert not isinstance(assignment, NoTask)
            # Everyone ranks the response with the smallest id first, then by id: full agreement.
            by_response = {rid: opaque for opaque, rid in assignment.opaque_ids.items()}
            tiers = [[by_response[rid]] for rid in sorted(by_response)]
            with django_capture_on_commit_callbacks(execute=True):
                ranking_submit(assignment_id=assignment.pk, annotator=user, ranking=tiers, duration_seconds=4.0)
    assert AgreementReport.objects.get(project=built.project).stale
    report = agreement_report_get(project=built.project)
    assert report["rankings"] == 6 and report["alpha"] == 1.0 and report["pairwise_agreement"] == 1.0
    assert report["position_bias"]["rankings"] == 6  # display orders were read from the assignments
    assert all(a["median_seconds"] == 4.0 and a["tasks"] == 3 for a in report["annotators"])


@pytest.mark.needs_postgres
def test_of_many_concurrent_submissions_exactly_one_claims_the_refresh(transactional_db):
    import threading

    from django.db import connection

    from annotation.services.agreement_cache import agreement_refresh_claim

    built = build_project(name="claims", n_tasks=1)
    AgreementReport.objects.create(project=built.project)
    barrier, results = threading.Barrier(8), []

    def claim() -> None:
        try:
            barrier.wait()
            results.append(agreement_refresh_claim(project_id=built.project.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    # Once the guard is older than the countdown plus LOST_AFTER_SECONDS, the refresh is presumed lost.
    AgreementReport.objects.filter(project=built.project).update(refresh_queued_at=timezone.now() - dt.timedelta(hours=1))
    assert agreement_refresh_claim(project_id=built.project.pk)
    assert not agreement_refresh_claim(project_id=built.project.pk)
