"""Selectors for exports: a snapshot with the access check, a project's snapshots."""
from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from annotation.models import ExportSnapshot, Project, Role
from annotation.services.access import project_row_get_for_user


def export_snapshot_get_for_user(*, user: Any, snapshot_id: int) -> ExportSnapshot:
    """The snapshot if the user is an engineer or admin of its project (404 for non-members, 403 for annotators)."""
    return project_row_get_for_user(user=user, queryset=ExportSnapshot.objects.select_related("project", "created_by"),
                                    pk=snapshot_id, min_role=Role.ENGINEER, what="Export")


def export_snapshots_of_project(*, project: Project) -> QuerySet[ExportSnapshot]:
    """The project's snapshots, newest first (the caller has checked access to the project)."""
    return ExportSnapshot.objects.filter(project=project).select_related("project", "created_by").order_by("-id")
