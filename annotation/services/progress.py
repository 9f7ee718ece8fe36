"""Selectors for progress figures shown on the home page and the dashboard."""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q

from annotation.models import ROLE_RANK, Assignment, AssignmentStatus, RankingTask, Role
from annotation.services.access import projects_for_user, role_of


def project_progress_for_user(*, user: AbstractBaseUser) -> list[dict[str, Any]]:
    """Each project the user belongs to, with task counts and the user's own submissions."""
    rows = []
    for project in projects_for_user(user=user).order_by("name"):
        counts = RankingTask.objects.filter(project=project).aggregate(
            total=Count("id"), complete=Count("id", filter=Q(is_complete=True))
        )
        mine = Assignment.objects.filter(project=project, annotator=user, status=AssignmentStatus.SUBMITTED).count()
        role = role_of(user=user, project=project)
        total = counts["total"] or 0
        rows.append(
            {
                "project": project,
                "role": role,
                "is_staff_role": ROLE_RANK.get(role, 0) >= ROLE_RANK[Role.ENGINEER],
                "tasks_total": total,
                "tasks_complete": counts["complete"] or 0,
                "percent_complete": round(100 * (counts["complete"] or 0) / total) if total else 0,
                "my_submissions": mine,
            }
        )
    return rows
