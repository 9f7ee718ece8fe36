"""Selectors for the admin dashboard: task progress and the progress of long-running work."""
from __future__ import annotations

from typing import Any

from django.db.models import Count, Sum

from annotation.models import ExportSnapshot, GenerationRun, JudgeRun, Project, RankingTask, TrainingJob
from annotation.services.task_browse import STATUS_Q


def _percent(done: int, total: int) -> int:
    return round(100 * done / total) if total else 0


def dashboard_progress(*, project: Project, runs: int = 10) -> dict[str, Any]:
    """Tasks open (nobody on them), in progress (leased or partly ranked), complete; recent runs and jobs."""
    # The statuses are the task list's (task_browse.STATUS_Q), so each bar links to its filter.
    counts = RankingTask.objects.filter(project=project).aggregate(
        total=Count("id"), complete=Count("id", filter=STATUS_Q["complete"]), in_progress=Count("id", filter=STATUS_Q["in_progress"]),
    )
    total = counts["total"] or 0
    complete, in_progress = counts["complete"] or 0, counts["in_progress"] or 0
    open_ = total - complete - in_progress
    tasks = [
        {"key": "open", "label": "Open", "count": open_, "percent": _percent(open_, total)},
        {"key": "in_progress", "label": "In progress", "count": in_progress, "percent": _percent(in_progress, total)},
        {"key": "complete", "label": "Complete", "count": complete, "percent": _percent(complete, total)},
    ]
    generation = [
        {
            "id": run.pk, "label": f"Run {run.pk} · {run.backend} · {run.model_name or 'default model'}", "status": run.status,
            "done": run.prompts_done, "total": run.prompts_total, "percent": _percent(run.prompts_done, run.prompts_total),
            "detail": f"{run.prompts_done} of {run.prompts_total} prompts · {run.responses_count} responses"
            + (f" · {run.prompts_failed} failed" if run.prompts_failed else ""),
        }
        for run in GenerationRun.objects.filter(project=project).order_by("-id")[:runs]
    ]
    exports = [
        {
            "id": e.pk, "label": f"Export {e.pk} · {e.format} · {e.file_format}", "status": e.status,
            "percent": _percent(e.rows_done, e.rows_total), "detail": f"{e.rows_done} of {e.rows_total} tasks read",
        }
        for e in ExportSnapshot.objects.filter(project=project).order_by("-id")[:runs]
    ]
    training = [
        {
            "id": j.pk, "label": f"Training {j.pk} · {j.kind}", "status": j.status,
            "percent": _percent(j.steps_done, j.steps_total), "detail": f"step {j.steps_done} of {j.steps_total}",
        }
        for j in TrainingJob.objects.filter(project=project).order_by("-id")[:runs]
    ]
    judge = [
        {
            "id": r.pk, "label": f"Judge run {r.pk} · {r.backend} · {r.model_name}", "status": r.status,
            "percent": _percent(r.tasks_done + r.tasks_failed, r.tasks_total),
            "detail": f"{r.tasks_done} of {r.tasks_total} tasks · {r.comparisons_done} of {r.comparisons_total} comparisons"
            + (f" · {r.comparisons_failed} failed" if r.comparisons_failed else ""),
        }
        for r in JudgeRun.objects.filter(project=project).order_by("-id")[:runs]
    ]
    return {"tasks_total": total, "tasks": tasks, "generation": generation, "exports": exports, "training": training, "judge": judge}



def dashboard_overlap(*, project: Project) -> dict[str, Any]:
    """Rankings per task (non-gold), and for adaptive overlap the rankings saved against a fixed overlap.

    Saved counts complete tasks only: each would have cost `overlap` rankings at fixed overlap; the
    rankings they actually got are spent. Open tasks are neither (they may still get up to `overlap`).
    """
    tasks = RankingTask.objects.filter(project=project, is_gold=False)
    by_count = {row["submitted_count"]: row["n"] for row in tasks.values("submitted_count").annotate(n=Count("id"))}
    total = sum(by_count.values())
    top = max([project.overlap, *by_count]) if by_count else project.overlap
    distribution = [
        {"rankings": n, "tasks": by_count.get(n, 0), "percent": _percent(by_count.get(n, 0), total)} for n in range(0, top + 1)
    ]
    complete = tasks.filter(is_complete=True).aggregate(tasks=Count("id"), spent=Sum("submitted_count"))
    complete_tasks, spent = complete["tasks"] or 0, complete["spent"] or 0
    fixed = complete_tasks * project.overlap
    return {
        "adaptive": project.is_adaptive,
        "min_overlap": project.first_overlap,
        "overlap": project.overlap,
        "agreement_target": project.agreement_target,
        "adaptive_rule": project.adaptive_rule,
        "tasks": total,
        "distribution": distribution,
        "complete_tasks": complete_tasks,
        "spent": spent,
        "fixed": fixed,
        "saved": fixed - spent,
        "saved_percent": _percent(fixed - spent, fixed),
        "priority": project.priority_mode,
        "priority_model": project.priority_model_id,
        "priority_status": project.priority_status,
        "priority_done": project.priority_done,
        "priority_total": project.priority_total,
    }
