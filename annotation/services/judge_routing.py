"""Judge routing (Project.judge_routing = "uncertain"): people rank what the judge is unsure of, plus an audit sample.

When a judge run finishes, each task whose judge ranking is confident (every neighbouring pair
decided with probability >= judge_confidence, both orders agreeing) is closed to people
(`is_complete`), unless it falls in the audit sample: a share `judge_audit_rate` of the tasks,
drawn by hashing the project and task ids, so the same tasks stay audited across runs and the
judge's agreement with people stays measured on them. Only tasks nobody holds or has ranked
are closed (a live lease would reopen it on submission); gold tasks are never closed. The human
overlap counters (submitted_count, active_count) are not touched: the judge is not a ranking.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable

from annotation.models import JudgeRanking, JudgeRun, Project, RankingTask


def audited(*, project_id: int, task_id: int, rate: float) -> bool:
    """Whether a task is in the project's audit sample (a uniform draw from its ids)."""
    digest = hashlib.sha256(f"judge-audit:{project_id}:{task_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def audited_task_ids(*, project: Project, task_ids: Iterable[int]) -> set[int]:
    return {tid for tid in task_ids if audited(project_id=project.pk, task_id=tid, rate=project.judge_audit_rate)}


def judge_routing_apply(*, run: JudgeRun) -> int:
    """Close the run's confident, unaudited, untouched tasks to people; returns how many. Call inside the
    transaction that finishes the run."""
    project = run.project
    if project.judge_routing != "uncertain":
        return 0
    confident = set(JudgeRanking.objects.filter(run=run, confident=True).values_list("task_id", flat=True))
    routed = confident - audited_task_ids(project=project, task_ids=confident)
    return RankingTask.objects.filter(
        pk__in=routed, is_gold=False, is_complete=False, active_count=0, submitted_count=0
    ).update(is_complete=True)
