"""Marking a project's cached agreement report stale after new submissions.

The agreement issue replaces the body with a debounced Celery refresh; callers (submission,
skip) only ever call `agreement_schedule_refresh`.
"""
from __future__ import annotations

from annotation.models import AgreementReport


def agreement_schedule_refresh(*, project_id: int) -> None:
    """Note that the project's agreement statistics are out of date."""
    AgreementReport.objects.filter(project_id=project_id).update(stale=True)
