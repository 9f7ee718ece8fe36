"""Scheduling the uncertainty scoring of new tasks (services/priority.py does the scoring).

Apart from priority.py because the task and import services call it when they create tasks, and
priority.py reaches the training service (the reward model's files): this module needs only the
models and dispatch, so creating tasks imports no training code and makes no import cycle.
"""
from __future__ import annotations

from django.db.models import QuerySet

from annotation.dispatch import DispatchError, TaskName, enqueue_after_commit
from annotation.models import Project, RankingTask


def tasks_to_score(*, project_id: int, only_unscored: bool = False) -> QuerySet:
    """The tasks a scoring pass scores: open and not gold (only the unscored ones when asked)."""
    tasks = RankingTask.objects.filter(project_id=project_id, is_complete=False, is_gold=False)
    return tasks.filter(priority_margin=None) if only_unscored else tasks


def priority_score_new_tasks(*, project_id: int) -> bool:
    """After tasks were created (import, generation): in an uncertainty project, enqueue the scoring
    of the unscored open tasks with the project's model (after the commit). True when enqueued."""
    current = Project.objects.filter(pk=project_id, priority_mode="uncertainty").values_list("priority_model_id", flat=True).first()
    if current is None:
        return False
    Project.objects.filter(pk=project_id, priority_model_id=current).update(
        priority_status="queued", priority_done=0, priority_total=tasks_to_score(project_id=project_id, only_unscored=True).count())

    def refused(exc: DispatchError) -> None:
        Project.objects.filter(pk=project_id, priority_model_id=current).update(priority_status="failed", priority_error=str(exc))

    enqueue_after_commit(TaskName.PRIORITY_SCORE, kwargs={"project_id": project_id, "job_id": current, "only_unscored": True},
                         on_error=refused)
    return True
