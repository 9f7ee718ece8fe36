"""Celery tasks on the default queue: refreshing a project's cached agreement report."""
from __future__ import annotations

from django.db import OperationalError

from annotation.dispatch import TaskName
from config.celery import app


@app.task(
    name=TaskName.AGREEMENT_REFRESH,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def agreement_refresh(*, project_id: int) -> int | None:
    """Recompute the project's agreement report; returns the number of rankings it covers."""
    from annotation.services.agreement_cache import agreement_report_refresh

    report = agreement_report_refresh(project_id=project_id)
    return report.rankings_seen if report else None
