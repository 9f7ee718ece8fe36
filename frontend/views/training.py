"""Training job pages (engineers and admins): the project's jobs, and one job with progress and curves.

Curves are inline SVG drawn on the server: no script, no CDN. A running job's page refreshes itself.
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from annotation.errors import Forbidden, NotFound
from annotation.models import JobStatus, Role
from annotation.services.access import project_get_for_user
from annotation.services.training import (
    training_job_curves,
    training_job_get_for_user,
    training_job_progress,
    training_jobs_of_project,
)

COLOURS = ["#2563eb", "#dc2626", "#059669", "#d97706"]
WIDTH, HEIGHT, PAD = 560, 220, 40


def svg_chart(series: dict[str, list[tuple[int, float]]], *, y_min: float | None = None,
              y_max: float | None = None) -> dict[str, Any] | None:
    """Polyline points and axis labels for each non-empty series, scaled into one WIDTH x HEIGHT box."""
    drawn = {name: points for name, points in series.items() if points}
    if not drawn:
        return None
    xs = [x for points in drawn.values() for x, _ in points]
    ys = [y for points in drawn.values() for _, y in points]
    x0, x1 = min(xs), max(xs)
    lo = min(ys) if y_min is None else y_min
    hi = max(ys) if y_max is None else y_max
    if x1 == x0:
        x1 = x0 + 1
    if hi == lo:
        hi = lo + 1

    def sx(x: float) -> float:
        return round(PAD + (x - x0) / (x1 - x0) * (WIDTH - 2 * PAD), 1)

    def sy(y: float) -> float:
        return round(HEIGHT - PAD + (y - lo) / (hi - lo) * -(HEIGHT - 2 * PAD), 1)

    lines = []
    for index, (name, points) in enumerate(drawn.items()):
        lines.append({
            "name": name, "colour": COLOURS[index % len(COLOURS)],
            "points": " ".join(f"{sx(x)},{sy(y)}" for x, y in points),
            "dots": [{"x": sx(x), "y": sy(y), "label": f"step {x}: {y:.4g}"} for x, y in points],
            "last": f"{points[-1][1]:.4g}",
        })
    return {
        "width": WIDTH, "height": HEIGHT, "pad": PAD, "right": WIDTH - PAD, "bottom": HEIGHT - PAD,
        "lines": lines, "x_min": x0, "x_max": x1, "y_min": f"{lo:.3g}", "y_max": f"{hi:.3g}",
    }


def _access(call, **kwargs):
    try:
        return call(**kwargs)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from exc


@login_required
def training_job_page(request: HttpRequest, slug: str, job_id: int) -> HttpResponse:
    job = _access(training_job_get_for_user, user=request.user, job_id=job_id)
    if job.project.slug != slug:
        raise Http404("Training job not found.")
    curves = training_job_curves(job=job)
    context = {
        "job": job,
        "project": job.project,
        "progress": training_job_progress(job=job),
        "running": job.status in (JobStatus.QUEUED, JobStatus.RUNNING),
        "loss_chart": svg_chart({"train loss": curves["train loss"], "test loss": curves["test loss"]}),
        "accuracy_chart": svg_chart({"test accuracy": curves["test accuracy"]}, y_min=0.0, y_max=1.0),
        "test": (job.report or {}).get("test") or {},
        "train": (job.report or {}).get("train") or {},
    }
    # Template lookups cannot read TRL's slashed metric names.
    context["dpo_margin"] = (context["test"].get("after") or {}).get("rewards/margins")
    context["dpo_accuracy_before"] = (context["test"].get("before") or {}).get("rewards/accuracies")
    return render(request, "frontend/training/job.html", context)


@login_required
def training_jobs_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = _access(project_get_for_user, user=request.user, project_ref=slug, min_role=Role.ENGINEER)
    jobs = list(training_jobs_of_project(project=project)[:100])
    return render(request, "frontend/training/list.html", {"project": project, "jobs": jobs})
