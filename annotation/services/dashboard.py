"""Selectors for the admin dashboard: task progress and the progress of long-running work."""
from __future__ import annotations

from typing import Any

from django.db.models import Count, Q

from annotation.models import ExportSnapshot, GenerationRun, JudgeRun, Project, RankingTask, TrainingJob


def _percent(done: int, total: int) -> int:
    return round(100 * done / total) if total else 0


def dashboard_progress(*, project: Project, runs: int = 10) -> dict[str, Any]:
    """Tasks open (nobody on them), in progress (leased or partly ranked), complete; recent runs and jobs."""
    counts = RankingTask.objects.filter(project=project).aggregate(
        total=Count("id"),
        complete=Count("id", filter=Q(is_complete=True)),
        in_progress=Count("id", filter=Q(is_complete=False) & (Q(active_count__gt=0) | Q(submitted_count__gt=0))),
    )
    total = counts["total"] or 0
    complete, in_progress = counts["complete"] or 0, counts["in_progress"] or 0
    open_ = total - complete - in_progress
    tasks = [
        {"key": "open", "label": "Open", "count": open_, "percent": _percent(open_, total)},
        {"key": "in-progress", "label": "In progress", "count": in_progress, "percent": _percent(in_progress, total)},
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


TASK_STATES = ("open", "in-progress", "complete")


def task_state(task: RankingTask) -> str:
    """open: nobody on it; in-progress: leased or partly ranked; complete: ranked by its whole overlap."""
    if task.is_complete:
        return "complete"
    return "in-progress" if task.active_count or task.submitted_count else "open"


def _excerpt(messages: Any, length: int = 160) -> str:
    turns = [m for m in (messages or []) if isinstance(m, dict)]
    last_user = next((m for m in reversed(turns) if m.get("role") == "user"), turns[-1] if turns else {})
    text = " ".join(str(last_user.get("content", "")).split())
    return text if len(text) <= length else text[: length - 1] + "…"


def dashboard_tasks(
    *, project: Project, run: GenerationRun | None = None, state: str | None = None, offset: int = 0, limit: int = 100
) -> dict[str, Any]:
    """A page of the project's tasks (those over `run`'s responses when given), newest first, with counts by state."""
    tasks = RankingTask.objects.filter(project=project)
    if run is not None:
        tasks = tasks.filter(pk__in=RankingTask.responses.through.objects.filter(response__run=run).values("rankingtask_id"))
    counts = tasks.aggregate(
        total=Count("id"),
        complete=Count("id", filter=Q(is_complete=True)),
        in_progress=Count("id", filter=Q(is_complete=False) & (Q(active_count__gt=0) | Q(submitted_count__gt=0))),
    )
    by_state = {"complete": Q(is_complete=True), "in-progress": Q(is_complete=False) & (Q(active_count__gt=0) | Q(submitted_count__gt=0)),
                "open": Q(is_complete=False, active_count=0, submitted_count=0)}
    if state in by_state:
        tasks = tasks.filter(by_state[state])
    total = counts["total"] or 0
    page = list(
        tasks.select_related("prompt").annotate(responses_count=Count("responses")).order_by("-id")[offset : offset + limit]
    )
    rows = [
        {"id": t.pk, "prompt_external_id": t.prompt.external_id, "excerpt": _excerpt(t.prompt.messages), "responses": t.responses_count,
         "submitted": t.submitted_count, "overlap": t.overlap, "is_gold": t.is_gold, "state": task_state(t)}
        for t in page
    ]
    return {
        "rows": rows,
        "matching": tasks.count() if state in by_state else total,
        "counts": {"total": total, "complete": counts["complete"] or 0, "in_progress": counts["in_progress"] or 0,
                   "open": total - (counts["complete"] or 0) - (counts["in_progress"] or 0)},
    }
