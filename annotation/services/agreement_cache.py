"""The cached agreement report of each project, and its debounced refresh.

Submissions and skips call `agreement_schedule_refresh` (on commit). It marks the cached report
stale and, at most once per AGREEMENT_REFRESH_SECONDS per project, enqueues the refresh task
(workers.tasks.agreement, queue default) with that countdown, so a burst of submissions costs
one recomputation. The guard is a conditional update on AgreementReport.refresh_queued_at (no
lock held); the task clears it when it starts, so a submission arriving during a computation
enqueues the next one.

Readers (the dashboard, the API without filters, the command) get the last report and never compute
it in the request: without one yet they get an empty, "pending" report while the refresh runs.
Without a broker (tasks run in-process, as in `make demo` without Redis) nothing is enqueued:
readers recompute a stale report when they ask for it.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from annotation.dispatch import TaskName, enqueue_after_commit, tasks_run_in_process
from annotation.models import AgreementReport, Project, Ranking
from annotation.services.ranking_filter import RankingFilter
from annotation.sql import agreement as sql
from annotation.sql import postgres_statements

# A queued refresh that has not started after this long (broker flushed, worker gone) is presumed lost.
LOST_AFTER_SECONDS = 600


def refresh_seconds() -> float:
    return float(settings.AGREEMENT_REFRESH_SECONDS)


def agreement_schedule_refresh(*, project_id: int) -> None:
    """Mark the project's agreement report stale and enqueue a debounced refresh.

    Submissions and skips call it on commit, so their transaction never waits on the report row.
    """
    enqueue = not tasks_run_in_process()
    if agreement_mark_stale(project_id=project_id, claim=enqueue):
        _enqueue_refresh(project_id=project_id)
    # Otherwise tasks run in-process (readers recompute a stale report), or a refresh is queued.


def agreement_mark_stale(*, project_id: int, claim: bool) -> bool:
    """Mark the report stale and, with `claim`, claim the next refresh: True for exactly one caller.

    Concurrent callers race safely: the database serialises the updates of the row, and once one
    caller has set refresh_queued_at the others no longer match the filter. On PostgreSQL this is
    one statement (annotation.sql.agreement); elsewhere three portable ones.
    """
    if not postgres_statements():  # the portable twin: three statements
        AgreementReport.objects.bulk_create([AgreementReport(project_id=project_id)], ignore_conflicts=True)
        AgreementReport.objects.filter(project_id=project_id, stale=False).update(stale=True)
        return claim and agreement_refresh_claim(project_id=project_id)
    now = timezone.now()
    lost = now - dt.timedelta(seconds=refresh_seconds() + LOST_AFTER_SECONDS)
    queued_at, exists = sql.mark_stale(project_id=project_id, claim=claim, now=now, lost_before=lost)
    if not exists:
        AgreementReport.objects.bulk_create([AgreementReport(project_id=project_id)], ignore_conflicts=True)
        queued_at, exists = sql.mark_stale(project_id=project_id, claim=claim, now=now, lost_before=lost)
    return claim and queued_at == now


def _enqueue_refresh(*, project_id: int) -> None:
    enqueue_after_commit(TaskName.AGREEMENT_REFRESH, kwargs={"project_id": project_id}, countdown=refresh_seconds())


def agreement_refresh_claim(*, project_id: int) -> bool:
    """Claim the right to enqueue the project's next refresh; True for exactly one concurrent caller.

    A conditional update on refresh_queued_at: race-free without holding a lock, since the
    database serialises the updates of the row and the second one no longer matches the filter.
    """
    now = timezone.now()
    lost = now - dt.timedelta(seconds=refresh_seconds() + LOST_AFTER_SECONDS)
    claimed = (
        AgreementReport.objects.filter(project_id=project_id)
        .filter(Q(refresh_queued_at__isnull=True) | Q(refresh_queued_at__lt=lost))
        .update(refresh_queued_at=now)
    )
    return claimed == 1


def agreement_report_refresh(*, project_id: int) -> AgreementReport | None:
    """Recompute and store the project's report (the refresh task's body). Idempotent.

    A slower, older computation never overwrites a newer one: the result is written only if no
    computation that started later has been stored.
    """
    from annotation.services.agreement import project_agreement_compute

    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return None
    AgreementReport.objects.bulk_create([AgreementReport(project_id=project_id)], ignore_conflicts=True)
    # Cleared before reading the rankings: whatever is submitted from now on schedules the next run.
    AgreementReport.objects.filter(project_id=project_id).update(refresh_queued_at=None, stale=False)
    started = timezone.now()
    result = project_agreement_compute(project=project)
    AgreementReport.objects.filter(project_id=project_id).filter(
        Q(computed_at__isnull=True) | Q(computed_at__lte=started)
    ).update(result=result, rankings_seen=result["rankings"], computed_at=started)
    return AgreementReport.objects.get(project_id=project_id)


def agreement_report_get(*, project: Project) -> dict[str, Any]:
    """The project's last report, with a `cache` section saying how fresh it is. Never computed in the
    request when a worker does the refreshes (a broker is configured):

    - no report yet: the empty report with cache.source "pending", and a refresh enqueued;
    - stale (rankings since): the last report as it is, and a refresh scheduled (debounced).

    With tasks in-process (no broker, `make demo`) the refresh would run in this request anyway,
    so a missing or stale report is computed on the spot (cache.source "computed").
    """
    report = AgreementReport.objects.filter(project=project).first()
    current = Ranking.objects.filter(project=project).count()
    missing = report is None or report.computed_at is None
    # A report row without a result that is not stale is being computed right now (the refresh
    # clears `stale` when it starts): nothing to schedule, it is in progress.
    running = report is not None and report.computed_at is None and not report.stale
    stale = missing or report.stale or report.rankings_seen != current
    source = "cache"
    if stale and tasks_run_in_process():
        report = agreement_report_refresh(project_id=project.pk)
        source, stale, missing = "computed", False, False
    elif stale and not running:
        agreement_schedule_refresh(project_id=project.pk)
        report = AgreementReport.objects.filter(project=project).first()
    from annotation.services.agreement import agreement_empty_report, agreement_mark_former_members  # numpy loads on first use
    from annotation.services.judge_agreement import judge_agreement_compute

    if missing:
        result = {**agreement_empty_report(), "project": project.slug, "filters": RankingFilter().as_json(), "computed_at": None}
        source = "pending"
    else:
        result = report.result
    now = timezone.now()
    computed_at = None if missing or report is None else report.computed_at
    return {
        **agreement_mark_former_members(report=dict(result, annotators=[dict(a) for a in result.get("annotators", [])]), project=project),
        # Fresh each time: a finished judge run changes it without a new human ranking.
        "judge": judge_agreement_compute(project=project),
        "cache": {
            "source": source,
            "stale": bool(stale),
            "computed_at": computed_at.isoformat() if computed_at else None,
            "age_seconds": round((now - computed_at).total_seconds()) if computed_at else None,
            # A refresh is queued or running: this report will be replaced without anyone asking.
            "refresh_in_progress": bool(running or (stale and report is not None and report.refresh_queued_at is not None)),
            "refresh_seconds": refresh_seconds(),
        },
    }
